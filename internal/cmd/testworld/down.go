package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

type downOptions struct {
	Dir  string
	Keep bool
}

func newDownCommand() *cli.Command {
	var o downOptions
	return &cli.Command{
		Name:  "down",
		Usage: "stop the world in DIR from its pid files and check that no process is left",
		Description: "Sends SIGTERM to each service's process group (SIGKILL after 20 s), then checks that no\n" +
			"process of any group is left. Removes DIR's files unless --keep.\n\n" +
			"Exit codes: 0 stopped (or nothing ran), 1 a process survived or the files could not be removed, 2 usage.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "directory of the world (required)", EnvVars: []string{"BCP_TESTWORLD_DIR"}, Destination: &o.Dir},
			&cli.BoolFlag{Name: "keep", Usage: "keep the world's files (data, logs)", EnvVars: []string{"BCP_TESTWORLD_KEEP"}, Destination: &o.Keep},
		},
		Action: func(c *cli.Context) error { return runDown(c.Context, o, c.App.Writer) },
	}
}

func runDown(_ context.Context, o downOptions, out io.Writer) error {
	if o.Dir == "" {
		return fmt.Errorf("%w: -dir is required", errUsage)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return err
	}
	stopped, err := testenv.StopDir(dir)
	for _, p := range stopped {
		fmt.Fprintf(out, "stopped %-14s pid %d (%s)\n", p.Name, p.Pid, p.Exe)
	}
	if err != nil {
		return fmt.Errorf("stop world in %s: %w", dir, err)
	}
	if len(stopped) == 0 {
		fmt.Fprintf(out, "no world was running in %s\n", dir)
	} else {
		fmt.Fprintf(out, "no process of the world in %s is left\n", dir)
	}
	if !o.Keep {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove %s: %w", dir, err)
		}
	}
	return nil
}
