package main

import (
	"log/slog"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ui"
)

// env is what every command's action gives its run function: the settings
// every command shares (settingsFlags), the logger and the progress
// reporter.
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
