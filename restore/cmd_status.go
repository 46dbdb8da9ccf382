package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/manifest"
)

// statusReport is what restore status prints.
type statusReport struct {
	Role              string         `json:"role"`
	Channel           string         `json:"channel"`
	Live              *ledger.Record `json:"live,omitempty"`
	RecoveryPointAge  string         `json:"recovery_point_age,omitempty"`
	RecoveryPointSecs float64        `json:"recovery_point_age_seconds,omitempty"`
	NewestSet         string         `json:"newest_set,omitempty"`
	NewestSequence    uint64         `json:"newest_sequence,omitempty"`
	Pending           int            `json:"pending_sets"` // signed sets newer than live in the channel
	LastFailure       *ledger.Record `json:"last_failure,omitempty"`
	Running           *ledger.Record `json:"running,omitempty"`
	// Fencing: the highest epoch this standby has seen and the channel's
	// newest trusted epoch record (manifest/DESIGN.md, "Fencing").
	SeenEpoch   uint64                `json:"seen_epoch,omitempty"`
	EpochRecord *manifest.EpochRecord `json:"epoch_record,omitempty"`
	// Mixed: a restore since the live one changed some parts of the
	// standby and not others (it failed or was stopped); Parts says which
	// set each part holds and Next what makes the standby whole again.
	Mixed bool        `json:"mixed"`
	Parts []partState `json:"parts,omitempty"`
	Next  string      `json:"next,omitempty"`
	// Files: per tree, the files stage's record of its last restore
	// (filesrecord.go): when it last compared every file. None: the next
	// restore compares every file.
	Files []filesRecord `json:"files_compared,omitempty"`
}

// partState is the set one part of the standby (a data stage) holds,
// by the ledger.
type partState struct {
	Stage string `json:"stage"`         // elasticsearch, mysql, files
	Set   string `json:"set,omitempty"` // "" = nothing restored into it yet
	// Partly: the stage of a later restore failed or was stopped in this
	// part, which holds some of that set (Partly) and perhaps some of Set.
	Partly string `json:"partly,omitempty"`
}

// dataStages are the stages that put a set's data into the standby.
var dataStages = []string{stageES, stageMySQL, stageFiles}

// standbyParts says which set each part of the standby holds: the live
// set, unless a restore started after it (failed, stopped or running)
// touched the part. mixed is true when the parts do not all hold live.
func standbyParts(recs []ledger.Record, live ledger.Record) (parts []partState, mixed bool) {
	for _, name := range dataStages {
		parts = append(parts, partState{Stage: name, Set: live.Set})
	}
	for _, rec := range recs {
		if rec.Outcome == ledger.OK || !rec.Start.After(live.Start) {
			continue
		}
		for _, s := range rec.Stages {
			i := slices.Index(dataStages, s.Name)
			if i < 0 {
				continue
			}
			switch s.Outcome {
			case ledger.OK:
				parts[i] = partState{Stage: s.Name, Set: rec.Set}
				mixed = true
			case ledger.Failed, ledger.Interrupted, ledger.Running:
				parts[i].Partly = rec.Set
				mixed = true
			}
		}
	}
	return parts, mixed
}

func newStatusCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "status",
		Usage: "what is live on this standby, the recovery point's age, the last failure",
		Description: `Reads the ledger in the state directory and the channel's set list; changes nothing.
When a restore since the live one failed or was stopped midway, says the standby is MIXED:
which set each part (elasticsearch, mysql, files) holds, and which run makes it whole.
The recovery point's age is never negative: a set dated after this host's clock (within
--max-clock-skew) shows as 0s old, and the difference is named.

` + exitHelp,
		Flags: append([]ucli.Flag{cli.JSONFlag()}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runStatus(c.Context, statusOptions{JSON: c.Bool("json")}, e, c.App.Writer)
		},
	})
}

// statusOptions are the settings of `restore status`.
type statusOptions struct {
	JSON bool
}

func runStatus(ctx context.Context, o statusOptions, e env, out io.Writer) error {
	// Status that cannot tell the role, the channel or the ledger would
	// only look reassuring: say what is missing instead (exit 2).
	if err := e.cfg.validate(true); err != nil {
		return err
	}
	role, err := site.Read(e.cfg.RoleFile)
	if err != nil {
		return err
	}
	r := newRestorer(e.cfg, e.log, e.rep)
	l, err := r.openLedger()
	if err != nil {
		return err
	}
	st := statusReport{Channel: e.cfg.Channel, Role: string(role)}
	chName := r.expect(e.cfg.Channel).Name
	live, err := r.live(l, chName)
	if err != nil {
		return err
	}
	now := time.Now()
	if live.Set != "" {
		st.Live = &live
		age := manifest.Age(live.Created, now)
		st.RecoveryPointAge, st.RecoveryPointSecs = age.Round(time.Second).String(), age.Seconds()
	}
	if f, err := l.LastFailure(); err == nil && f.Start.After(live.Start) {
		st.LastFailure = &f
	}
	recs, err := l.Records()
	if err != nil {
		return err
	}
	if len(recs) > 0 && recs[len(recs)-1].Outcome == ledger.Running {
		st.Running = &recs[len(recs)-1]
	}
	st.Parts, st.Mixed = standbyParts(recs, live)
	if st.SeenEpoch, err = site.ReadSeenEpoch(e.cfg.seenEpochPath()); err != nil {
		return err
	}
	if as, err := r.allowedSigners(); err == nil {
		if ch, err := manifest.ReadChannel(e.cfg.Channel); err == nil {
			if ce, err := manifest.ReadEpoch(e.cfg.Channel, ch, as, now); err == nil {
				st.EpochRecord = ce.Record
			}
		}
	}
	if st.Files, err = readFilesRecords(e.cfg.StateDir); err != nil {
		return err
	}
	newest, pending := channelSets(e.cfg.Channel, live.Sequence)
	st.NewestSet, st.NewestSequence, st.Pending = newest.ID, newest.Sequence, pending
	if st.Mixed {
		switch {
		case st.Pending > 0:
			st.Next = fmt.Sprintf("the next run (restore run, or the watcher's retry after retry-interval) restores set %s into every part", st.NewestSet)
		case st.LastFailure != nil && st.LastFailure.From != "" && st.LastFailure.From != e.cfg.Channel:
			st.Next = fmt.Sprintf("no newer set in the channel: restore run --set %s --from %s makes it whole", st.LastFailure.Set, st.LastFailure.From)
		case st.LastFailure != nil:
			st.Next = fmt.Sprintf("no newer set in the channel: restore run --set %s --allow-older makes it whole", st.LastFailure.Set)
		}
	}
	if o.JSON {
		return cli.PrintJSON(out, st)
	}
	fmt.Fprintf(out, "role:            %s\n", st.Role)
	fmt.Fprintf(out, "channel:         %s\n", st.Channel)
	if st.EpochRecord != nil || st.SeenEpoch > 0 {
		fmt.Fprintf(out, "fencing:         channel at %s; seen here: epoch %d\n", st.EpochRecord, st.SeenEpoch)
	}
	if st.Live == nil {
		fmt.Fprintln(out, "live:            nothing restored yet")
	} else {
		fmt.Fprintf(out, "live:            set %s (sequence %d), restored %s\n", live.Set, live.Sequence, live.End.UTC().Format(time.RFC3339))
		ahead := ""
		if d := live.Created.Sub(now); d > 0 {
			ahead = fmt.Sprintf("; created %s after this host's clock", d.Round(time.Second))
		}
		fmt.Fprintf(out, "recovery point:  %s (%s old%s)\n", live.Created.UTC().Format(time.RFC3339), st.RecoveryPointAge, ahead)
	}
	if st.Mixed {
		fmt.Fprintln(out, "standby:         MIXED - a restore since the live one changed some parts and not others:")
		for _, pt := range st.Parts {
			holds := "nothing restored yet"
			if pt.Set != "" {
				holds = "set " + pt.Set
				if pt.Set == live.Set {
					holds += " (live)"
				}
			}
			if pt.Partly != "" {
				holds += ", partly set " + pt.Partly + " (its stage did not finish)"
			}
			fmt.Fprintf(out, "  %-14s %s\n", pt.Stage+":", holds)
		}
		if st.Next != "" {
			fmt.Fprintf(out, "  %s\n", st.Next)
		}
	}
	if st.NewestSet != "" {
		fmt.Fprintf(out, "newest in channel: %s (%d newer than live)\n", st.NewestSet, st.Pending)
	}
	if st.Running != nil {
		fmt.Fprintf(out, "running:         set %s since %s\n", st.Running.Set, st.Running.Start.UTC().Format(time.RFC3339))
	}
	if f := st.LastFailure; f != nil {
		fmt.Fprintf(out, "last failure:    set %s at %s, %s: %s\n", f.Set, f.Start.UTC().Format(time.RFC3339), f.Outcome, f.Error)
	}
	if len(st.Files) == 0 {
		fmt.Fprintln(out, "files compared:  no record; the next restore compares every file")
	}
	for _, fr := range st.Files {
		fmt.Fprintf(out, "files compared:  tree %s: every file at %s; last restored %s (set %s)\n", fr.Tree,
			fr.FullCompare.UTC().Format(time.RFC3339), fr.Applied.UTC().Format(time.RFC3339), fr.Set)
	}
	return nil
}
