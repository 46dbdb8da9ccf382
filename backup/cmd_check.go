package main

import (
	"context"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

func newCheckCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:        "check",
		Usage:       "run the preflight checks only (changes nothing) and list every failed one",
		Description: exitHelp,
		Flags:       append(configFlags(), cli.JSONFlag()),
		Action: func(c *ucli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			return runCheck(c.Context, checkOptions{cfg: cfg, json: c.Bool("json")}, c.App.Writer)
		},
	})
}

// checkOptions are the settings of `backup check`.
type checkOptions struct {
	cfg  *config
	json bool
}

// runCheck runs stage 1 and prints every check.
func runCheck(ctx context.Context, o checkOptions, stdout io.Writer) error {
	pre, err := runPreflight(ctx, o.cfg)
	if o.json {
		out := struct {
			Leader     bool    `json:"leader"`
			LeaderNote string  `json:"leader_note,omitempty"`
			Checks     []Check `json:"checks"`
			Error      string  `json:"error,omitempty"`
		}{pre.Leader, pre.LeaderNote, pre.Checks, ""}
		if err != nil {
			out.Error = err.Error()
		}
		if perr := cli.PrintJSON(stdout, out); perr != nil {
			return perr
		}
		return err
	}
	if err == nil && !pre.Leader {
		fmt.Fprintf(stdout, "not the leader, nothing to do: %s\n", pre.LeaderNote)
		return nil
	}
	printChecks(stdout, pre.Checks)
	return err
}
