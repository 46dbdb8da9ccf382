package filetree

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// skipSet captures src into store as a format 2.0 tree (objects and
// per-directory lists).
func skipSet(t *testing.T, src string, store *objects.Store) ([]manifest.Entry, manifest.Tree) {
	t.Helper()
	mem := memObjects{}
	ents := snapshot(t, src, mem)
	for _, b := range mem {
		if _, err := store.Put(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	tw := manifest.NewTreeWriter(context.Background(), store)
	for _, e := range ents {
		testkit.Must(t, tw.WriteEntry(e))
	}
	tree, err := tw.Tree("storage", src)
	testkit.Must(t, err)
	return ents, tree
}

// applyBeside applies tree onto lt beside old (nil: a full comparison).
func applyBeside(t *testing.T, lt Target, store *objects.Store, tree manifest.Tree, old *manifest.Tree) ApplyStats {
	t.Helper()
	o := ApplyOptions{Target: lt, Objects: storeObjects{store}, Entries: func(fn func(manifest.Entry) error) error {
		return store.Trees().Walk(context.Background(), tree, fn)
	}}
	if old != nil {
		o.Beside = func(fn func(manifest.Entry, bool) error) (bool, error) {
			return store.Trees().WalkBeside(context.Background(), tree, *old, fn)
		}
	}
	st, err := Apply(context.Background(), o)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return st
}

// TestApplySkipsUnchangedDirectories: applied beside the tree last applied,
// Apply skips the directories whose list did not change and gives the
// tree a full comparison gives; a file changed by hand below an unchanged
// directory stays as it is until a full comparison; a directory removed
// by hand, or an old tree whose lists were pruned, gets a full comparison.
// Local, plain SFTP and helper targets alike (the skip is above the target).
func TestApplySkipsUnchangedDirectories(t *testing.T) {
	for name, mk := range targets(t) {
		t.Run(name, func(t *testing.T) { testApplySkips(t, mk) })
	}
}

func testApplySkips(t *testing.T, mk func(t *testing.T, dir string) Target) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "storage")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 60 {
		write(t, filepath.Join(src, fmt.Sprintf("d%d/e%d/f%02d", i%3, i%2, i)), fmt.Sprint("content ", i), t0.Add(time.Duration(i)*time.Second))
	}
	store := objects.New(t.TempDir())
	_, tree1 := skipSet(t, src, store)
	lt := mk(t, dst)
	applyBeside(t, lt, store, tree1, nil)

	// d1 and d2/e0 change; d0 and d2/e1 do not
	write(t, filepath.Join(src, "d1/e0/f00-new"), "new", t0)
	write(t, filepath.Join(src, "d2/e0/f02"), "changed", t0.Add(time.Hour))
	testkit.Must(t, os.Remove(filepath.Join(src, "d1/e1/f01")))
	testkit.Must(t, os.Chtimes(filepath.Join(src, "d1/e1"), t0, t0))
	_, tree2 := skipSet(t, src, store)
	st := applyBeside(t, lt, store, tree2, &tree1)
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("after a skipping apply:\n got %v\nwant %v", got, want)
	}
	// d0, d0/e0, d0/e1 are not walked: d0 is skipped; d2/e1 is skipped
	if st.SkippedDirs != 2 || st.Added != 1 || st.Replaced != 1 || st.Removed != 1 {
		t.Fatalf("stats %+v, want 2 directories skipped, 1 added, 1 replaced, 1 removed", st)
	}

	// a file changed by hand below an unchanged directory: not corrected
	// by a skipping run, corrected by a full comparison
	hand := filepath.Join(dst, "d0/e0/f00")
	write(t, hand, "by hand", t0.Add(2*time.Hour))
	if st := applyBeside(t, lt, store, tree2, &tree2); !st.SkippedRoot || st.Replaced != 0 {
		t.Fatalf("stats %+v, want the whole tree skipped", st)
	}
	if b, _ := os.ReadFile(hand); string(b) != "by hand" {
		t.Fatalf("%s = %q: a skipping run compared it", hand, b)
	}
	if st := applyBeside(t, lt, store, tree2, nil); st.Replaced != 1 {
		t.Fatalf("full comparison: %+v, want 1 replaced", st)
	}
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("after a full comparison:\n got %v\nwant %v", got, want)
	}

	// a skipped directory removed by hand: compared in full, put back
	testkit.Must(t, os.RemoveAll(filepath.Join(dst, "d0")))
	applyBeside(t, lt, store, tree2, &tree1)
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("after d0 was removed by hand:\n got %v\nwant %v", got, want)
	}

	// the old tree's changed lists pruned: nothing is skipped below them
	write(t, hand, "by hand", t0.Add(2*time.Hour))
	testkit.Must(t, os.Chmod(store.Path(tree1.Dir.SHA256), 0o600))
	testkit.Must(t, os.Remove(store.Path(tree1.Dir.SHA256)))
	if st := applyBeside(t, lt, store, tree2, &tree1); st.SkippedDirs != 0 || st.Replaced != 1 {
		t.Fatalf("beside a pruned tree: %+v, want a full comparison (1 replaced)", st)
	}
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("beside a pruned tree:\n got %v\nwant %v", got, want)
	}
}
