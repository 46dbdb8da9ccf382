package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// age makes the lock file look last written ago (as if its holder stopped
// renewing it then).
func age(t *testing.T, dir string, ago time.Duration) {
	t.Helper()
	p := filepath.Join(dir, "backup.lock")
	held, _, err := read(p)
	if err != nil {
		t.Fatal(err)
	}
	held.Renewed = held.Renewed.Add(-ago)
	writeLock(t, dir, held)
	old := time.Now().Add(-ago)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestLeaseAcrossNodes: a lock held by another node (a live process as
// far as this host can tell) is refused while its lease runs and taken
// over once it was not renewed within the lease - the holder died or its
// host is gone. A lock without a lease from another node never expires.
func TestLeaseAcrossNodes(t *testing.T) {
	tests := []struct {
		name    string
		lease   time.Duration
		ago     time.Duration
		wantErr error
	}{
		{"lease running", time.Minute, 30 * time.Second, ErrLocked},
		{"lease expired", time.Minute, 2 * time.Minute, nil},
		{"no lease never expires", 0, 24 * time.Hour, ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// app-1 takes the lock: this very process, so alive(), but as
			// another node name it is judged by its lease only.
			if _, err := AcquireWith(dir, "backup", Options{Program: "backup", Host: "app-1", Lease: tt.lease}); err != nil {
				t.Fatal(err)
			}
			age(t, dir, tt.ago)
			l, err := AcquireWith(dir, "backup", Options{Program: "backup", Host: "app-2", Lease: time.Minute})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("app-2 Acquire = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "app-1") {
					t.Fatalf("the refusal does not name the holder: %v", err)
				}
				return
			}
			held, _, _ := read(l.Path())
			if held.Host != "app-2" || held.LeaseSeconds != 60 {
				t.Fatalf("lock now %+v, want app-2's with a 60 s lease", held)
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestKeep: the holder renews its lease while the run lives, so the lock
// never looks expired; when another run took it over (the holder was
// stalled past its lease), the holder's context is cancelled with ErrLost
// and Release leaves the other run's lock alone.
func TestKeep(t *testing.T) {
	dir := t.TempDir()
	l, err := AcquireWith(dir, "backup", Options{Program: "backup", Host: "app-1", Lease: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := l.Keep(context.Background())
	first, _, _ := read(l.Path())
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, _, err := read(l.Path())
		if err == nil && now.Renewed.After(first.Renewed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease was not renewed within 30 s (renewal every 1 s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := AcquireWith(dir, "backup", Options{Program: "backup", Host: "app-2", Lease: time.Minute}); !errors.Is(err, ErrLocked) {
		t.Fatalf("a renewed lock was taken over: %v", err)
	}
	// app-1 stalls (simulated: its record is aged past the lease), app-2 takes over.
	age(t, dir, time.Minute)
	l2, err := AcquireWith(dir, "backup", Options{Program: "backup", Host: "app-2", Lease: time.Minute})
	if err != nil {
		t.Fatalf("app-2 could not take the expired lock: %v", err)
	}
	select {
	case <-ctx.Done():
		if !errors.Is(context.Cause(ctx), ErrLost) {
			t.Fatalf("cause %v, want ErrLost", context.Cause(ctx))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the holder was not told that it lost the lock")
	}
	if err := l.Release(); err == nil {
		t.Fatal("app-1's Release removed app-2's lock")
	}
	if held, _, _ := read(l2.Path()); held.Host != "app-2" {
		t.Fatalf("lock now held by %s, want app-2", held.Host)
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
}
