package main

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/manifest"
)

// report writes push's or pull's metrics textfile (metrics-file) and, when
// the run failed, sends an alert (alert-*), like backup run. A run that
// found no complete set to forward yet (exit 4, try again later) is
// recorded as failed but not alerted: a set still being written at the
// source is normal, and one that never completes shows as no recent
// success. Their own failures are logged and never hide the run's result.
func report(ctx context.Context, o copyOptions, res *mover.Result, runErr error, start time.Time, log *slog.Logger) {
	if o.dryRun {
		return
	}
	if o.metricsFile != "" {
		r := metrics.Run{Program: program, Channel: path.Base(strings.TrimRight(o.src, "/")), Time: time.Now(), Success: runErr == nil}
		if res != nil && runErr == nil {
			r.Stages, r.Gauges = copyMetrics(res, time.Since(start))
		}
		if err := metrics.Write(o.metricsFile, r); err != nil {
			log.Warn("metrics", "err", err)
		}
	}
	if code := exitCode(runErr); runErr != nil && code != 4 && o.alert.Enabled() {
		a := alert.Failure(program, o.command, code, runErr, fmt.Sprintf("source: %s\ndestination: %s", o.src, o.dst))
		if err := alert.Send(context.WithoutCancel(ctx), o.alert, a); err != nil {
			log.Error("alert not delivered", "err", err)
		}
	}
}

// copyMetrics are a successful run's stage ("copy": duration, bytes of
// every set) and gauges.
func copyMetrics(res *mover.Result, took time.Duration) ([]metrics.Stage, []metrics.Gauge) {
	bytes, copied, left := res.Bytes, 0, len(res.Skipped)
	if res.Copied > 0 {
		copied++
	}
	for _, s := range res.Older {
		bytes += s.Bytes
		if s.Reason != "" {
			left++
		} else if s.Copied > 0 {
			copied++
		}
	}
	g := []metrics.Gauge{
		{Name: "sets_copied", Help: "Sets that got files in the last successful run (the newest and older ones the destination lacked).", Value: float64(copied)},
		{Name: "sets_not_forwarded", Help: "Sets at the source left out by the last successful run: not complete or not trusted there.", Value: float64(left)},
	}
	set := res.Set
	if res.DstNewer != "" {
		set = res.DstNewer
	}
	if seq, err := manifest.ParseSetID(set); err == nil {
		g = append(g, metrics.Gauge{Name: "set_sequence", Help: "Sequence number of the newest set at the destination.", Value: float64(seq)})
	}
	if t, err := manifest.SetIDTime(set); err == nil {
		g = append(g, metrics.Gauge{Name: "set_timestamp_seconds", Help: "Unix time the newest set at the destination was created on the source.", Value: float64(t.Unix())})
	}
	return []metrics.Stage{{Name: "copy", Duration: took, Bytes: bytes}}, g
}
