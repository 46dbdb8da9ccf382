package main

import (
	"log/slog"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ui"
)

// command builds a command with the shared settings, its own flags, and
// config-file loading.
func command(name, usage, help string, own []ucli.Flag, action ucli.ActionFunc) *ucli.Command {
	return cli.WithConfig(program, &ucli.Command{
		Name: name, Usage: usage, Description: help + "\n\n" + exitHelp,
		Flags:  append(own, settingsFlags()...),
		Action: action,
	})
}

// env is what every command's action gives its run function.
type env struct {
	cfg settings
	log *slog.Logger
	rep ui.Reporter
}

func newEnv(c *ucli.Context) (env, error) {
	cfg, err := readSettings(c)
	if err != nil {
		return env{}, err
	}
	log, err := cli.Logger(c)
	if err != nil {
		return env{}, err
	}
	return env{cfg: cfg, log: log, rep: cli.Progress(c, log, 0)}, nil
}
