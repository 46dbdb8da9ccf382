package main

import (
	"context"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

type runOptions struct {
	SetID      string
	From       string
	FromES     string // --from-es-location
	DryRun     bool
	AllowOlder bool
	Full       bool // every index of the set, also those the standby holds unchanged
	// FullCompare: every file of the trees, also below unchanged lists
	FullCompare bool
	JSON        bool
}

func newRunCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "run",
		Usage: "restore the newest complete set (or --set ID) into this standby site",
		Description: `Verifies the set completely (present, intact, signed by an allowed key, for this channel
and site, newer than what is live) before anything changes, then restores: Elasticsearch,
MySQL, files and config, Redis flush, restart on all nodes, post-checks. Every run is in the
ledger (restore status). --from reads the set from any directory, also a read-only snapshot
of the NFS volume; nothing is written there. --dry-run prints what would be deleted,
replaced and restarted.

Indices and databases the set does not hold are deleted only when the set says prod no
longer has them (format 1.1: a snapshot of all indices or of the index patterns covering
them, a dump of all databases), unless es-keep / mysql-keep name them; system indices
(".*") and schemas never. A 1.0 set deletes nothing it does not hold.

An index the standby holds as the set has it is kept, not restored: the set's fingerprint of
it (format 2.0) equals the one this standby restored it from, from the same channel, and the
standby's index has not changed since. --full restores every index all the same.

Files: a directory whose list (format 2.0) equals the one this standby last restored into the
same target, from the same channel, with the same exclude and preserve-owner, is skipped, not
compared: the same content, nothing in it to write or delete. The record (state-dir,
files-applied-TREE.json) is written once the files are durable, removed when a files stage
starts (so one that fails or is interrupted leaves none) and by promote and demote. Every file
is compared without a record, with --full-compare, with --from, for a format 1.x set, where
the recorded lists were pruned, and on the first restore full-compare-every (default 24h)
after the last full comparison (restore status shows when): a file changed on the standby by
hand below an unchanged directory is corrected then, not before.

` + exitHelp,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "set", Usage: "set id to restore (default: the newest)"},
			&ucli.PathFlag{Name: "from", Usage: "read the set from this channel directory instead (may be read-only)"},
			&ucli.PathFlag{Name: "from-es-location", Usage: "with --from: its es/ as the standby's Elasticsearch nodes see it (default <from>/es; es-repository-location is the channel's)"},
			&ucli.BoolFlag{Name: "dry-run", Usage: "verify and print the plan; change nothing"},
			&ucli.BoolFlag{Name: "allow-older", Usage: "allow a set that is not newer than what is live (going back by hand)"},
			&ucli.BoolFlag{Name: "full", Usage: "restore every index of the set, also those the standby holds unchanged"},
			&ucli.BoolFlag{Name: "full-compare", Usage: "compare every file of the trees with the standby's, also below directories unchanged since the last restore"},
			cli.JSONFlag(),
		}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := runOptions{SetID: c.String("set"), From: c.Path("from"), FromES: c.Path("from-es-location"), DryRun: c.Bool("dry-run"), AllowOlder: c.Bool("allow-older"), Full: c.Bool("full"), FullCompare: c.Bool("full-compare"), JSON: c.Bool("json")}
			return runRun(c.Context, o, e, c.App.Writer)
		},
	})
}

func runRun(ctx context.Context, o runOptions, e env, out io.Writer) error {
	if err := e.cfg.validate(o.From == ""); err != nil {
		return err
	}
	if o.FromES != "" && o.From == "" {
		return cli.Usagef("--from-es-location goes with --from (the channel's own is es-repository-location)")
	}
	r := newRestorer(e.cfg, e.log, e.rep)
	q := request{SetID: o.SetID, From: o.From, FromESLocation: o.FromES, DryRun: o.DryRun, AllowOlder: o.AllowOlder, Full: o.Full, FullCompare: o.FullCompare}
	p, err := r.run(ctx, q)
	r.reportRun(q, p, err)
	if p != nil {
		if o.JSON {
			if perr := cli.PrintJSON(out, p); perr != nil && err == nil {
				err = perr
			}
		} else {
			printPlan(out, p)
		}
	}
	return err
}
