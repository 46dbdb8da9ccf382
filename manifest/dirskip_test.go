package manifest_test

import (
	"context"
	"slices"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// TestWalkBeside: beside the tree it was made from, a tree with one file
// changed is walked down the changed path only, every other directory
// given once with same set and nothing below it; beside itself nothing is
// walked; beside a tree whose lists are gone, or a 1.x tree, everything is.
func TestWalkBeside(t *testing.T) {
	st := memStore{}
	ents := bigTree(2000, 100) // 20 directories of 100 files, two levels deep
	old := writeTree(t, st, ents)
	changed := slices.Clone(ents)
	i := slices.IndexFunc(changed, func(e manifest.Entry) bool { return e.Type == manifest.TypeFile })
	changed[i].Size++
	tree := writeTree(t, st, changed)
	walk := func(old manifest.Tree, r manifest.TreeReader) (entries, same int, rootSame bool) {
		t.Helper()
		rootSame, err := r.WalkBeside(context.Background(), tree, old, func(e manifest.Entry, s bool) error {
			entries++
			if s {
				same++
				if e.Type != manifest.TypeDir {
					t.Fatalf("%s: same, not a directory", e.Path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return entries, same, rootSame
	}
	n, same, rootSame := walk(old, st.reader())
	if rootSame || same == 0 || n >= len(ents)/2 {
		t.Fatalf("beside the old tree: %d entries, %d same, root same %v (tree: %d entries)", n, same, rootSame, len(ents))
	}
	if n, _, rootSame := walk(tree, st.reader()); !rootSame || n != 0 {
		t.Fatalf("beside itself: %d entries, root same %v", n, rootSame)
	}
	// the old root list pruned: nothing is skipped
	pruned := memStore{}
	for k, v := range st {
		if k != old.Dir.SHA256 {
			pruned[k] = v
		}
	}
	if n, same, _ := walk(old, pruned.reader()); same != 0 || n != len(changed) {
		t.Fatalf("beside a pruned tree: %d entries, %d same, want %d, 0", n, same, len(changed))
	}
	if n, same, _ := walk(manifest.Tree{Name: "1.x", List: old.Dir}, st.reader()); same != 0 || n != len(changed) {
		t.Fatalf("beside a 1.x tree: %d entries, %d same, want %d, 0", n, same, len(changed))
	}
}
