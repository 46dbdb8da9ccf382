package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestWatchPieceByPiece moves a set into the bcp channel one file at a time
// in the worst order a careless mover could use (manifest and signature
// first, data after): the watcher must not restore until the last piece is
// there, and must then restore it without being asked.
func TestWatchPieceByPiece(t *testing.T) {
	f := newFixture(t)
	f.createIndex("docs", 1)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY)")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".t VALUES (1),(2)")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "a.txt"), "alpha")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "d/b.txt"), "bravo")
	set := f.publish()

	// worst order: channel.json, the set's manifest and signature, then data
	files := channelFiles(t, f.prodCh)
	var order []string
	for _, rel := range files {
		if rel == manifest.ChannelFileName || strings.HasPrefix(rel, "sets/") {
			order = append(order, rel)
		}
	}
	for _, rel := range files {
		if rel != manifest.ChannelFileName && !strings.HasPrefix(rel, "sets/") {
			order = append(order, rel)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var looks atomic.Int64
	looked := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- runWatch(ctx, watchOptions{Poll: time.Hour, Retry: time.Hour, AfterLook: func() {
			looks.Add(1)
			select {
			case looked <- struct{}{}:
			default:
			}
		}}, f.env(), testWriter{t})
	}()
	waitLook := func(what string) {
		t.Helper()
		select {
		case <-looked:
		case err := <-done:
			t.Fatalf("%s: watch ended: %v", what, err)
		case <-time.After(time.Minute): // a bound against hanging, not a measurement
			t.Fatalf("%s: the watcher did not look", what)
		}
	}
	waitLook("start")
	l, err := ledger.Open(f.state)
	testkit.Must(t, err)
	for i, rel := range order[:len(order)-1] {
		copyFile(t, f.prodCh, f.bcpCh, rel)
		// drain, then wait for the look this piece triggers
		select {
		case <-looked:
		default:
		}
		waitLook(rel)
		if recs, _ := l.Records(); len(recs) > 0 {
			t.Fatalf("after piece %d of %d (%s): a restore started: %+v", i+1, len(order), rel, recs[0])
		}
	}
	last := order[len(order)-1]
	copyFile(t, f.prodCh, f.bcpCh, last)
	complete := time.Now()
	var started time.Time
	for {
		waitLook(last)
		if live, err := l.Live(""); err == nil {
			if live.Set != set {
				t.Fatalf("restored %s, want %s", live.Set, set)
			}
			started = live.Start
			break
		}
		if recs, _ := l.Records(); len(recs) > 0 && recs[len(recs)-1].Outcome == ledger.Failed {
			t.Fatalf("restore failed: %s", recs[len(recs)-1].Error)
		}
	}
	t.Logf("FIGURE set complete -> restore started: %s (%d pieces, %d looks)", started.Sub(complete).Round(time.Millisecond), len(order), looks.Load())
	f.sameData("after watch")

	// two sets arrive together: only the newest is restored
	f.putDocs("docs", map[string]string{"3": "three"})
	skipped := f.publish()
	f.putDocs("docs", map[string]string{"4": "four"})
	newest := f.publish()
	f.transfer()
	for {
		waitLook("two sets")
		if live, err := l.Live(""); err == nil && live.Set == newest {
			break
		}
		if recs, _ := l.Records(); recs[len(recs)-1].Outcome == ledger.Failed {
			t.Fatalf("restore failed: %s", recs[len(recs)-1].Error)
		}
	}
	recs, _ := l.Records()
	for _, r := range recs {
		if r.Set == skipped {
			t.Fatalf("the older of two new sets was restored too: %+v", r)
		}
	}
	f.sameData("after two sets")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
}
