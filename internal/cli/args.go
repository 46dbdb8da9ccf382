package cli

import (
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// FlagsFirst lets flags follow the positional arguments, as in
// `transfer wait DIR --timeout 10m` or `restore list DIR --json`: urfave/cli
// v2 stops parsing flags at the first argument, so the flags of a known
// command are moved in front of its arguments. "--" ends the reordering.
// Run applies it, so every program parses a command line the same way.
func FlagsFirst(app *ucli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	var cmd *ucli.Command
	for _, c := range app.Commands {
		if c.Name == args[1] {
			cmd = c
		}
	}
	if cmd == nil {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		tv, ok := f.(interface{ TakesValue() bool })
		for _, n := range f.Names() {
			takesValue[n] = !ok || tv.TakesValue()
		}
	}
	var flags, pos []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(name, "=") && takesValue[name] && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, pos...)
}
