package main

import (
	"context"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/manifest"
)

type verifyOptions struct {
	SetID      string
	From       string
	AllowOlder bool
	JSON       bool
}

func newVerifyCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "verify",
		Usage: "verify a set (default: the newest) without restoring it",
		Description: `Checks that the set is complete, intact, signed by an allowed key, for this channel and
site, and newer than what is live (unless --allow-older). Changes nothing; the verification
cache lives in the state directory, never in the channel.

` + exitHelp,
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "set", Usage: "set id (default: the newest)"},
			&ucli.PathFlag{Name: "from", Usage: "verify a set in this channel directory instead (may be read-only)"},
			&ucli.BoolFlag{Name: "allow-older", Usage: "do not refuse a set that is not newer than what is live"},
			cli.JSONFlag(),
		}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			o := verifyOptions{SetID: c.String("set"), From: c.Path("from"), AllowOlder: c.Bool("allow-older"), JSON: c.Bool("json")}
			return runVerify(c.Context, o, e, c.App.Writer)
		},
	})
}

func runVerify(ctx context.Context, o verifyOptions, e env, out io.Writer) error {
	if err := e.cfg.validate(o.From == ""); err != nil {
		return err
	}
	r := newRestorer(e.cfg, e.log, e.rep)
	root := request{From: o.From}.root(e.cfg)
	var after uint64
	if !o.AllowOlder {
		l, err := r.openLedger()
		if err != nil {
			return err
		}
		live, err := r.live(l, r.expect(root).Name)
		if err != nil {
			return err
		}
		after = live.Sequence
	}
	rep, err := r.verify(ctx, root, o.SetID, after)
	e.rep.End()
	if rep != nil {
		if o.JSON {
			_ = cli.PrintJSON(out, rep)
		} else {
			fmt.Fprintf(out, "set %s (sequence %d): %s\n", rep.SetID, rep.Sequence, rep.Status)
			fmt.Fprintf(out, "  %d files, %d bytes (%d hashed, %d from cache)", rep.Files, rep.Bytes, rep.Hashed, rep.Cached)
			if rep.Signer != "" {
				fmt.Fprintf(out, ", signed by %s", rep.Signer)
			}
			fmt.Fprintln(out)
			printProblems(out, rep)
		}
	}
	return err
}

// printProblems lists what verification found missing or corrupt.
func printProblems(w io.Writer, rep *manifest.Report) {
	for _, m := range rep.Missing {
		fmt.Fprintf(w, "  missing: %s\n", m)
	}
	for _, m := range rep.Corrupt {
		fmt.Fprintf(w, "  corrupt: %s\n", m)
	}
}
