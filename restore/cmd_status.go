package main

import (
	"context"
	"fmt"
	"io"
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
}

func newStatusCommand() *ucli.Command {
	return command("status", "what is live on this standby, the recovery point's age, the last failure",
		`Reads the ledger in the state directory and the channel's set list; changes nothing.`,
		[]ucli.Flag{cli.JSONFlag()},
		func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runStatus(c.Context, c.Bool("json"), e, c.App.Writer)
		})
}

func runStatus(ctx context.Context, jsonOut bool, e env, out io.Writer) error {
	r := newRestorer(e.cfg, e.log, e.rep)
	l, err := r.openLedger()
	if err != nil {
		return err
	}
	st := statusReport{Channel: e.cfg.Channel}
	if role, err := site.Read(e.cfg.RoleFile); err == nil {
		st.Role = string(role)
	} else {
		st.Role = "unknown: " + err.Error()
	}
	chName := r.expect(e.cfg.Channel).Name
	live, err := r.live(l, chName)
	if err != nil {
		return err
	}
	if live.Set != "" {
		st.Live = &live
		age := time.Since(live.Created)
		st.RecoveryPointAge, st.RecoveryPointSecs = age.Round(time.Second).String(), age.Seconds()
	}
	if f, err := l.LastFailure(); err == nil && f.Start.After(live.Start) {
		st.LastFailure = &f
	}
	if recs, err := l.Records(); err == nil && len(recs) > 0 && recs[len(recs)-1].Outcome == ledger.Running {
		st.Running = &recs[len(recs)-1]
	}
	if e.cfg.Channel != "" {
		if sets, err := manifest.List(e.cfg.Channel); err == nil {
			for _, s := range sets {
				if !s.HasSignature {
					continue
				}
				st.NewestSet, st.NewestSequence = s.ID, s.Sequence
				if s.Sequence > live.Sequence {
					st.Pending++
				}
			}
		}
	}
	if jsonOut {
		return cli.PrintJSON(out, st)
	}
	fmt.Fprintf(out, "role:            %s\n", st.Role)
	fmt.Fprintf(out, "channel:         %s\n", st.Channel)
	if st.Live == nil {
		fmt.Fprintln(out, "live:            nothing restored yet")
	} else {
		fmt.Fprintf(out, "live:            set %s (sequence %d), restored %s\n", live.Set, live.Sequence, live.End.UTC().Format(time.RFC3339))
		fmt.Fprintf(out, "recovery point:  %s (%s old)\n", live.Created.UTC().Format(time.RFC3339), st.RecoveryPointAge)
	}
	if st.NewestSet != "" {
		fmt.Fprintf(out, "newest in channel: %s (%d newer than live)\n", st.NewestSet, st.Pending)
	}
	if st.Running != nil {
		fmt.Fprintf(out, "running:         set %s since %s\n", st.Running.Set, st.Running.Start.UTC().Format(time.RFC3339))
	}
	if f := st.LastFailure; f != nil {
		fmt.Fprintf(out, "last failure:    set %s at %s: %s\n", f.Set, f.Start.UTC().Format(time.RFC3339), f.Error)
	}
	return nil
}
