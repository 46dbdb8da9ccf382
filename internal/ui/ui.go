package ui

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/squirro-bcp/bcp/manifest"
)

// Reporter is what this package gives to logic packages: the one progress
// interface, manifest.Progress.
type Reporter = manifest.Progress

// Nop reports nothing.
type Nop = manifest.NoProgress

// Options tune New.
type Options struct {
	// Interval between log lines when not on a terminal; 30s when zero.
	Interval time.Duration
	// ForceLog uses log lines even on a terminal (--log-format json does).
	ForceLog bool
	// Quiet reports nothing.
	Quiet bool
}

// New returns bars on w if it is a terminal, else periodic Info lines on log.
func New(w io.Writer, log *slog.Logger, opts Options) Reporter {
	if opts.Quiet {
		return Nop{}
	}
	if f, ok := w.(*os.File); ok && !opts.ForceLog && term.IsTerminal(int(f.Fd())) {
		return &Bars{w: w}
	}
	iv := opts.Interval
	if iv <= 0 {
		iv = 30 * time.Second
	}
	return &Lines{log: log, interval: iv, now: time.Now}
}

// Bars draws one progress bar at a time on a terminal.
type Bars struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

func (b *Bars) Begin(what string, total int64, unit string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finish()
	if total <= 0 {
		total = -1 // spinner
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }),
	}
	if unit == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true))
	} else {
		opts = append(opts, progressbar.OptionSetItsString(unit), progressbar.OptionShowIts())
	}
	b.bar = progressbar.NewOptions64(total, opts...)
}

func (b *Bars) Add(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		_ = b.bar.Add64(n)
	}
}

func (b *Bars) End() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finish()
}

func (b *Bars) finish() {
	if b.bar != nil {
		_ = b.bar.Finish()
		b.bar = nil
	}
}

// Lines logs a line when a task begins, at most every interval while it
// runs (on Add), and when it ends. A progress line gives the rate since
// the previous line and, when the total is known, the time left at that
// rate: on a slow or a varying link the estimate follows the link as it
// is now, not the average since the start (which the first seconds, when
// the connection's buffers fill at loopback speed, would flatter).
type Lines struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time

	mu          sync.Mutex
	what, unit  string
	total, done int64
	start, last time.Time
	lastDone    int64 // done at the previous line
	active      bool
}

func (l *Lines) Begin(what string, total int64, unit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked()
	l.what, l.total, l.unit, l.done, l.lastDone = what, total, unit, 0, 0
	l.start = l.now()
	l.last = l.start
	l.active = true
	l.log.Info("start "+what, "total", total, "unit", unit)
}

func (l *Lines) Add(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done += n
	if !l.active {
		return
	}
	if now := l.now(); now.Sub(l.last) >= l.interval {
		rate := float64(l.done-l.lastDone) / now.Sub(l.last).Seconds()
		l.last, l.lastDone = now, l.done
		args := []any{"done", l.done, "unit", l.unit}
		if l.total > 0 {
			args = append(args, "total", l.total, "percent", fmt.Sprintf("%.1f", 100*float64(l.done)/float64(l.total)))
		}
		args = append(args, "elapsed", now.Sub(l.start).Round(time.Second).String(), "rate", l.rate(rate))
		if left := l.total - l.done; l.total > 0 && left > 0 && rate > 0 {
			args = append(args, "eta", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second).String())
		}
		l.log.Info("progress "+l.what, args...)
	}
}

// rate says per second units of l's unit, bytes as Bytes does.
func (l *Lines) rate(perSecond float64) string {
	if l.unit == "bytes" {
		return Bytes(int64(perSecond)) + "/s"
	}
	return fmt.Sprintf("%.0f %s/s", perSecond, l.unit)
}

func (l *Lines) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.endLocked()
}

func (l *Lines) endLocked() {
	if !l.active {
		return
	}
	l.active = false
	l.log.Info("done "+l.what, "done", l.done, "unit", l.unit, "elapsed", l.now().Sub(l.start).Round(time.Millisecond).String())
}
