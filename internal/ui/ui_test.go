package ui

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// progress is the interface logic packages declare; every Reporter must fit.
type progress interface {
	Begin(what string, total int64, unit string)
	Add(n int64)
	End()
}

var (
	_ progress = Nop{}
	_ progress = (*Bars)(nil)
	_ progress = (*Lines)(nil)
)

func TestLinesPeriodic(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	l := &Lines{log: slog.New(slog.NewTextHandler(&buf, nil)), interval: 10 * time.Second, now: func() time.Time { return clock }}
	l.Begin("files", 100, "files")
	l.Add(10) // same instant: no line
	clock = clock.Add(11 * time.Second)
	l.Add(40) // line
	l.End()
	out := buf.String()
	for _, want := range []string{"start files", "progress files", "done=50", "percent=50.0", "done files"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "progress files"); n != 1 {
		t.Errorf("%d progress lines, want 1:\n%s", n, out)
	}
}

// TestLinesRateFollowsLink: a transfer whose first seconds go at
// loopback speed (the connection's buffers filling) and then at a slow
// link's rate: the progress line's rate and time left are the link's as
// it is now, not the average since the start.
func TestLinesRateFollowsLink(t *testing.T) {
	var buf bytes.Buffer
	clock := time.Unix(0, 0)
	l := &Lines{log: slog.New(slog.NewTextHandler(&buf, nil)), interval: 10 * time.Second, now: func() time.Time { return clock }}
	const mib = 1 << 20
	l.Begin("copy", 100*mib, "bytes")
	l.Add(4 * mib) // buffers filled at once
	for range 10 { // then 64 KiB/s
		clock = clock.Add(time.Second)
		l.Add(64 << 10)
	}
	// 10 s: 4.6 MiB done, one line at the start's inflated rate; the next
	// 10 s at the link's rate alone.
	for range 10 {
		clock = clock.Add(time.Second)
		l.Add(64 << 10)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"rate=\"64.0 KiB/s\"", "eta=25m16s"} {
		if !strings.Contains(last, want) {
			t.Errorf("last line lacks %s:\n%s", want, buf.String())
		}
	}
	l.Begin("files", 10, "files") // an unknown rate says no time left
	clock = clock.Add(10 * time.Second)
	l.Add(0)
	if last := buf.String()[strings.LastIndex(strings.TrimSpace(buf.String()), "\n"):]; strings.Contains(last, "eta=") || !strings.Contains(last, "rate=\"0 files/s\"") {
		t.Errorf("a line with nothing done since the previous: %s", last)
	}
}

func TestNewNotTerminal(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, slog.New(slog.NewTextHandler(&buf, nil)), Options{})
	if _, ok := r.(*Lines); !ok {
		t.Fatalf("New on a buffer = %T, want *Lines", r)
	}
	if _, ok := New(&buf, nil, Options{Quiet: true}).(Nop); !ok {
		t.Fatal("Quiet is not Nop")
	}
}

func TestBarsDraw(t *testing.T) {
	var buf bytes.Buffer
	b := &Bars{w: &buf}
	b.Begin("dump", 1000, "bytes")
	b.Add(1000)
	b.End()
	if !strings.Contains(buf.String(), "dump") {
		t.Errorf("bar output lacks description: %q", buf.String())
	}
}
