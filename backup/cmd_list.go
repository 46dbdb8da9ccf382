package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

func newListCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "list",
		Usage: "list the sets in the channel: sequence, time, size, status",
		Flags: []ucli.Flag{
			flags.Path("channel", "", "channel directory on NFS"),
			flags.Path("allowed-signers", "", "allowed_signers file: verify each set fully (hashes everything) instead of only looking at which files are there"),
			cli.JSONFlag(),
		},
		Action: func(c *ucli.Context) error {
			if c.Path("channel") == "" {
				return cli.Usagef("--channel is required")
			}
			return runList(c.Context, listOptions{channel: c.Path("channel"), allowedSigners: c.Path("allowed-signers"), json: c.Bool("json")}, c.App.Writer)
		},
	})
}

type listOptions struct {
	channel        string
	allowedSigners string
	json           bool
}

// setRow is one line of `backup list`.
type setRow struct {
	ID       string    `json:"id"`
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Status   string    `json:"status"` // signed, unsigned, empty, or a Verify status
	Bytes    int64     `json:"bytes"`
	Pinned   bool      `json:"pinned"`
	Problem  string    `json:"problem,omitempty"`
}

func runList(ctx context.Context, o listOptions, stdout io.Writer) error {
	if _, err := os.Stat(o.channel); err != nil {
		return fmt.Errorf("channel %s: %w", o.channel, err)
	}
	sets, err := manifest.List(o.channel)
	if err != nil {
		return err
	}
	var allowed *sshsig.AllowedSigners
	if o.allowedSigners != "" {
		if allowed, err = sshsig.LoadAllowedSigners(o.allowedSigners); err != nil {
			return cli.Usagef("--allowed-signers: %v", err)
		}
	}
	l := manifest.Layout{Root: o.channel}
	rows := []setRow{}
	for _, s := range sets {
		r := setRow{ID: s.ID, Sequence: s.Sequence}
		r.Created, _ = manifest.SetIDTime(s.ID)
		_, perr := os.Stat(l.PinPath(s.ID))
		r.Pinned = perr == nil
		switch {
		case !s.HasManifest:
			r.Status = "empty"
		case !s.HasSignature:
			r.Status = "unsigned"
		default:
			r.Status = "signed"
		}
		if data, err := os.ReadFile(l.ManifestPath(s.ID)); err == nil {
			if m, err := manifest.Decode(data); err == nil {
				r.Bytes = setBytes(m)
			}
		}
		if allowed != nil && s.HasManifest {
			rep, err := manifest.Verify(ctx, manifest.VerifyOptions{Root: o.channel, SetID: s.ID, AllowedSigners: allowed})
			if rep != nil {
				r.Status = rep.Status.String()
			}
			if err != nil {
				r.Problem = err.Error()
			}
		}
		rows = append(rows, r)
	}
	if o.json {
		return cli.PrintJSON(stdout, rows)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SET\tSEQ\tCREATED\tSTATUS\tSIZE\tPINNED")
	for _, r := range rows {
		pin := ""
		if r.Pinned {
			pin = "pinned"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Sequence, r.Created.Format(time.RFC3339), r.Status, ui.Bytes(r.Bytes), pin)
	}
	return tw.Flush()
}

// setBytes is the data a set names (dump, trees, repository files).
func setBytes(m *manifest.Manifest) int64 {
	var n int64
	if m.MySQL != nil {
		n += m.MySQL.Object.Size
	}
	for _, t := range m.Trees {
		n += t.Bytes
	}
	if m.Elasticsearch != nil {
		n += m.Elasticsearch.Bytes
	}
	return n
}
