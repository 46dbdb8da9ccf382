package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

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
	JSON       bool
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

` + exitHelp,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "set", Usage: "set id to restore (default: the newest)"},
			&ucli.PathFlag{Name: "from", Usage: "read the set from this channel directory instead (may be read-only)"},
			&ucli.PathFlag{Name: "from-es-location", Usage: "with --from: its es/ as the standby's Elasticsearch nodes see it (default <from>/es; es-repository-location is the channel's)"},
			&ucli.BoolFlag{Name: "dry-run", Usage: "verify and print the plan; change nothing"},
			&ucli.BoolFlag{Name: "allow-older", Usage: "allow a set that is not newer than what is live (going back by hand)"},
			&ucli.BoolFlag{Name: "full", Usage: "restore every index of the set, also those the standby holds unchanged"},
			cli.JSONFlag(),
		}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := runOptions{SetID: c.String("set"), From: c.Path("from"), FromES: c.Path("from-es-location"), DryRun: c.Bool("dry-run"), AllowOlder: c.Bool("allow-older"), Full: c.Bool("full"), JSON: c.Bool("json")}
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
	q := request{SetID: o.SetID, From: o.From, FromESLocation: o.FromES, DryRun: o.DryRun, AllowOlder: o.AllowOlder, Full: o.Full}
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

func printPlan(w io.Writer, p *plan) {
	if p.Set == "" {
		if p.Verify != nil {
			fmt.Fprintf(w, "set %s: %s\n", p.Verify.SetID, p.Verify.Status)
			printProblems(w, p.Verify)
		}
		return
	}
	head := "restore"
	if p.DryRun {
		head = "plan (dry run, nothing changed)"
	}
	fmt.Fprintf(w, "%s: set %s (sequence %d, created %s) from %s\n", head, p.Set, p.Sequence, p.Created.UTC().Format(time.RFC3339), p.From)
	if v := p.Verify; v != nil {
		fmt.Fprintf(w, "  verified: %d files, %d bytes (%d hashed, %d from cache), signed by %s\n", v.Files, v.Bytes, v.Hashed, v.Cached, v.Signer)
	}
	if p.ES != nil {
		verb := "delete"
		if p.ES.Existing == "close" {
			verb = "close"
		}
		if ip := p.ES.InProgress; ip != nil {
			fmt.Fprintf(w, "  elasticsearch: a restore of %s/%s left running by an earlier run is in progress: cancel it first (delete %s)\n",
				ip.Repository, ip.Snapshot, strings.Join(ip.Indices, ", "))
		}
		fmt.Fprintf(w, "  elasticsearch: restore %d indices from snapshot %s, keep %d unchanged\n", len(p.ES.Restore), p.ES.Snapshot, len(p.ES.Unchanged))
		list(w, "    unchanged (the standby holds them as the set has them)", p.ES.Unchanged)
		for _, why := range slices.Sorted(maps.Keys(p.ESWhy)) {
			var ixs []string
			for _, ix := range p.ESWhy[why] {
				if slices.Contains(p.ES.Restore, ix) {
					ixs = append(ixs, ix)
				}
			}
			list(w, "    restore ("+why+")", ixs)
		}
		list(w, "    "+verb+" first (replaced)", p.ES.Replace)
		list(w, "    delete (gone from prod)", p.ES.Delete)
		list(w, "    keep (gone from prod, es-keep)", p.ES.Kept)
		list(w, "    close after the restore (closed on prod)", p.ES.Close)
		fmt.Fprintf(w, "    indices not in the set: %s\n", p.ES.Absent)
	}
	if p.MySQL != nil {
		fmt.Fprintf(w, "  mysql: drop and load databases %s (%d tables, dump %d bytes compressed)\n", strings.Join(p.MySQL.Databases, ", "), p.MySQL.Tables, p.MySQL.DumpBytes)
		list(w, "    drop (gone from prod)", p.MySQL.Drop)
		list(w, "    keep (gone from prod, mysql-keep)", p.MySQL.Kept)
		fmt.Fprintf(w, "    databases not in the set: %s\n", p.MySQL.Absent)
	}
	for _, t := range p.Trees {
		if t.Skipped != "" {
			fmt.Fprintf(w, "  files %s: skipped (%s)\n", t.Tree, t.Skipped)
			continue
		}
		fmt.Fprintf(w, "  files %s -> %s: %d added, %d replaced, %d removed, %d unchanged, %d bytes to write\n", t.Tree, t.Dir, t.Added, t.Replaced, t.Removed, t.Unchanged, t.Bytes)
		if p.DryRun {
			for i, c := range t.Changes {
				if i == 50 {
					fmt.Fprintf(w, "    ... (%d more in --json)\n", len(t.Changes)-50)
					break
				}
				fmt.Fprintf(w, "    %-7s %s\n", c.Op, c.Path)
			}
		}
	}
	if len(p.Redis) > 0 {
		fmt.Fprintf(w, "  redis: flush %s\n", strings.Join(p.Redis, ", "))
	}
	if len(p.Restart) > 0 {
		fmt.Fprintf(w, "  restart: %s\n", strings.Join(p.Restart, ", "))
	}
	if len(p.Checks) > 0 {
		fmt.Fprintf(w, "  post-checks: %s\n", strings.Join(p.Checks, "; "))
	}
	if len(p.Stages) > 0 {
		fmt.Fprintln(w, "stages:")
		for _, s := range p.Stages {
			d := ""
			if !s.End.IsZero() {
				d = s.End.Sub(s.Start).Round(time.Millisecond).String()
			}
			msg := s.Detail
			if s.Error != "" {
				msg = s.Error
			}
			fmt.Fprintf(w, "  %-13s %-8s %8s  %s\n", s.Name, s.Outcome, d, msg)
		}
	}
	for _, r := range p.Restarts {
		st := "ok"
		if !r.OK {
			st = "FAILED: " + r.Error
		}
		fmt.Fprintf(w, "  restart %s: %s (%s)\n", r.Node, st, r.Duration.Round(time.Millisecond))
	}
	for _, c := range p.PostChecks {
		st := "ok " + c.Detail
		if !c.OK {
			st = "FAILED: " + c.Error
		}
		fmt.Fprintf(w, "  check %s: %s\n", c.Name, st)
	}
}

func list(w io.Writer, head string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: %s\n", head, strings.Join(items, ", "))
}
