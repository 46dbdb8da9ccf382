package main

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// sameData fails the test unless bcp holds what prod holds: documents per
// index, rows and checksum per table, files and their hashes.
func (f *fixture) sameData(what string) {
	f.t.Helper()
	if p, b := f.docCounts(f.prodES), f.docCounts(f.bcpES); !maps.Equal(p, b) {
		f.t.Fatalf("%s: documents per index differ:\nprod %v\n bcp %v", what, p, b)
	}
	if p, b := f.tables(f.prodDB), f.tables(f.bcpDB); !maps.Equal(p, b) {
		f.t.Fatalf("%s: tables differ:\nprod %v\n bcp %v", what, p, b)
	}
	skip := func(rel string) bool { return filetree.Excluded(rel, f.settings().Exclude) }
	if p, b := testkit.Tree(f.t, f.prodTree, nil), testkit.Tree(f.t, f.bcpTree, skip); !maps.Equal(p, b) {
		f.t.Fatalf("%s: storage trees differ:\nprod %v\n bcp %v", what, p, b)
	}
}

func (f *fixture) restore(o runOptions) (*bytes.Buffer, error) {
	var out bytes.Buffer
	err := runRun(context.Background(), o, f.env(), &out)
	f.t.Logf("restore run %+v:\n%s", o, out.String())
	return &out, err
}

// TestCycle is the whole standby side of two replication cycles: a first
// set restored onto an empty standby, then a second one after changes in
// prod that must carry exactly those changes; then going back to the first
// set from a read-only copy of the channel as it was then.
func TestCycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	// prod, cycle 1
	f.createIndex("docs", 2)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two", "3": "three"})
	f.createIndex("gone", 1)
	f.putDocs("gone", map[string]string{"a": "will be deleted in prod"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".users (id INT PRIMARY KEY, name VARCHAR(50))")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".users VALUES (1,'ann'),(2,'bob'),(3,'cid')")
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("meta"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("meta")+".projects (id INT PRIMARY KEY, title TEXT)")
	f.exec(f.prodDB, "INSERT INTO "+f.db("meta")+".projects VALUES (1,'alpha')")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "assets/logo.png"), "png bytes")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/b.pdf"), "pdf b")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "pipelets/p.py"), "print(1)")
	testkit.Must(t, os.Symlink("assets/logo.png", filepath.Join(f.prodTree, "logo")))
	// the standby has its own leftovers: a stale index matching the
	// patterns, an excluded cache, a Redis key
	testkit.WriteFile(t, filepath.Join(f.bcpTree, "cache/tmp"), "standby's own cache")
	testkit.WriteFile(t, filepath.Join(f.bcpTree, "stale.txt"), "not in prod")
	resp, err := f.bcpES.Indices.Create(f.index("stale"))
	testkit.Must(t, err)
	_ = resp.Body.Close()
	testkit.Must(t, f.w.BCP.Redis.Client(t).Set(ctx, "cached", "x", 0).Err())

	set1 := f.publish()
	f.transfer()
	// a read-only copy of the channel as it is now: the filer's snapshot
	snapDir := filepath.Join(f.w.BCP.NFS, ".snapshot-"+f.name, "prod-to-bcp")
	testkit.Must(t, os.MkdirAll(snapDir, 0o750))
	copyChannel(t, f.bcpCh, snapDir)

	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("cycle 1: %v", err)
	}
	f.sameData("cycle 1")
	if n, _ := f.w.BCP.Redis.Client(t).Exists(ctx, "cached").Result(); n != 0 {
		t.Fatal("redis was not flushed")
	}
	if b, _ := os.ReadFile(f.restarts); strings.Count(string(b), "restarted") != 2 {
		t.Fatalf("restart ran %d times, want 2 (one per node)", strings.Count(string(b), "restarted"))
	}
	if _, err := os.Stat(filepath.Join(f.bcpTree, "cache/tmp")); err != nil {
		t.Fatalf("excluded path touched: %v", err)
	}
	f.checkLive(set1)

	// prod, cycle 2: documents added and deleted, an index gone, a new
	// index; rows changed, added, deleted; files added, changed, removed
	f.putDocs("docs", map[string]string{"4": "four", "5": "five"})
	f.deleteDoc("docs", "1")
	f.deleteIndex("gone")
	f.createIndex("new", 1)
	f.putDocs("new", map[string]string{"n": "new index"})
	f.exec(f.prodDB, "UPDATE "+f.db("app")+".users SET name='bea' WHERE id=2")
	f.exec(f.prodDB, "DELETE FROM "+f.db("app")+".users WHERE id=3")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".users VALUES (4,'dan')")
	f.exec(f.prodDB, "CREATE TABLE "+f.db("meta")+".tags (id INT PRIMARY KEY)")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/c.pdf"), "pdf c, new")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a, changed")
	testkit.Must(t, os.Remove(filepath.Join(f.prodTree, "docs/b.pdf")))
	testkit.Must(t, os.RemoveAll(filepath.Join(f.prodTree, "pipelets")))
	set2 := f.publish()
	f.transfer()

	// the dry run names exactly the changes and changes nothing
	before := testkit.Tree(t, f.bcpTree, nil)
	out, err := f.restore(runOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for _, want := range []string{"add     docs/c.pdf", "replace docs/a.pdf", "remove  docs/b.pdf", "remove  pipelets/p.py",
		"delete (gone from prod): " + f.index("gone"), "drop and load databases"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run does not say %q", want)
		}
	}
	if strings.Contains(out.String(), "logo.png") {
		t.Error("dry run would touch an unchanged file")
	}
	if !maps.Equal(before, testkit.Tree(t, f.bcpTree, nil)) {
		t.Fatal("dry run changed the storage tree")
	}
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("cycle 2: %v", err)
	}
	f.sameData("cycle 2")
	f.checkLive(set2)

	// back to set 1, from the read-only snapshot directory
	ro := readOnly(t, snapDir)
	listing := testkit.Tree(t, ro, nil)
	if _, err := f.restore(runOptions{From: ro, SetID: set1}); exitCode(err) != 6 {
		t.Fatalf("older set without --allow-older: exit %d (%v), want 6", exitCode(err), err)
	}
	if _, err := f.restore(runOptions{From: ro, SetID: set1, AllowOlder: true}); err != nil {
		t.Fatalf("older set from read-only dir: %v", err)
	}
	if !maps.Equal(listing, testkit.Tree(t, ro, nil)) {
		t.Fatal("restore wrote into the read-only directory")
	}
	n := f.docCounts(f.bcpES)
	if n[f.index("docs")] != 3 || n[f.index("gone")] != 1 || len(n) != 2 {
		t.Fatalf("after going back to set 1: documents %v", n)
	}
	if _, err := os.Stat(filepath.Join(f.bcpTree, "docs/b.pdf")); err != nil {
		t.Fatal("set 1's docs/b.pdf is not back")
	}
	f.checkLive(set1)

	var list bytes.Buffer
	testkit.Must(t, runList(ctx, listOptions{}, f.env(), &list))
	t.Logf("restore list:\n%s", list.String())
	for _, want := range []string{set1 + " ", set2 + " "} {
		if !strings.Contains(list.String(), want) {
			t.Fatalf("restore list does not show %s", want)
		}
	}
	if !regexp.MustCompile(set1+`.*live`).MatchString(list.String()) || !regexp.MustCompile(set2+`.*restored`).MatchString(list.String()) {
		t.Fatalf("restore list: want %s live and %s restored", set1, set2)
	}
}

// checkLive checks the ledger and the pins after a successful restore.
func (f *fixture) checkLive(set string) {
	f.t.Helper()
	l, err := ledger.Open(f.state)
	testkit.Must(f.t, err)
	live, err := l.Live("")
	if err != nil || live.Set != set {
		f.t.Fatalf("live = %q (%v), want %s", live.Set, err, set)
	}
	var stages []string
	for _, s := range live.Stages {
		stages = append(stages, s.Name+"="+s.Outcome)
	}
	want := "elasticsearch=ok mysql=ok files=ok redis=ok restart=ok postcheck=ok"
	if strings.Join(stages, " ") != want {
		f.t.Fatalf("stages %v, want %s", stages, want)
	}
	pins, err := ledger.ReadPins(manifest.Layout{Root: f.bcpCh}.PinsDir())
	testkit.Must(f.t, err)
	if len(pins) != 1 || pins[set].Reason != "live" {
		f.t.Fatalf("pins %v, want only %s live", pins, set)
	}
}

// readOnly makes dir read-only and returns a path to it: a read-only bind
// mount when this process may mount (root), else the directory with its
// write bits removed.
func readOnly(t *testing.T, dir string) string {
	t.Helper()
	mnt := dir + "-ro"
	testkit.Must(t, os.MkdirAll(mnt, 0o750))
	if exec.Command("mount", "--bind", dir, mnt).Run() == nil {
		t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
		if err := exec.Command("mount", "-o", "remount,ro,bind", mnt).Run(); err == nil {
			if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o644); err == nil {
				t.Fatal("read-only bind mount is writable")
			}
			return mnt
		}
	}
	testkit.Must(t, exec.Command("chmod", "-R", "a-w", dir).Run())
	t.Cleanup(func() { _ = exec.Command("chmod", "-R", "u+w", dir).Run() })
	return dir
}
