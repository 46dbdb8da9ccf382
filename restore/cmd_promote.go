package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/site"
)

func newPromoteCommand() *ucli.Command {
	return command("promote", "failover: make this site active; its watcher stops restoring",
		`Writes "active" into the role file. From then on restore refuses to change this site
(exit 6) and the watcher stays idle; backup may run here into the reverse channel. Refused
while a restore holds the lock. See doc/runbook.md for the whole failover and failback.`,
		[]ucli.Flag{&ucli.BoolFlag{Name: "dry-run", Usage: "show what would change"}},
		func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runPromote(c.Context, c.Bool("dry-run"), e, c.App.Writer)
		})
}

func runPromote(ctx context.Context, dry bool, e env, out io.Writer) error {
	role, err := site.Read(e.cfg.RoleFile)
	if err != nil {
		return err
	}
	if role == site.Active {
		fmt.Fprintf(out, "%s already says active; nothing to do\n", e.cfg.RoleFile)
		return nil
	}
	dir, err := e.cfg.stateDir()
	if err != nil {
		return err
	}
	lk, err := lock.Acquire(dir, "restore", program)
	if err != nil {
		if errors.Is(err, lock.ErrLocked) {
			return fmt.Errorf("a restore is running on this site: %w; wait for it to end (restore status) or stop the watcher, then promote", err)
		}
		return err
	}
	defer lk.Release()
	r := newRestorer(e.cfg, e.log, e.rep)
	if l, err := r.openLedger(); err == nil {
		if live, err := r.live(l, r.expect(e.cfg.Channel).Name); err == nil && live.Set != "" {
			fmt.Fprintf(out, "this site holds set %s (sequence %d, recovery point %s)\n", live.Set, live.Sequence, live.Created.UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	if dry {
		fmt.Fprintf(out, "would change %s: standby -> active; restore (run, watch) would then refuse to change this site\n", e.cfg.RoleFile)
		return nil
	}
	if err := site.Write(e.cfg.RoleFile, site.Active); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: standby -> active. This site is now active: the watcher stops restoring.\n", e.cfg.RoleFile)
	fmt.Fprintln(out, "next: move traffic here, stop backup on the old active site, set its role to standby, and start backup here into the reverse channel (doc/runbook.md)")
	return nil
}
