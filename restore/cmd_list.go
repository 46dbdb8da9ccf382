package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/manifest"
)

type listOptions struct {
	Dir  string
	JSON bool
}

// listedSet is one line of restore list.
type listedSet struct {
	ID       string    `json:"id"`
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Age      string    `json:"age"`
	Status   string    `json:"status"` // complete, incomplete, corrupt, not-authentic, not-for-us, restored, live
	Detail   string    `json:"detail,omitempty"`
}

func newListCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "list",
		Usage: "list the sets of the channel (or of DIR) with their status",
		Description: `Status is one of: live (what the standby holds now), restored (restored earlier), complete,
incomplete (still arriving), corrupt, not-authentic, not-for-us. Every set with a signature
is verified (unchanged files are vouched for by the cache in the state directory).

` + exitHelp,
		Flags: append([]ucli.Flag{cli.JSONFlag()}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runList(c.Context, listOptions{Dir: c.Args().First(), JSON: c.Bool("json")}, e, c.App.Writer)
		},
	})
}

// channelExists says clearly when the channel directory is not there -
// a typo in DIR (usage), or a channel share that is not mounted - instead
// of listing no sets, which reads as "nothing arrived yet".
func channelExists(root string, named bool) error {
	fi, err := os.Stat(root)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		err = fmt.Errorf("%s is not a directory", root)
	}
	if named {
		return cli.Usagef("list %s: %v", root, err)
	}
	return fmt.Errorf("channel directory: %w (is the channel's share mounted? see the channel setting)", err)
}

func runList(ctx context.Context, o listOptions, e env, out io.Writer) error {
	if err := e.cfg.validate(o.Dir == ""); err != nil {
		return err
	}
	r := newRestorer(e.cfg, e.log, e.rep)
	root := request{From: o.Dir}.root(e.cfg)
	if err := channelExists(root, o.Dir != ""); err != nil {
		return err
	}
	sets, err := manifest.List(root)
	if err != nil {
		return err
	}
	l, err := r.openLedger()
	if err != nil {
		return err
	}
	recs, err := l.Records()
	if err != nil {
		return err
	}
	chName := r.expect(root).Name
	live, _ := r.live(l, chName)
	restored := map[string]bool{}
	for _, rec := range recs {
		if rec.Outcome == ledger.OK && rec.Channel == chName {
			restored[rec.Set] = true
		}
	}
	now := time.Now()
	var rows []listedSet
	for _, s := range sets {
		row := listedSet{ID: s.ID, Sequence: s.Sequence}
		if t, err := manifest.SetIDTime(s.ID); err == nil {
			row.Created, row.Age = t, now.Sub(t).Round(time.Second).String()
		}
		switch {
		case !s.HasManifest || !s.HasSignature:
			row.Status, row.Detail = "incomplete", "manifest or signature not there yet"
		default:
			rep, err := r.verify(ctx, root, s.ID, 0)
			e.rep.End()
			switch {
			case err == nil:
				row.Status = "complete"
			case errors.Is(err, manifest.ErrSuperseded):
				// made in an epoch before the last promotion (fencing)
				row.Status, row.Detail = "superseded", err.Error()
			case rep != nil && rep.Status.Err() != nil:
				row.Status, row.Detail = rep.Status.String(), err.Error()
			default:
				if errors.Is(err, context.Canceled) {
					return err
				}
				row.Status, row.Detail = "unknown", err.Error()
			}
		}
		if row.Status == "complete" && restored[s.ID] {
			row.Status = "restored"
		}
		if s.ID == live.Set && live.Set != "" {
			row.Status = "live"
		}
		rows = append(rows, row)
	}
	if o.JSON {
		if rows == nil {
			rows = []listedSet{}
		}
		return cli.PrintJSON(out, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintf(out, "no sets in %s\n", root)
		return nil
	}
	fmt.Fprintf(out, "%-30s %10s %12s  %s\n", "SET", "SEQUENCE", "AGE", "STATUS")
	for _, row := range rows {
		fmt.Fprintf(out, "%-30s %10d %12s  %s\n", row.ID, row.Sequence, row.Age, row.Status)
	}
	return nil
}
