package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// promoteFlags are the settings only a promotion needs: where the reverse
// channel is and the key that signs its epoch records (the same names as
// backup's).
func promoteFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "dry-run", Usage: "show what would change"},
		flags.Path("reverse-channel", "", "the channel this site backs up into once active, on this site's NFS (e.g. /mnt/bcp/bcp-to-prod)"),
		flags.Path("sign-key", "", "this site's SSH private key that signs epoch records (default: ssh-agent)"),
		flags.String("sign-agent-key", "", "fingerprint (SHA256:...) of the ssh-agent key to sign with"),
	}
}

func newPromoteCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "promote",
		Usage: "failover: make this site active, fencing the old active site's late sets",
		Description: `Raises the pair's fencing epoch and records it, signed with this site's key, in both
channels (channel and reverse-channel), then writes "active" into the role file. From then on
restore refuses to change this site (exit 6) and the watcher stays idle; a set the old active
site makes after this is refused by every reader (exit 6, "superseded"), and the old site's
backup refuses once it sees the record. Refused while a restore holds the lock. The role file
is the site's one role: keep it on storage every node of the site shares (doc/architecture.md).
See doc/runbook.md for the whole failover and failback.

` + exitHelp,
		Flags: append(promoteFlags(), settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runPromote(c.Context, promoteOptions{dry: c.Bool("dry-run"), reverse: c.Path("reverse-channel"),
				signKey: c.Path("sign-key"), signAgent: c.String("sign-agent-key")}, e, c.App.Writer)
		},
	})
}

func newDemoteCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "demote",
		Usage: "make this site a standby (the old active site after a failover, or before a failback)",
		Description: `Writes "standby" into the role file: backup then refuses to run on this site (exit 6) and
restore may change it again. The role file is the site's one role: keep it on storage every
node of the site shares (doc/architecture.md). Refused while a restore holds the lock.

` + exitHelp,
		Flags: append([]ucli.Flag{&ucli.BoolFlag{Name: "dry-run", Usage: "show what would change"}}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runDemote(demoteOptions{dry: c.Bool("dry-run")}, e, c.App.Writer)
		},
	})
}

type promoteOptions struct {
	dry                bool
	reverse            string
	signKey, signAgent string
}

func (s *settings) seenEpochPath() string { return filepath.Join(s.StateDir, site.SeenEpochFile) }

// raiseSeenEpoch records the highest epoch a complete set showed: the
// channel's and the set's own (signed) epoch.
func (r *restorer) raiseSeenEpoch(rep *manifest.Report) error {
	n := rep.Epoch
	if rep.Manifest != nil {
		n = max(n, rep.Manifest.Epoch)
	}
	return site.RaiseSeenEpoch(r.cfg.seenEpochPath(), n)
}

// lockSite takes the restore lock for a role change.
func lockSite(e env) (*lock.Lock, error) {
	dir, err := e.cfg.stateDir()
	if err != nil {
		return nil, err
	}
	lk, err := lock.Acquire(dir, "restore", program)
	if errors.Is(err, lock.ErrLocked) {
		return nil, fmt.Errorf("a restore is running on this site: %w; wait for it to end (restore status) or stop the watcher, then change the role", err)
	}
	return lk, err
}

func runPromote(ctx context.Context, o promoteOptions, e env, out io.Writer) error {
	role, err := site.Read(e.cfg.RoleFile)
	if err != nil {
		return err
	}
	if role == site.Active {
		fmt.Fprintf(out, "%s already says active; nothing to do\n", e.cfg.RoleFile)
		return nil
	}
	if e.cfg.Channel == "" || o.reverse == "" {
		return cli.Usagef("promote needs channel and reverse-channel (the two channels of the pair on this site's NFS): it records the new epoch in both, so that the old active site's late sets are refused")
	}
	lk, err := lockSite(e)
	if err != nil {
		return err
	}
	defer lk.ReleaseLogged(e.log)
	r := newRestorer(e.cfg, e.log, e.rep)
	if l, err := r.openLedger(); err == nil {
		if live, err := r.live(l, r.expect(e.cfg.Channel).Name); err == nil && live.Set != "" {
			fmt.Fprintf(out, "this site holds set %s (sequence %d, recovery point %s)\n", live.Set, live.Sequence, live.Created.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	as, err := r.allowedSigners()
	if err != nil {
		return err
	}
	ch, err := manifest.ReadChannel(e.cfg.Channel)
	if err != nil {
		return fmt.Errorf("channel %s: %w", e.cfg.Channel, err)
	}
	rev, err := manifest.ReadChannel(o.reverse)
	if err != nil {
		return fmt.Errorf("reverse-channel %s: %w (create it on day one: backup init)", o.reverse, err)
	}
	if ch.Target != e.cfg.Site || rev.Source != e.cfg.Site || rev.Target != ch.Source {
		return fmt.Errorf("%w: channel %s and reverse-channel %s are not the two directions between this site (%s) and another", manifest.ErrNotForUs, ch, rev, e.cfg.Site)
	}
	now := time.Now()
	roots := []string{e.cfg.Channel, o.reverse}
	ids := []manifest.Channel{ch, rev}
	var chans []manifest.ChannelEpoch
	for i, root := range roots {
		ce, err := manifest.ReadEpoch(root, ids[i], as, now)
		if err != nil {
			return err
		}
		for _, ig := range ce.Ignored {
			e.log.Warn("epoch record ignored", "channel", root, "record", ig)
		}
		chans = append(chans, ce)
	}
	seen, err := site.ReadSeenEpoch(e.cfg.seenEpochPath())
	if err != nil {
		return err
	}
	epoch := site.NextEpoch(seen, chans...)
	for _, ce := range chans {
		// An interrupted promotion of this site: finish it, same epoch.
		if ce.Record != nil && ce.Record.Active == e.cfg.Site && ce.Epoch()+1 == epoch {
			epoch = ce.Epoch()
		}
	}
	if o.dry {
		for i, root := range roots {
			if chans[i].Epoch() < epoch {
				fmt.Fprintf(out, "would record epoch %d (%s active) in %s (now: %s)\n", epoch, e.cfg.Site, root, chans[i].Record)
			}
		}
		fmt.Fprintf(out, "would change %s: standby -> active; restore (run, watch) would then refuse to change this site\n", e.cfg.RoleFile)
		return nil
	}
	// the files stage's records say what this site held as a standby:
	// the next restore (after a demote) compares every file
	if err := clearFilesRecords(e.cfg.StateDir); err != nil {
		return fmt.Errorf("remove the files stage's records: %w", err)
	}
	signer, err := loadSigner(o.signKey, o.signAgent)
	if err != nil {
		return fmt.Errorf("promote: this site's signing key (sign-key) signs the epoch records: %w", err)
	}
	host, _ := os.Hostname()
	for i, root := range roots {
		if chans[i].Epoch() >= epoch {
			continue
		}
		rec := &manifest.EpochRecord{Channel: ids[i], Epoch: epoch, Active: e.cfg.Site, Created: now, Host: host}
		if err := manifest.WriteEpoch(root, rec, signer); err != nil {
			return fmt.Errorf("promote: %w; nothing else changed, run promote again", err)
		}
		// The record must count for this site's own readers.
		ce, err := manifest.ReadEpoch(root, ids[i], as, now)
		if err != nil {
			return err
		}
		if ce.Epoch() != epoch {
			return fmt.Errorf("promote: the epoch record written into %s is not trusted by %s (%v): add this site's key with namespaces=\"%s\" and run promote again", root, e.cfg.AllowedSigners, ce.Ignored, manifest.EpochNamespace)
		}
		fmt.Fprintf(out, "%s: recorded epoch %d (%s active)\n", root, epoch, e.cfg.Site)
	}
	if err := site.RaiseSeenEpoch(e.cfg.seenEpochPath(), epoch); err != nil {
		return err
	}
	if err := site.Write(e.cfg.RoleFile, site.Active); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: standby -> active. This site is now active (epoch %d): the watcher stops restoring; sets the old active site makes from now on are refused.\n", e.cfg.RoleFile, epoch)
	fmt.Fprintln(out, "next: move traffic here, run `restore demote` on the old active site when it is reachable, and start backup here into the reverse channel (doc/runbook.md)")
	return nil
}

// demoteOptions are the settings of `restore demote`.
type demoteOptions struct {
	dry bool
}

func runDemote(o demoteOptions, e env, out io.Writer) error {
	role, err := site.Read(e.cfg.RoleFile)
	if err != nil && !errors.Is(err, site.ErrBadRole) {
		return err
	}
	if role == site.Standby {
		fmt.Fprintf(out, "%s already says standby; nothing to do\n", e.cfg.RoleFile)
		return nil
	}
	if o.dry {
		fmt.Fprintf(out, "would change %s: %s -> standby; backup would then refuse to run on this site\n", e.cfg.RoleFile, role)
		return nil
	}
	lk, err := lockSite(e)
	if err != nil {
		return err
	}
	defer lk.ReleaseLogged(e.log)
	if err := clearFilesRecords(e.cfg.StateDir); err != nil {
		return fmt.Errorf("remove the files stage's records: %w", err)
	}
	if err := site.Write(e.cfg.RoleFile, site.Standby); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %s -> standby. backup refuses to run on this site from now on; disable its cron too.\n", e.cfg.RoleFile, role)
	return nil
}

// loadSigner is the signing key: a key file, or ssh-agent.
func loadSigner(keyFile, agentKey string) (ssh.Signer, error) {
	if keyFile == "" {
		return sshsig.AgentSigner(agentKey)
	}
	return sshsig.LoadSigner(keyFile)
}
