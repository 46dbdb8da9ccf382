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
