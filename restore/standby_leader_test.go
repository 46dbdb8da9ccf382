package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestStandbyLeaderChange: two standby nodes share one state directory
// (the standby's memory on shared storage). bcp-1 leads and restores the
// newest set; Squirro's cluster service moves the leader to bcp-2, which
// knows what is live and refuses the older set (exit 6) just as bcp-1
// would. A restore lock left by a leader that died is refused while its
// lease runs, naming that node, and taken over after it.
func TestStandbyLeaderChange(t *testing.T) {
	f := newFixture(t)
	older := f.publishSmall()
	f.putDocs("docs", map[string]string{"2": "two"})
	newer := f.publish()
	f.transfer()
	svc := testenv.NewClusterService(t, "bcp-1", "", false)
	node := func(name string) *restorer {
		e := f.env()
		e.cfg.Leader = leader.Options{URL: svc.URL, Field: "cluster.leader", NodeName: name}
		testkit.Must(t, e.cfg.Leader.Validate())
		e.cfg.LockLease = 3 * time.Second
		return newRestorer(e.cfg, e.log, e.rep)
	}
	ctx := context.Background()
	bcp1, bcp2 := node("bcp-1"), node("bcp-2")
	if lr, err := bcp2.isLeader(ctx); err != nil || lr.Leader {
		t.Fatalf("bcp-2 while bcp-1 leads: %+v, %v", lr, err)
	}
	if p, err := bcp1.run(ctx, request{}); err != nil || p.Set != newer {
		t.Fatalf("bcp-1 restore: %v (set %v), want %s", err, p, newer)
	}
	svc.Move("bcp-2")
	if lr, err := bcp2.isLeader(ctx); err != nil || !lr.Leader {
		t.Fatalf("bcp-2 after the move: %+v, %v; want the leader", lr, err)
	}
	_, err := bcp2.run(ctx, request{SetID: older})
	if !errors.Is(err, manifest.ErrStale) || exitCode(err) != 6 || !strings.Contains(err.Error(), newer) {
		t.Fatalf("bcp-2 restoring the older set: %v (exit %d); want stale, exit 6, naming live %s", err, exitCode(err), newer)
	}
	l, err := bcp2.openLedger()
	testkit.Must(t, err)
	if live, err := bcp2.live(l, "prod-to-bcp"); err != nil || live.Set != newer {
		t.Fatalf("bcp-2's live set: %+v, %v; want %s", live, err, newer)
	}

	// bcp-2 dies in the middle of a restore: its lock stays behind.
	lk, err := lock.AcquireWith(f.state, "restore", lock.Options{Program: program, Host: "bcp-2", Lease: 3 * time.Second})
	testkit.Must(t, err)
	died := time.Now()
	svc.Move("bcp-1")
	f.putDocs("docs", map[string]string{"3": "three"})
	newest := f.publish()
	f.transfer()
	_, err = bcp1.run(ctx, request{})
	if time.Since(died) < 3*time.Second && (!errors.Is(err, lock.ErrLocked) || !strings.Contains(err.Error(), "bcp-2")) {
		t.Fatalf("bcp-1 within bcp-2's lease: %v; want ErrLocked naming bcp-2", err)
	}
	time.Sleep(time.Until(died.Add(4 * time.Second)))
	if p, err := bcp1.run(ctx, request{}); err != nil || p.Set != newest {
		t.Fatalf("bcp-1 after bcp-2's lease expired: %v (set %v), want %s", err, p, newest)
	}
	if err := lk.Release(); err == nil {
		t.Fatal("the dead leader's Release removed the lock bcp-1 took over")
	}
	if _, err := os.Stat(filepath.Join(f.state, "restore.lock")); !os.IsNotExist(err) {
		t.Fatalf("bcp-1 left its lock: %v", err)
	}
}
