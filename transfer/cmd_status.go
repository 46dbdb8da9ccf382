package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/manifest"
)

type statusOptions struct {
	src, dst string
	ssh      sshOptions
	json     bool
	maxSkew  time.Duration // a newest set created further after the local clock is flagged
	now      time.Time     // zero: the clock
}

func newStatusCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:      "status",
		Usage:     "show the newest signed set on each side and how far the destination lags",
		ArgsUsage: "SRC DST (each a directory or sftp://user@host:port/path)",
		Description: `Lists the sets on both sides (signature files present; nothing is hashed -
use verify for that) and prints the newest of each, how many source sets the
destination lacks, and the lag between their creation times. A newest set
created further after this host's clock than --max-clock-skew is flagged
(restore refuses it); no lag or age is ever negative.

` + exitHelp,
		Flags: append(sshFlags(), cli.JSONFlag(),
			flags.Duration("max-clock-skew", manifest.DefaultMaxClockSkew, "flag a newest set created more than this after this host's clock")),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 2 {
				return cli.Usagef("status needs SRC and DST (see --help)")
			}
			o := statusOptions{src: c.Args().Get(0), dst: c.Args().Get(1), ssh: readSSHOptions(c), json: c.Bool("json"), maxSkew: c.Duration("max-clock-skew")}
			return runStatus(c.Context, o, c.App.Writer)
		},
	})
}

// sideStatus is one side of a status report.
type sideStatus struct {
	Place   string    `json:"place"`
	Newest  string    `json:"newest,omitempty"`
	Created time.Time `json:"created,omitzero"`
	Sets    int       `json:"sets"`
	// Future says the newest set was created further after this host's
	// clock than the allowed skew (restore refuses it).
	Future string `json:"future,omitempty"`
	ids    map[string]bool
}

type statusReport struct {
	Source      sideStatus `json:"source"`
	Destination sideStatus `json:"destination"`
	// Behind counts signed source sets newer than the destination's newest.
	Behind int `json:"behind"`
	// LagSeconds is the source's newest creation time minus the
	// destination's (0 when in step; -1 when the destination has no set).
	LagSeconds int64 `json:"lag_seconds"`
}

func runStatus(ctx context.Context, o statusOptions, out io.Writer) error {
	var sides [2]sideStatus
	for i, spec := range []string{o.src, o.dst} {
		ep, err := parseEndpoint(spec)
		if err != nil {
			return err
		}
		f, err := ep.open(ctx, o.ssh, false, nil)
		if err != nil {
			return err
		}
		sides[i], err = side(ctx, f)
		_ = f.Close()
		if err != nil {
			return err
		}
	}
	now := o.now
	if now.IsZero() {
		now = time.Now()
	}
	for i := range sides {
		if sides[i].Newest != "" {
			if err := manifest.CheckCreated(sides[i].Newest, sides[i].Created, now, o.maxSkew); err != nil {
				sides[i].Future = err.Error()
			}
		}
	}
	rep := statusReport{Source: sides[0], Destination: sides[1], LagSeconds: -1}
	if rep.Destination.Newest != "" {
		rep.LagSeconds = int64(rep.Source.Created.Sub(rep.Destination.Created).Seconds())
		if rep.LagSeconds < 0 {
			rep.LagSeconds = 0
		}
	}
	for id := range rep.Source.ids {
		if id > rep.Destination.Newest {
			rep.Behind++
		}
	}
	if o.json {
		return cli.PrintJSON(out, rep)
	}
	for _, s := range []struct {
		what string
		s    sideStatus
	}{{"source", rep.Source}, {"destination", rep.Destination}} {
		if s.s.Newest == "" {
			fmt.Fprintf(out, "%-12s %s: no signed set\n", s.what, s.s.Place)
			continue
		}
		fmt.Fprintf(out, "%-12s %s: newest %s (created %s), %d sets\n", s.what, s.s.Place, s.s.Newest, s.s.Created.Format(time.RFC3339), s.s.Sets)
		if s.s.Future != "" {
			fmt.Fprintf(out, "%-12s WARNING: %s; restore refuses it\n", "", s.s.Future)
		}
	}
	switch {
	case rep.LagSeconds < 0:
		fmt.Fprintf(out, "destination has no set yet; %d source sets to copy\n", rep.Behind)
	case rep.Behind == 0 && (rep.Source.Future != "" || rep.Destination.Future != ""):
		fmt.Fprintln(out, "in step, but the newest set is dated in the future (see WARNING)")
	case rep.Behind == 0:
		fmt.Fprintln(out, "in step")
	default:
		fmt.Fprintf(out, "destination lags %s behind (%d newer sets at the source)\n", time.Duration(rep.LagSeconds)*time.Second, rep.Behind)
	}
	return nil
}

// side lists the signed sets of one end: one listing of sets/ and one of
// each set directory.
func side(ctx context.Context, f mover.FS) (sideStatus, error) {
	s := sideStatus{Place: f.String(), ids: map[string]bool{}}
	ents, err := f.ReadDir(ctx, manifest.SetsDirName)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	var ids []string
	for _, e := range ents {
		if _, err := manifest.ParseSetID(e.Name); err == nil && e.Dir {
			ids = append(ids, e.Name)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		files, err := f.ReadDir(ctx, manifest.SetsDirName+"/"+id)
		if err != nil {
			return s, err
		}
		for _, e := range files {
			if e.Name == manifest.SignatureFileName && !e.Dir {
				s.ids[id] = true
				s.Newest = id
			}
		}
	}
	s.Sets = len(s.ids)
	if s.Newest != "" {
		s.Created, _ = manifest.SetIDTime(s.Newest)
	}
	return s, nil
}
