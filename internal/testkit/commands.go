package testkit

import (
	"slices"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// CommandsBuiltAlike fails the test unless every command of app but those
// named in notBuilt is built with cli.Program.Command (doc/architecture.md,
// "How a command is written"): it has the common flags and reads the
// config file.
func CommandsBuiltAlike(t testing.TB, app *ucli.App, notBuilt ...string) {
	t.Helper()
	for _, c := range app.Commands {
		common := slices.ContainsFunc(c.Flags, func(f ucli.Flag) bool { return slices.Contains(f.Names(), "config") })
		if common == slices.Contains(notBuilt, c.Name) {
			t.Errorf("command %s: built with prog.Command = %v, want %v", c.Name, common, !common)
		}
	}
}
