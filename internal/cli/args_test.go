package cli

import (
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	f := Flags{Program: "prog"}
	app := &ucli.App{Name: "prog", Commands: []*ucli.Command{
		Program{Name: "prog"}.Command(&ucli.Command{Name: "wait", Flags: []ucli.Flag{f.Duration("timeout", 0, "")}}),
		Program{Name: "prog"}.Command(&ucli.Command{Name: "push", Flags: []ucli.Flag{f.Bool("checksum", false, "")}}),
		Program{Name: "prog"}.Command(&ucli.Command{Name: "verify", Flags: []ucli.Flag{&ucli.StringFlag{Name: "set"}, JSONFlag()}}),
	}}
	for _, tc := range []struct{ name, in, want string }{
		{"flags after the argument", "prog wait DIR --timeout 10m", "prog wait --timeout 10m DIR"},
		{"bool flag takes no value", "prog push SRC --checksum DST", "prog push --checksum SRC DST"},
		{"flag=value", "prog verify DIR --set=X", "prog verify --set=X DIR"},
		{"common flag", "prog verify DIR --log-level debug --json", "prog verify --log-level debug --json DIR"},
		{"already first", "prog verify --set X DIR", "prog verify --set X DIR"},
		{"after --", "prog verify -- --odd-dir", "prog verify -- --odd-dir"},
		{"unknown command untouched", "prog nope a --b", "prog nope a --b"},
		{"no arguments", "prog", "prog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Join(FlagsFirst(app, strings.Fields(tc.in)), " ")
			if got != tc.want {
				t.Fatalf("FlagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestFlagsAfterArguments: through Run's reordering, a flag after the
// argument reaches the command.
func TestFlagsAfterArguments(t *testing.T) {
	var got string
	var args []string
	app := &ucli.App{Name: "prog", Commands: []*ucli.Command{Program{Name: "prog"}.Command(&ucli.Command{
		Name:   "list",
		Flags:  []ucli.Flag{Flags{Program: "prog"}.String("set", "", "")},
		Action: func(c *ucli.Context) error { got, args = c.String("set"), c.Args().Slice(); return nil },
	})}}
	if err := app.Run(FlagsFirst(app, []string{"prog", "list", "DIR", "--set", "X"})); err != nil {
		t.Fatal(err)
	}
	if got != "X" || len(args) != 1 || args[0] != "DIR" {
		t.Fatalf("set=%q args=%q, want X [DIR]", got, args)
	}
}
