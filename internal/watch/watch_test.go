package watch

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// next waits for the next trigger; the bound only keeps a broken watcher from
// hanging the test, it measures nothing.
func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("trigger channel closed")
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no trigger")
	}
	return ""
}

func TestWatchTriggersOnNewSetPieces(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sets"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := Watch(ctx, Options{Dir: dir, Poll: time.Hour, Debounce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, ch); r != ReasonStart {
		t.Fatalf("first trigger %q, want start", r)
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"objects dir appears", func() error { return os.MkdirAll(filepath.Join(dir, "objects", "ab"), 0o755) }},
		{"object lands in new fan-out dir", func() error {
			return os.WriteFile(filepath.Join(dir, "objects", "ab", "ab12"), []byte("x"), 0o644)
		}},
		{"set dir appears", func() error { return os.Mkdir(filepath.Join(dir, "sets", "0000000001-x"), 0o755) }},
		{"manifest lands in set dir", func() error {
			return os.WriteFile(filepath.Join(dir, "sets", "0000000001-x", "manifest.json"), []byte("{}"), 0o644)
		}},
		{"signature renamed into place", func() error {
			p := filepath.Join(dir, "sets", "0000000001-x", ".tmp-sig")
			if err := os.WriteFile(p, []byte("sig"), 0o644); err != nil {
				return err
			}
			return os.Rename(p, filepath.Join(dir, "sets", "0000000001-x", "manifest.json.sig"))
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if r := next(t, ch); r != ReasonEvent {
			t.Fatalf("%s: trigger %q, want event", s.name, r)
		}
	}
	cancel()
	for range ch {
	}
}

func TestWatchPollsAsSafetyNet(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := Watch(ctx, Options{Dir: t.TempDir(), Poll: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	next(t, ch)
	if r := next(t, ch); r != ReasonPoll {
		t.Fatalf("trigger %q, want poll", r)
	}
}

func TestWatchMissingDir(t *testing.T) {
	if _, err := Watch(context.Background(), Options{Dir: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}

func TestInteresting(t *testing.T) {
	for rel, want := range map[string]bool{
		".": true, "sets": true, "sets/0001-x": true, "sets/0001-x/sub": true,
		"objects": true, "objects/ab": true, "es": true, "es/indices/u/0": true,
		"pins": false, "locks": false, "sets/.tmp-x": false,
	} {
		if got := interesting(rel); got != want {
			t.Errorf("interesting(%q) = %v, want %v", rel, got, want)
		}
	}
}
