package main

import (
	"slices"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

// TestEveryCommandBuiltAlike: every command is built with prog.Command
// (doc/architecture.md, "How a command is written"), so it has the common
// flags and reads the config file; only these are not.
func TestEveryCommandBuiltAlike(t *testing.T) {
	notBuilt := []string{"generate", "serve"}
	for _, c := range newApp().Commands {
		common := slices.ContainsFunc(c.Flags, func(f ucli.Flag) bool { return slices.Contains(f.Names(), "config") })
		if common == slices.Contains(notBuilt, c.Name) {
			t.Errorf("command %s: built with prog.Command = %v, want %v", c.Name, common, !common)
		}
	}
}
