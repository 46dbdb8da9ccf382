package main

import (
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ui"
)

var errUsage = cli.ErrUsage

func newPruneCommand() *ucli.Command {
	f := cli.Flags{Program: program}
	flags := append(configFlags(),
		f.Int("keep", 24, "keep the newest N sets"),
		f.Duration("keep-within", 0, "also keep every set newer than this (e.g. 168h)"),
		f.Duration("grace", 6*time.Hour, "never delete an object or temporary file younger than this"),
		f.Bool("es-now", false, "delete Elasticsearch snapshots of pruned sets now (default: the next run does, before its snapshot)"),
		&ucli.BoolFlag{Name: "dry-run", Usage: "say what would be deleted"},
		cli.JSONFlag(),
	)
	return cli.WithConfig(program, &ucli.Command{
		Name:  "prune",
		Usage: "retention: delete sets beyond --keep / --keep-within (never pinned ones), then objects nothing kept references",
		Description: "Elasticsearch snapshots are deleted through the API, never by deleting repository files.\n" +
			exitHelp,
		Flags: flags,
		Action: func(c *ucli.Context) error {
			cfg, err := configFromContext(c)
			if err != nil {
				return err
			}
			log, err := cli.Logger(c)
			if err != nil {
				return err
			}
			res, err := runPrune(c.Context, pruneOptions{cfg: cfg, keep: c.Int("keep"), within: c.Duration("keep-within"),
				grace: c.Duration("grace"), esNow: c.Bool("es-now"), dryRun: c.Bool("dry-run"), log: log})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return cli.PrintJSON(c.App.Writer, res)
			}
			verb := "deleted"
			if res.DryRun {
				verb = "would delete"
			}
			fmt.Fprintf(c.App.Writer, "kept %d set(s); %s %d set(s), %d snapshot(s), %d object(s) (%s), %d temporary file(s)\n",
				len(res.Kept), verb, len(res.Deleted), len(res.Snapshots), res.Objects, ui.Bytes(res.ObjectBytes), res.Temps)
			return nil
		},
	})
}
