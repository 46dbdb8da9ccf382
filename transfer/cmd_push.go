package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
)

// copyOptions are push's and pull's settings.
type copyOptions struct {
	src, dst       string
	ssh            sshOptions
	allowedSigners string
	expect         manifest.Channel
	workers        int
	bigWorkers     int
	bwlimit        string
	checksum       bool
	fullCompare    bool
	fullEvery      time.Duration
	noPrune        bool
	dryRun         bool
	cache          string
	json           bool
	command        string // push or pull, for the alert
	metricsFile    string
	alert          alert.Options
}

func copyFlags() []ucli.Flag {
	fl := []ucli.Flag{
		allowedSignersFlag(),
		flags.Int("workers", 512, "files in flight (many small files in flight fill the helper's batches and let the destination commit their fsyncs together)"),
		flags.Int("big-workers", 8, "of those, large files (above 1 MiB) in flight"),
		flags.String("bwlimit", "0", "bandwidth limit in bytes per second (500K, 20M, 1G); 0 is none"),
		flags.Bool("checksum", false, "hash every file already at the destination instead of trusting the verified-file cache"),
		flags.Bool("full-compare", false, "list every file of the set at the destination, also below directories unchanged since the set the last run left there"),
		flags.Duration("full-compare-every", 24*time.Hour, "a run whose set changed compares only the directories whose list changed since the set the last run left there (recorded in the verified-file cache); "+
			"the first run this long after the last full comparison lists every file again, finding one deleted or damaged at the destination by hand; 0: every run compares every file"),
		flags.Bool("no-prune", false, "keep at the destination what the source no longer has"),
		flags.Bool("dry-run", false, "say what would be copied and pruned, change nothing"),
		flags.Path("cache", "", "verified-file cache for the destination (default: under the user's cache dir; \"off\" hashes every present file); "+
			"verify and wait keep theirs apart, in PATH"+verifyCacheSuffix),
		cli.JSONFlag(),
		flags.Path("metrics-file", "", "Prometheus textfile to write (node_exporter textfile collector): last run, its result, bytes, the newest set forwarded"),
	}
	fl = append(fl, alert.Flags(flags)...)
	fl = append(fl, sshFlags()...)
	return append(fl, channelFlags()...)
}

func readCopyOptions(c *ucli.Context) copyOptions {
	return copyOptions{
		src: c.Args().Get(0), dst: c.Args().Get(1),
		ssh: readSSHOptions(c), allowedSigners: c.String("allowed-signers"), expect: readChannel(c),
		workers: c.Int("workers"), bigWorkers: c.Int("big-workers"), bwlimit: c.String("bwlimit"), checksum: c.Bool("checksum"),
		fullCompare: c.Bool("full-compare"), fullEvery: c.Duration("full-compare-every"),
		noPrune: c.Bool("no-prune"), dryRun: c.Bool("dry-run"), cache: c.String("cache"), json: c.Bool("json"),
		command: c.Command.Name, metricsFile: c.Path("metrics-file"), alert: alert.FromContext(c),
	}
}

const copyHelp = `Brings DST up to the newest complete set at SRC, then copies every older
complete set SRC holds and DST lacks, oldest first, so DST holds the same
history (what SRC's retention keeps). Only what DST lacks is
sent (objects by name, Elasticsearch files by name and size), data first, the
manifest and its signature last; every file is written under a temporary name,
hashed, compared with the manifest, made durable (fsync, or for a batch of
small files one syncfs) and renamed. A rerun resumes.
To an sftp:// destination, files are streamed through "transfer serve" started
there over SSH (--remote-transfer); where it cannot run, over SFTP (syncfs
then by "sync -f" on the server when the account may run commands).
Sets the source no longer has are pruned at DST unless DST's pins/ names them.
Either end may be a directory (a local or NFS mount) or
sftp://user@host[:port]/path (ssh-key or ssh-agent; host key checked in ssh-known-hosts).

`

func newPushCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:        "push",
		Usage:       "copy the complete sets (newest first, then the history) from a local channel directory to another place",
		ArgsUsage:   "SRC-DIR DST (a directory or sftp://user@host:port/path)",
		Description: copyHelp + exitHelp,
		Flags:       copyFlags(),
		Action: func(c *ucli.Context) error {
			o := readCopyOptions(c)
			if c.NArg() != 2 {
				return cli.Usagef("push needs SRC-DIR and DST (see --help)")
			}
			if strings.Contains(o.src, "://") {
				return cli.Usagef("push: the source %q must be a local directory; use pull to fetch from a server", o.src)
			}
			return runCopyCommand(c, o)
		},
	})
}

func newPullCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:        "pull",
		Usage:       "copy the complete sets (newest first, then the history) from another place into a local channel directory",
		ArgsUsage:   "SRC (sftp://user@host:port/path or a directory) DST-DIR",
		Description: copyHelp + exitHelp,
		Flags:       copyFlags(),
		Action: func(c *ucli.Context) error {
			o := readCopyOptions(c)
			if c.NArg() != 2 {
				return cli.Usagef("pull needs SRC and DST-DIR (see --help)")
			}
			if strings.Contains(o.dst, "://") {
				return cli.Usagef("pull: the destination %q must be a local directory; use push to send to a server", o.dst)
			}
			return runCopyCommand(c, o)
		},
	})
}

func runCopyCommand(c *ucli.Context, o copyOptions) error {
	log, err := cli.Logger(c)
	if err != nil {
		return err
	}
	progress := cli.Progress(c, log, 0)
	return runCopy(c.Context, o, c.App.Writer, log, progress)
}

// runCopy validates o, connects both ends, runs the mover and reports
// the run (metrics, alert).
func runCopy(ctx context.Context, o copyOptions, out io.Writer, log *slog.Logger, progress manifest.Progress) (err error) {
	var res *mover.Result
	defer func(start time.Time) { report(ctx, o, res, err, start, log) }(time.Now())
	src, err := parseEndpoint(o.src)
	if err != nil {
		return err
	}
	dst, err := parseEndpoint(o.dst)
	if err != nil {
		return err
	}
	if src.remote() && dst.remote() {
		return cli.Usagef("both ends are servers; run transfer on one of them (push from the source or pull at the destination)")
	}
	limit, err := ui.ParseBytes(o.bwlimit)
	if err != nil {
		return cli.Usagef("--bwlimit %v (bytes per second)", err)
	}
	if o.workers < 1 || o.bigWorkers < 1 || o.ssh.connections < 1 || o.ssh.sessions < 1 {
		return cli.Usagef("--workers, --big-workers, --connections and --sessions must be at least 1")
	}
	allowed, err := loadAllowed(o.allowedSigners)
	if err != nil {
		return err
	}
	notice := func(msg string) { log.Warn(msg) }
	sfs, err := src.open(ctx, o.ssh, false, notice)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	closeSrc := sync.OnceFunc(func() { _ = sfs.Close() })
	defer closeSrc()
	dfs, err := dst.fs(o.ssh, true, notice) // connected by mover.Run, while it reads the source
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	closeDst := sync.OnceFunc(func() { _ = dfs.Close() })
	defer closeDst()
	cachePath := o.cache
	switch cachePath {
	case "off":
		cachePath = ""
	case "":
		if cachePath, err = mover.DefaultCachePath(dfs.String()); err != nil {
			log.Warn("no cache directory; every file already at the destination will be hashed", "err", err)
			cachePath = ""
		}
	}
	checked, err := mover.OpenChecked(cachePath)
	if err != nil {
		return err
	}
	defer checked.Close() // a dry run's journal too
	res, err = mover.Run(ctx, mover.Options{
		Src: sfs, Dst: dfs, VerifySignature: mover.SignatureVerifier(allowed), Expect: o.expect,
		Workers: o.workers, BigWorkers: o.bigWorkers, BandwidthLimit: limit, Checked: checked, Checksum: o.checksum,
		FullCompare: o.fullCompare, FullCompareEvery: o.fullEvery, NoPrune: o.noPrune, DryRun: o.dryRun, Progress: progress,
	})
	if err == nil {
		// Both ends are closed (over a far link a round trip or two)
		// while the cache is saved: the run has nothing more to ask of
		// them.
		go closeSrc()
		go closeDst()
	}
	if !o.dryRun {
		if serr := checked.Save(); serr != nil {
			log.Warn("could not save the verified-file cache; the next run hashes present files again", "cache", cachePath, "err", serr)
		}
	}
	if res != nil {
		for _, s := range res.Skipped {
			log.Warn("newer set at the source not forwarded", "set", s.Set, "reason", s.Reason)
		}
		for _, s := range res.Older {
			if s.Reason != "" {
				log.Warn("older set at the source not forwarded", "set", s.Set, "reason", s.Reason)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s -> %s: %w", sfs, dfs, withLinkErr(err, sfs, dfs))
	}
	if o.json {
		return cli.PrintJSON(out, res)
	}
	verb := "copied"
	if o.dryRun {
		verb = "would copy"
	}
	skipped := ""
	if res.SkippedDirs > 0 {
		skipped = fmt.Sprintf("; %d directories unchanged since the set last pushed not compared (--full-compare compares them)", res.SkippedDirs)
	}
	switch {
	case res.DstNewer != "":
		fmt.Fprintf(out, "%s already has set %s, newer than the source's newest complete set %s; nothing to do\n", dfs, res.DstNewer, res.Set)
	case res.Copied == 0:
		fmt.Fprintf(out, "set %s: up to date at %s (%d files present%s)\n", res.Set, dfs, res.Present, skipped)
	default:
		damaged := ""
		if res.Replaced > 0 {
			damaged = fmt.Sprintf(", %d damaged ones replaced", res.Replaced)
		}
		fmt.Fprintf(out, "set %s: %s %d of %d files (%s) to %s; %d already there%s%s\n",
			res.Set, verb, res.Copied, res.Files, ui.Bytes(res.Bytes), dfs, res.Present, damaged, skipped)
	}
	for _, s := range res.Older {
		if s.Reason == "" {
			shared := ""
			if s.Beside != "" {
				shared = fmt.Sprintf("; the directories it shares with %s not compared again", s.Beside)
			}
			fmt.Fprintf(out, "older set %s: %s %d of %d files (%s)%s\n", s.Set, verb, s.Copied, s.Files, ui.Bytes(s.Bytes), shared)
		}
	}
	if len(res.PrunedSets) > 0 {
		fmt.Fprintf(out, "pruned sets %s and %d files the source no longer has\n", strings.Join(res.PrunedSets, ", "), res.PrunedFiles)
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(out, "kept sets %s: pinned at the destination\n", strings.Join(res.Kept, ", "))
	}
	return nil
}

// withLinkErr puts first in err why a connection was given up (the link
// stalled), where an end knows it: what failed then is only its
// consequence.
func withLinkErr(err error, ends ...mover.FS) error {
	for _, e := range ends {
		if s, ok := e.(*mover.SFTP); ok {
			if lerr := s.LinkErr(); lerr != nil {
				return fmt.Errorf("%w; so: %w", lerr, err)
			}
		}
	}
	return err
}
