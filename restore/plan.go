package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/postcheck"
	"github.com/squirro-bcp/bcp/internal/restart"
	"github.com/squirro-bcp/bcp/manifest"
)

// plan is what a restore does; the dry run prints it, a real run returns it
// with the stages' results.
type plan struct {
	Set        string             `json:"set"`
	Sequence   uint64             `json:"sequence"`
	Created    time.Time          `json:"created"`
	From       string             `json:"from"`
	DryRun     bool               `json:"dry_run"`
	Verify     *manifest.Report   `json:"verify"`
	ES         *es.RestorePlan    `json:"elasticsearch,omitempty"`
	MySQL      *mysqlPlan         `json:"mysql,omitempty"`
	Trees      []treePlan         `json:"trees,omitempty"`
	Redis      []string           `json:"redis_flush,omitempty"`
	Restart    []string           `json:"restart_nodes,omitempty"`
	Checks     []string           `json:"post_checks,omitempty"`
	Stages     []ledger.Stage     `json:"stages,omitempty"`
	Restarts   []restart.Result   `json:"restart_results,omitempty"`
	PostChecks []postcheck.Result `json:"post_check_results,omitempty"`
	// ESWhy says why the indices of ES.Restore are restored: reason -> indices.
	ESWhy map[string][]string `json:"elasticsearch_restore_why,omitempty"`
}

type mysqlPlan struct {
	Databases []string `json:"databases"` // dropped and loaded
	Tables    int      `json:"tables"`
	DumpBytes int64    `json:"dump_bytes"`
	Drop      []string `json:"drop,omitempty"` // standby databases no longer in prod, dropped
	Kept      []string `json:"kept,omitempty"` // no longer in prod, but kept (mysql-keep)
	// Absent says what happens to standby databases the set does not hold.
	Absent string `json:"absent"`
}

type treePlan struct {
	Tree      string            `json:"tree"`
	Dir       string            `json:"dir"`
	Skipped   string            `json:"skipped,omitempty"`
	Added     int64             `json:"added"`
	Replaced  int64             `json:"replaced"`
	Removed   int64             `json:"removed"`
	Unchanged int64             `json:"unchanged"`
	Bytes     int64             `json:"bytes"`
	Changes   []filetree.Change `json:"changes,omitempty"`
}

func (tp *treePlan) fill(st filetree.ApplyStats) {
	tp.Added, tp.Replaced, tp.Removed, tp.Unchanged, tp.Bytes = st.Added, st.Replaced, st.Removed, st.Unchanged, st.Bytes
	tp.Changes = st.Changes
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
