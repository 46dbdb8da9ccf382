package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
)

type verifyOptions struct {
	dir            string
	set            string
	allowedSigners string
	expect         manifest.Channel
	cache          string
	workers        int
	json           bool
	maxSkew        time.Duration // a set created further after now is refused (0: the default)
}

func verifyFlags() []ucli.Flag {
	fl := []ucli.Flag{
		allowedSignersFlag(),
		flags.Path("cache", "", "file-identity cache so unchanged files are not hashed again, kept in PATH"+verifyCacheSuffix+
			" (PATH is push's verified-file cache when one config file serves both; default: under the user's cache dir; \"off\" hashes everything)"),
		flags.Int("workers", 0, "files hashed in parallel (0: one per CPU)"),
		flags.Duration("max-clock-skew", manifest.DefaultMaxClockSkew, "refuse (exit 6) a set created more than this after this host's clock"),
		cli.JSONFlag(),
	}
	return append(fl, channelFlags()...)
}

// readVerifyOptions reads verifyFlags (verify's and wait's) and DIR.
func readVerifyOptions(c *ucli.Context) verifyOptions {
	return verifyOptions{dir: c.Args().First(), allowedSigners: c.String("allowed-signers"), expect: readChannel(c),
		cache: c.String("cache"), workers: c.Int("workers"), json: c.Bool("json"), maxSkew: c.Duration("max-clock-skew")}
}

func newVerifyCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:      "verify",
		Usage:     "check that the newest (or a named) set in a channel directory is complete, intact and signed",
		ArgsUsage: "DIR",
		Description: `For a job that moved the channel itself (rsync, SnapMirror): every file the
set's signed manifest names must be there with its size and SHA-256.
Exit 0 complete, 4 incomplete: a file or the signature is not there yet
(what is missing is listed), 5 corrupt or not authentic (bad signature, key
not in allowed_signers), 6 another channel.

` + exitHelp,
		Flags: append(verifyFlags(), &ucli.StringFlag{Name: "set", Usage: "set id to verify (default: the newest signed set)"}),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return cli.Usagef("verify needs DIR (see --help)")
			}
			log, err := cli.Logger(c)
			if err != nil {
				return err
			}
			o := readVerifyOptions(c)
			o.set = c.String("set")
			return runVerify(c.Context, o, c.App.Writer, log, cli.Progress(c, log, 0))
		},
	})
}

// verifyCacheSuffix names verify's and wait's file-identity cache after
// the cache setting, which push and pull read as their verified-file
// cache: one config file serves every command, and the two caches (of
// different formats) must not overwrite each other.
const verifyCacheSuffix = ".verified"

// verifyCachePath is the file-identity cache of verify and wait for DIR:
// opt (the cache setting) with verifyCacheSuffix, or by default one per
// directory under the user's cache dir; "" for none.
func verifyCachePath(dir, opt string) string {
	switch opt {
	case "off":
		return ""
	case "":
		abs, err := filepath.Abs(dir)
		if err != nil {
			return ""
		}
		p, err := mover.CacheFile("verify:"+abs, verifyCacheSuffix)
		if err != nil {
			return ""
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return ""
		}
		return p
	}
	return opt + verifyCacheSuffix
}

func runVerify(ctx context.Context, o verifyOptions, out io.Writer, log *slog.Logger, progress ui.Reporter) error {
	allowed, err := loadAllowed(o.allowedSigners)
	if err != nil {
		return err
	}
	rep, err := manifest.Verify(ctx, manifest.VerifyOptions{
		Root: o.dir, SetID: o.set, Expect: o.expect, AllowedSigners: allowed,
		Cache: verifyCachePath(o.dir, o.cache), Workers: o.workers, Progress: progress, MaxClockSkew: o.maxSkew,
	})
	if rep != nil {
		if o.json {
			if perr := cli.PrintJSON(out, rep); perr != nil {
				return perr
			}
		} else {
			printReport(out, o.dir, rep)
		}
	}
	if err != nil {
		if errors.Is(err, manifest.ErrIncomplete) {
			return fmt.Errorf("%s: %w (the mover may still be copying; try again later)", o.dir, err)
		}
		return fmt.Errorf("%s: %w", o.dir, err)
	}
	return nil
}

func printReport(out io.Writer, dir string, rep *manifest.Report) {
	fmt.Fprintf(out, "set %s in %s: %s", rep.SetID, dir, rep.Status)
	if rep.Signer != "" {
		fmt.Fprintf(out, " (signed by %s)", rep.Signer)
	}
	fmt.Fprintf(out, ", %d files, %s\n", rep.Files, ui.Bytes(rep.Bytes))
	for _, m := range rep.Missing {
		fmt.Fprintf(out, "missing: %s\n", m)
	}
	if n := rep.MissingCount - int64(len(rep.Missing)); n > 0 {
		fmt.Fprintf(out, "missing: ... and %d more\n", n)
	}
	for _, m := range rep.Corrupt {
		fmt.Fprintf(out, "corrupt: %s\n", m)
	}
	if n := rep.CorruptCount - int64(len(rep.Corrupt)); n > 0 {
		fmt.Fprintf(out, "corrupt: ... and %d more\n", n)
	}
}
