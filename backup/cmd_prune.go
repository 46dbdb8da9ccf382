package main

import (
	"context"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ui"
)

var errUsage = cli.ErrUsage

func newPruneCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "prune",
		Usage: "retention: delete sets beyond --keep / --keep-within (never pinned ones), then objects nothing kept references",
		Description: "Elasticsearch snapshots are deleted through the API, never by deleting repository files.\n" +
			exitHelp,
		Flags: append(configFlags(),
			flags.Int("keep", 24, "keep the newest N sets"),
			flags.Duration("keep-within", 0, "also keep every set newer than this (e.g. 168h)"),
			flags.Duration("grace", 6*time.Hour, "never delete an object or temporary file younger than this"),
			flags.Bool("es-now", false, "delete Elasticsearch snapshots of pruned sets now (default: the next run does, before its snapshot)"),
			&ucli.BoolFlag{Name: "dry-run", Usage: "say what would be deleted"},
			cli.JSONFlag(),
		),
		Action: func(c *ucli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			log, err := cli.Logger(c)
			if err != nil {
				return err
			}
			o := pruneOptions{cfg: cfg, keep: c.Int("keep"), within: c.Duration("keep-within"),
				grace: c.Duration("grace"), esNow: c.Bool("es-now"), dryRun: c.Bool("dry-run"), log: log}
			return runPrune(c.Context, o, c.Bool("json"), c.App.Writer)
		},
	})
}

// runPrune applies retention (prune) and says what it deleted.
func runPrune(ctx context.Context, o pruneOptions, asJSON bool, out io.Writer) error {
	res, err := prune(ctx, o)
	if err != nil {
		return err
	}
	if asJSON {
		return cli.PrintJSON(out, res)
	}
	verb := "deleted"
	if res.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(out, "kept %d set(s); %s %d set(s), %d snapshot(s), %d object(s) (%s), %d temporary file(s)\n",
		len(res.Kept), verb, len(res.Deleted), len(res.Snapshots), res.Objects, ui.Bytes(res.ObjectBytes), res.Temps)
	return nil
}
