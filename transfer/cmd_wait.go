package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

type waitOptions struct {
	verifyOptions
	timeout  time.Duration
	interval time.Duration
	after    string
	state    string
}

func newWaitCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:      "wait",
		Usage:     "block until a set newer than the last one seen is complete in a channel directory",
		ArgsUsage: "DIR",
		Description: `For a job that runs after rsync or polls a SnapMirror destination: checks DIR
every --interval until a signed set newer than the last one this command
reported (remembered in --state, or given with --after) verifies complete,
prints its id and exits 0. A set whose signature is not there yet is still
arriving. Exit 4 when --timeout passes first; 5 when the new set is corrupt or
not authentic (bad signature, key not in allowed_signers: an alert, not a wait).

` + exitHelp,
		Flags: append(verifyFlags(),
			flags.Duration("timeout", 0, "give up after this long (0: look once)"),
			flags.Duration("interval", 10*time.Second, "time between looks"),
			flags.String("after", "", "wait for a set newer than this set id (default: the last one reported, from --state)"),
			flags.Path("state", "", "file remembering the last set reported (default: under the user's cache dir, per DIR)"),
		),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return cli.Usagef("wait needs DIR (see --help)")
			}
			log, err := cli.Logger(c)
			if err != nil {
				return err
			}
			o := waitOptions{
				verifyOptions: readVerifyOptions(c),
				timeout:       c.Duration("timeout"), interval: c.Duration("interval"), after: c.String("after"), state: c.String("state"),
			}
			return runWait(c.Context, o, c.App.Writer, log, ui.Nop{})
		},
	})
}

func waitStatePath(dir, opt string) (string, error) {
	if opt != "" {
		return opt, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return mover.CacheFile("wait:"+abs, ".last")
}

func runWait(ctx context.Context, o waitOptions, out io.Writer, log *slog.Logger, progress ui.Reporter) error {
	if o.timeout < 0 || o.interval <= 0 {
		return cli.Usagef("--timeout must not be negative and --interval must be positive")
	}
	allowed, err := loadAllowed(o.allowedSigners)
	if err != nil {
		return err
	}
	state, err := waitStatePath(o.dir, o.state)
	if err != nil {
		return err
	}
	last := o.after
	if last == "" {
		if b, err := os.ReadFile(state); err == nil {
			last = strings.TrimSpace(string(b))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("wait state %s: %w", state, err)
		}
	}
	var after uint64
	if last != "" {
		if after, err = manifest.ParseSetID(last); err != nil {
			return cli.Usagef("last set %q (from --after or %s): %v", last, state, err)
		}
	}
	deadline := time.Now().Add(o.timeout)
	for {
		id, err := newestComplete(ctx, o, allowed, after, log)
		if err != nil {
			return err
		}
		if id != "" {
			if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
				return err
			}
			if err := manifest.WriteFileAtomic(state, []byte(id+"\n"), 0o600); err != nil {
				return fmt.Errorf("set %s is complete, but remembering it in %s failed: %w", id, state, err)
			}
			if o.json {
				return cli.PrintJSON(out, map[string]string{"set": id})
			}
			fmt.Fprintln(out, id)
			return nil
		}
		if !time.Now().Before(deadline) {
			what := "any complete set"
			if last != "" {
				what = "a complete set newer than " + last
			}
			return fmt.Errorf("%s: no %s within %s: %w", o.dir, strings.TrimPrefix(what, "any "), o.timeout, errTimeout)
		}
		t := time.NewTimer(min(o.interval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// newestComplete returns the newest signed set above after that verifies
// complete, or "" if none does yet. A corrupt or unauthentic one is an error.
func newestComplete(ctx context.Context, o waitOptions, a *sshsig.AllowedSigners, after uint64, log *slog.Logger) (string, error) {
	sets, err := manifest.List(o.dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", o.dir, err)
	}
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if s.Sequence <= after || !s.HasSignature {
			continue
		}
		_, err := manifest.Verify(ctx, manifest.VerifyOptions{Root: o.dir, SetID: s.ID, Expect: o.expect, AllowedSigners: a,
			After: after, Cache: verifyCachePath(o.dir, o.cache), Workers: o.workers, MaxClockSkew: o.maxSkew})
		switch {
		case err == nil:
			return s.ID, nil
		case errors.Is(err, manifest.ErrIncomplete):
			log.Debug("set not complete yet", "set", s.ID, "err", err)
		default:
			return "", fmt.Errorf("%s: %w", o.dir, err)
		}
	}
	return "", nil
}
