package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/manifest"
)

// The standby's monitoring: the Prometheus textfile (metrics-file) that
// every restore and every look of the watcher writes, and the watcher's
// alert when the recovery point - the set the standby holds - is older
// than max-recovery-point-age, with one notice when it is not any more.
// Whether that alert is firing is kept in the state directory, so a
// restarted watcher neither repeats it nor forgets to say it is over.

// standbyState is what the standby holds and what waits in its channel.
type standbyState struct {
	Live    ledger.Record    // zero: nothing restored yet
	Newest  manifest.SetInfo // newest signed set in the channel (ID "": none)
	Pending int              // signed sets newer than Live
	Created time.Time        // Newest's creation time
	Failed  *ledger.Record   // the last failed restore, if after Live's
}

// channelSets says which signed set of the channel is the newest and how
// many are newer than sequence live (a channel that cannot be listed has
// none).
func channelSets(channel string, live uint64) (newest manifest.SetInfo, pending int) {
	if channel == "" {
		return newest, 0
	}
	sets, err := manifest.List(channel)
	if err != nil {
		return newest, 0
	}
	for _, s := range sets {
		if !s.HasSignature {
			continue
		}
		newest = s
		if s.Sequence > live {
			pending++
		}
	}
	return newest, pending
}

// standby reads the ledger and the channel.
func (r *restorer) standby() (standbyState, error) {
	var st standbyState
	l, err := r.openLedger()
	if err != nil {
		return st, err
	}
	if st.Live, err = r.live(l, r.expect(r.cfg.Channel).Name); err != nil {
		return st, err
	}
	if f, err := l.LastFailure(); err == nil && f.Start.After(st.Live.Start) {
		st.Failed = &f
	}
	st.Newest, st.Pending = channelSets(r.cfg.Channel, st.Live.Sequence)
	if st.Newest.ID != "" {
		if created, err := manifest.SetIDTime(st.Newest.ID); err == nil {
			st.Created = created
		}
	}
	return st, nil
}

// gauges are the state's metrics as of now; firing says whether the
// recovery point alert is firing.
func (st standbyState) gauges(now time.Time, maxAge time.Duration, firing bool) []metrics.Gauge {
	var g []metrics.Gauge
	add := func(name, help string, v float64) { g = append(g, metrics.Gauge{Name: name, Help: help, Value: v}) }
	if st.Live.Set != "" {
		add("recovery_point_timestamp_seconds", "Unix time the set the standby holds was created on the source.", float64(st.Live.Created.Unix()))
		add("recovery_point_age_seconds", "Age of the set the standby holds, when this file was written.", manifest.Age(st.Live.Created, now).Seconds())
		add("recovery_point_sequence", "Sequence number of the set the standby holds.", float64(st.Live.Sequence))
	}
	if st.Newest.ID != "" {
		add("newest_set_sequence", "Sequence number of the newest signed set in the channel.", float64(st.Newest.Sequence))
		add("newest_set_timestamp_seconds", "Unix time the newest signed set in the channel was created on the source.", float64(st.Created.Unix()))
	}
	add("sets_waiting", "Signed sets in the channel newer than the one the standby holds.", float64(st.Pending))
	if maxAge > 0 {
		add("max_recovery_point_age_seconds", "The watcher alerts when the recovery point is older than this (max-recovery-point-age).", maxAge.Seconds())
	}
	v := 0.0
	if firing {
		v = 1
	}
	add("recovery_point_alert", "1 while the watcher's recovery point alert is firing.", v)
	return g
}

// metricsChannel is the channel label: the channel directory's name, as
// backup and transfer write it.
func (r *restorer) metricsChannel() string { return filepath.Base(r.cfg.Channel) }

// reportRun writes the metrics file after a restore run of q that
// returned p and err; a run that never began (refused, dry run) writes
// nothing. Failures are logged: they never hide the run's result.
func (r *restorer) reportRun(q request, p *plan, err error) {
	if r.cfg.MetricsFile == "" || q.DryRun || p == nil || len(p.Stages) == 0 {
		return
	}
	st, serr := r.standby()
	if serr != nil {
		r.log.Warn("metrics", "err", serr)
		return
	}
	run := metrics.Run{Program: program, Channel: r.metricsChannel(), Time: time.Now(), Success: err == nil,
		Gauges: st.gauges(time.Now(), r.cfg.MaxRecoveryPointAge, r.alertState().Firing)}
	var total time.Duration
	for _, s := range p.Stages {
		if s.Outcome == ledger.OK && !s.End.IsZero() {
			run.Stages = append(run.Stages, metrics.Stage{Name: s.Name, Duration: s.End.Sub(s.Start)})
			total += s.End.Sub(s.Start)
		}
	}
	run.Stages = append(run.Stages, metrics.Stage{Name: "total", Duration: total})
	if werr := metrics.Write(r.cfg.MetricsFile, run); werr != nil {
		r.log.Warn("metrics", "err", werr)
	}
}

// recoveryAlert is the watcher's recovery point alert, kept in the state
// directory.
type recoveryAlert struct {
	Firing bool      `json:"firing"`
	Since  time.Time `json:"since,omitzero"` // when it was sent
	Set    string    `json:"set,omitempty"`  // the recovery point then ("" nothing restored)
}

const recoveryAlertFile = "recovery-point-alert.json"

func (r *restorer) alertState() recoveryAlert {
	var a recoveryAlert
	b, err := os.ReadFile(filepath.Join(r.cfg.StateDir, recoveryAlertFile))
	if err == nil {
		err = json.Unmarshal(b, &a)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("recovery point alert state unreadable; taken as not firing", "err", err)
	}
	return a
}

func (r *restorer) saveAlertState(a recoveryAlert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return manifest.WriteFileAtomic(filepath.Join(r.cfg.StateDir, recoveryAlertFile), b, 0o600)
}

// monitor is the watcher's check after each look (on the leader of a
// standby): the recovery point alert, then the metrics file. started is
// when the watcher started: with nothing restored at all, the standby is
// too old once the watcher has waited longer than the threshold.
func (w *watcher) monitor(ctx context.Context, now time.Time) {
	r := w.r
	st, err := r.standby()
	if err != nil {
		r.log.Error("monitor", "err", err)
		return
	}
	a := r.alertState()
	if max := r.cfg.MaxRecoveryPointAge; max > 0 {
		a = w.checkRecoveryPoint(ctx, st, a, now, max)
	}
	if r.cfg.MetricsFile != "" {
		run := metrics.Run{Program: program, Channel: r.metricsChannel(), Gauges: st.gauges(now, r.cfg.MaxRecoveryPointAge, a.Firing)}
		if err := metrics.WriteState(r.cfg.MetricsFile, run); err != nil {
			r.log.Warn("metrics", "err", err)
		}
	}
}

// checkRecoveryPoint sends the alert when the recovery point has become
// too old and the notice when it is not any more; the state changes only
// once the message is delivered (or no alert channel is configured), so
// an undelivered one is tried again at the next look.
func (w *watcher) checkRecoveryPoint(ctx context.Context, st standbyState, a recoveryAlert, now time.Time, max time.Duration) recoveryAlert {
	r := w.r
	var age time.Duration
	var what string
	if st.Live.Set != "" {
		age = manifest.Age(st.Live.Created, now)
		what = fmt.Sprintf("recovery point is set %s, created %s, %s old", st.Live.Set, st.Live.Created.UTC().Format(time.RFC3339), age.Round(time.Second))
	} else {
		age = now.Sub(w.started)
		what = fmt.Sprintf("nothing restored yet, %s after the watcher started", age.Round(time.Second))
	}
	old := age > max
	if old == a.Firing {
		return a
	}
	where := fmt.Sprintf("standby %s, channel %s: ", r.cfg.Site, r.cfg.Channel)
	msg := alert.Alert{Program: program, Command: "watch", Time: now.UTC(), Status: alert.Firing}
	msg.Host, _ = os.Hostname()
	if old {
		msg.Summary = where + what + fmt.Sprintf(", more than max-recovery-point-age %s", max)
		msg.Detail = w.staleDetail(st)
		r.log.Error("recovery point too old", "set", st.Live.Set, "age", age.Round(time.Second).String(), "max", max.String())
	} else {
		msg.Status = alert.Resolved
		msg.Summary = where + what + fmt.Sprintf(", within max-recovery-point-age %s again", max)
		if !a.Since.IsZero() {
			msg.Detail = fmt.Sprintf("too old since %s (alert sent then)", a.Since.UTC().Format(time.RFC3339))
		}
		r.log.Info("recovery point within max-recovery-point-age again", "set", st.Live.Set, "age", age.Round(time.Second).String())
	}
	if r.cfg.Alert.Enabled() {
		if err := alert.Send(ctx, r.cfg.Alert, msg); err != nil {
			r.log.Error("alert not delivered; tried again at the next look", "err", err)
			return a
		}
	}
	next := recoveryAlert{Firing: old}
	if old {
		next.Since, next.Set = now, st.Live.Set
	}
	if err := r.saveAlertState(next); err != nil {
		r.log.Error("recovery point alert state not saved; a restarted watcher may repeat the message", "err", err)
	}
	return next
}

// staleDetail says what the standby knows about why no newer set was
// restored, and where to look.
func (w *watcher) staleDetail(st standbyState) string {
	var b strings.Builder
	switch {
	case st.Pending > 0:
		fmt.Fprintf(&b, "%d newer signed set(s) wait in the channel (newest %s): they are being restored or cannot be; see restore status and the watcher's log.\n", st.Pending, st.Newest.ID)
	case st.Newest.ID != "":
		fmt.Fprintf(&b, "no newer set in the channel (newest %s, created %s): check backup on the active site (its metrics and alerts) and transfer.\n", st.Newest.ID, st.Created.UTC().Format(time.RFC3339))
	default:
		b.WriteString("the channel holds no signed set: check backup on the active site and transfer.\n")
	}
	if f := st.Failed; f != nil {
		fmt.Fprintf(&b, "last failed restore: set %s at %s, %s: %s\n", f.Set, f.Start.UTC().Format(time.RFC3339), f.Outcome, f.Error)
	}
	return b.String()
}
