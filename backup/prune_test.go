package main

import (
	"context"
	"os"
	"testing"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

func TestPrune(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	first := w.mustRun(t)
	testkit.WriteFile(t, w.storage+"/docs/3/c.pdf", "only in sets 2 and 3")
	second := w.mustRun(t)
	testkit.WriteFile(t, w.storage+"/docs/3/c.pdf", "changed for set 3")
	third := w.mustRun(t)
	// The first set is pinned (a restore uses it): prune must keep it.
	l := manifest.Layout{Root: w.channel}
	testkit.WriteFile(t, l.PinPath(first.SetID), "restoring\n")

	store := objects.New(l.ObjectsDir())
	count := func() int {
		n := 0
		testkit.Must(t, store.Walk(func(string) error { n++; return nil }))
		return n
	}
	before := count()
	dry, err := prune(ctx, pruneOptions{cfg: w.cfg, keep: 1, dryRun: true})
	if err != nil || len(dry.Deleted) != 1 || dry.Deleted[0] != second.SetID || count() != before {
		t.Fatalf("dry run = %+v, %v (objects %d -> %d)", dry, err, before, count())
	}
	res, err := prune(ctx, pruneOptions{cfg: w.cfg, keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 1 || res.Deleted[0] != second.SetID || res.Objects == 0 {
		t.Fatalf("prune = %+v", res)
	}
	for _, id := range []string{first.SetID, third.SetID} {
		if rep, err := w.verify(t, id); id == third.SetID && (err != nil || rep.Status != manifest.StatusComplete) {
			t.Fatalf("kept set %s: %v, %v", id, rep, err)
		}
		if _, err := os.Stat(l.ManifestPath(id)); err != nil {
			t.Fatalf("kept set %s: %v", id, err)
		}
	}
	// Every object a kept set names is still there (setObjects collects them).
	refs := map[string]bool{}
	for _, id := range []string{first.SetID, third.SetID} {
		if err := setObjects(ctx, l, id, refs); err != nil {
			t.Fatal(err)
		}
	}
	for sha := range refs {
		if ok, _ := store.Has(sha); !ok {
			t.Fatalf("object %s of a kept set was deleted", sha)
		}
	}
	// The next run deletes the pruned set's snapshot through the API.
	fourth := w.mustRun(t)
	c, err := es.NewClient(w.cfg.ES)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := c.Snapshots(ctx, w.cfg.ESRepo)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, s := range snaps {
		have[s.Name] = true
	}
	if have[snapshotName(second.SetID)] || !have[snapshotName(first.SetID)] || !have[snapshotName(fourth.SetID)] || len(snaps) != 3 {
		t.Fatalf("snapshots after prune and run: %v", have)
	}
	if _, err := prune(ctx, pruneOptions{cfg: w.cfg, keep: 0}); exitCodes.Code(err) != 2 {
		t.Fatalf("keep 0: %v", err)
	}
}
