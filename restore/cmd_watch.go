package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/watch"
	"github.com/squirro-bcp/bcp/manifest"
)

type watchOptions struct {
	Poll  time.Duration
	Retry time.Duration
	// AfterLook, if set, is called after each look at the channel (tests
	// use it to know the watcher has seen a change).
	AfterLook func()
	// Now, if set, is the clock of the recovery point check (tests).
	Now func() time.Time
}

func newWatchCommand() *ucli.Command {
	return prog.Command(&ucli.Command{
		Name:  "watch",
		Usage: "wait for new complete sets and restore the newest as it arrives",
		Description: `Watches the channel with fsnotify, and polls every --poll-interval as a safety net (NFS
does not deliver events from other clients). On each look it considers the signed sets newer
than what is live, newest first: an incomplete one is waited for (nothing is restored until
its last piece is there); a complete one is restored; a corrupt, unauthentic or foreign one
raises an alert and the next older one is considered. Only the leader node acts (--leader-url);
on an active site the watcher stays idle. A failed restore is retried after --retry-interval.
Runs until stopped (SIGTERM); a restore under way is then recorded as interrupted, with its
stage, and the next start finishes the job (a snapshot restore Elasticsearch still runs is
cancelled and started over); see examples/systemd/restore-watch.service.

` + exitHelp,
		Flags: append([]ucli.Flag{
			flags.Duration("poll-interval", time.Minute, "safety-net poll interval"),
			flags.Duration("retry-interval", 10*time.Minute, "wait before retrying a set whose restore failed"),
		}, settingsFlags()...),
		Action: func(c *ucli.Context) error {
			e, err := newEnv(c)
			if err != nil {
				return err
			}
			return runWatch(c.Context, watchOptions{Poll: c.Duration("poll-interval"), Retry: c.Duration("retry-interval")}, e, c.App.Writer)
		},
	})
}

// watcher is the state restore watch keeps between looks.
type watcher struct {
	r       *restorer
	o       watchOptions
	out     io.Writer
	failed  map[string]time.Time // set -> when its restore failed
	alerted map[string]bool      // sets already reported as bad
	waiting string               // the incomplete set last reported
	idle    string               // why the watcher was idle last time
	acting  bool                 // the last look got past the role and leader checks
	started time.Time
}

func runWatch(ctx context.Context, o watchOptions, e env, out io.Writer) error {
	if err := e.cfg.validate(true); err != nil {
		return err
	}
	if o.Retry <= 0 {
		o.Retry = 10 * time.Minute
	}
	w := &watcher{r: newRestorer(e.cfg, e.log, e.rep), o: o, out: out, failed: map[string]time.Time{}, alerted: map[string]bool{}}
	w.started = w.now()
	triggers, err := watch.Watch(ctx, watch.Options{Dir: e.cfg.Channel, Poll: o.Poll, Logf: func(f string, a ...any) { e.log.Warn(fmt.Sprintf(f, a...)) }})
	if err != nil {
		return err
	}
	e.log.Info("watching", "channel", e.cfg.Channel, "poll", o.Poll.String())
	for reason := range triggers {
		e.log.Debug("look", "reason", reason)
		w.look(ctx)
		if w.acting {
			w.monitor(ctx, w.now())
		}
		if o.AfterLook != nil {
			o.AfterLook()
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		e.log.Info("watch stopped")
		return nil
	}
	return ctx.Err()
}

func (w *watcher) now() time.Time {
	if w.o.Now != nil {
		return w.o.Now()
	}
	return time.Now()
}

func (w *watcher) setIdle(why string) {
	w.acting = why == ""
	if why != w.idle && why != "" {
		w.r.log.Info("not restoring: " + why)
	}
	w.idle = why
}

// look checks the channel once and restores the newest complete set, if any.
func (w *watcher) look(ctx context.Context) {
	r := w.r
	role, err := site.Read(r.cfg.RoleFile)
	if err != nil {
		w.setIdle(err.Error())
		return
	}
	if role != site.Standby {
		w.setIdle("this site is " + string(role) + " (promoted); restore changes only a standby")
		return
	}
	lr, err := r.isLeader(ctx)
	if err != nil {
		w.setIdle(err.Error())
		return
	}
	if !lr.Leader {
		w.setIdle(lr.Note)
		return
	}
	w.setIdle("")
	l, err := r.openLedger()
	if err != nil {
		r.log.Error("ledger", "err", err)
		return
	}
	live, err := r.live(l, r.expect(r.cfg.Channel).Name)
	if err != nil {
		r.log.Error("ledger", "err", err)
		return
	}
	sets, err := manifest.List(r.cfg.Channel)
	if err != nil {
		r.log.Error("list sets", "channel", r.cfg.Channel, "err", err)
		return
	}
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if s.Sequence <= live.Sequence {
			return // never older than live
		}
		if !s.HasSignature {
			continue // not published yet (or still being moved): a set without signature does not exist
		}
		if t, ok := w.failed[s.ID]; ok && time.Since(t) < w.o.Retry {
			return
		}
		rep, err := r.verify(ctx, r.cfg.Channel, s.ID, live.Sequence)
		r.rep.End()
		switch {
		case err == nil:
			// complete: restore it
		case errors.Is(err, manifest.ErrIncomplete):
			if w.waiting != s.ID {
				n := int64(0)
				if rep != nil {
					n = rep.MissingCount
				}
				r.log.Info("newest set still arriving; waiting for it", "set", s.ID, "missing", n)
				w.waiting = s.ID
			}
			return
		case errors.Is(err, manifest.ErrCorrupt), errors.Is(err, manifest.ErrNotAuthentic),
			errors.Is(err, manifest.ErrNotForUs), errors.Is(err, manifest.ErrUnknownVersion), errors.Is(err, manifest.ErrStale):
			if !w.alerted[s.ID] {
				w.alerted[s.ID] = true
				r.log.Error("set refused; considering the next older one", "set", s.ID, "err", err)
				r.alert(ctx, err, &plan{Set: s.ID})
			}
			continue
		default:
			r.log.Error("verify", "set", s.ID, "err", err)
			return
		}
		r.log.Info("set complete; restore starting", "set", s.ID, "sequence", s.Sequence)
		q := request{SetID: s.ID}
		p, err := r.run(ctx, q)
		r.reportRun(q, p, err)
		if err != nil {
			if errors.Is(err, lock.ErrLocked) {
				r.log.Info("another restore holds the lock; will look again", "err", err)
				return
			}
			if errors.Is(err, ErrInterrupted) {
				return // stopping; the ledger says where, the next start restores it again
			}
			w.failed[s.ID] = time.Now()
			r.log.Error("restore failed; will retry", "set", s.ID, "retry_after", w.o.Retry.String(), "err", err)
		}
		if p != nil {
			printPlan(w.out, p)
		}
		return
	}
}
