package filetree

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// countingSource counts the files opened and bytes read through it: the
// proof that an unchanged file is not read.
type countingSource struct {
	Source
	opens, bytes atomic.Int64
}

func (c *countingSource) Open(name string) (io.ReadCloser, error) {
	c.opens.Add(1)
	rc, err := c.Source.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingReader{rc, &c.bytes}, nil
}

type countingReader struct {
	io.ReadCloser
	n *atomic.Int64
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.n.Add(int64(n))
	return n, err
}

func makeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"a.txt": "alpha", "sub/b.bin": "beta", "sub/deeper/c": "gamma", "a.b/x": "x", "skip.tmp": "no"}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../a.txt", filepath.Join(dir, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func readList(t *testing.T, st *objects.Store, tree manifest.Tree) map[string]manifest.Entry {
	t.Helper()
	out := map[string]manifest.Entry{}
	if err := st.Trees().Walk(context.Background(), tree, func(e manifest.Entry) error { out[e.Path] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func countObjects(t *testing.T, st *objects.Store) int {
	t.Helper()
	n := 0
	if err := st.Walk(func(string) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCapture(t *testing.T) {
	backends := []struct {
		name string
		src  func(t *testing.T, dir string) Source
	}{
		{"local", func(t *testing.T, dir string) Source { return &LocalSource{Dir: dir} }},
		{"sftp", func(t *testing.T, dir string) Source {
			s := testenv.SSHD(t)
			c, err := sshx.Dial(context.Background(), s.Config())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			sc, err := c.SFTP()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sc.Close() })
			return &SFTPSource{Client: sc, Dir: dir}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			dir := makeTree(t)
			store := objects.New(filepath.Join(t.TempDir(), "objects"))
			src := &countingSource{Source: b.src(t, dir)}
			o := CaptureOptions{Name: "storage", Root: dir, Source: src, Store: store, Exclude: []string{"*.tmp"}}
			tree, cache, st, err := Capture(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			list := readList(t, store, tree)
			if _, ok := list["skip.tmp"]; ok {
				t.Error("excluded file captured")
			}
			if e := list["sub/link"]; e.Type != manifest.TypeSymlink || e.Target != "../a.txt" {
				t.Errorf("symlink = %+v", e)
			}
			e := list["sub/b.bin"]
			obj, _ := os.ReadFile(store.Path(e.Object))
			if e.Type != manifest.TypeFile || e.Mode != 0o640 || !bytes.Equal(obj, []byte("beta")) {
				t.Errorf("file = %+v, object %q", e, obj)
			}
			if st.Files != 4 || tree.Files != 4 || src.opens.Load() != 4 {
				t.Errorf("stats %+v, opens %d", st, src.opens.Load())
			}

			// Nothing changed: nothing is opened.
			src.opens.Store(0)
			src.bytes.Store(0)
			o.Cache = cache
			tree2, cache2, st2, err := Capture(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if src.opens.Load() != 0 || src.bytes.Load() != 0 || st2.Reused != 4 {
				t.Fatalf("unchanged tree: %d opens, %d bytes read, stats %+v; want none", src.opens.Load(), src.bytes.Load(), st2)
			}
			if tree2 != tree {
				t.Errorf("tree changed: %+v -> %+v", tree, tree2)
			}

			// One file changed (new size and mtime): only it is read.
			p := filepath.Join(dir, "sub", "deeper", "c")
			if err := os.WriteFile(p, []byte("gamma-2"), 0o640); err != nil {
				t.Fatal(err)
			}
			future := time.Now().Add(time.Hour)
			testkit.Must(t, os.Chtimes(p, future, future))
			o.Cache = cache2
			before := countObjects(t, store)
			tree3, _, st3, err := Capture(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			if src.opens.Load() != 1 {
				t.Errorf("one changed file: %d opens, want 1", src.opens.Load())
			}
			if n := countObjects(t, store) - before; n != 1+3 {
				t.Errorf("one changed file added %d objects, want 4 (its content, the lists of root, sub, sub/deeper)", n)
			}
			if e := readList(t, store, tree3)["sub/deeper/c"]; e.Size != 7 {
				t.Errorf("changed entry %+v", e)
			}
			// Per-directory lists: the change adds the lists on its path
			// (root, sub, sub/deeper), every other directory's is shared.
			if tree3.Dir == tree.Dir || st3.Lists != tree.Dirs+1 {
				t.Errorf("tree after one change %+v, %d lists", tree3, st3.Lists)
			}
		})
	}
}

func TestCaptureCacheSaveLoad(t *testing.T) {
	ctx := context.Background()
	dir := makeTree(t)
	state := t.TempDir()
	p := filepath.Join(state, "cache")
	store := objects.New(filepath.Join(t.TempDir(), "objects"))
	o := CaptureOptions{Name: "storage", Root: dir, Source: &LocalSource{Dir: dir}, Store: store, CacheDir: state}
	_, c, _, err := Capture(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c.SetID = "0000000001-20260101T000000Z"
	if err := c.Save(p); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(state, manifest.TempPrefix+"*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	got, err := LoadCaptureCache(p)
	if err != nil || got.SetID != c.SetID {
		t.Fatalf("load = %+v, %v", got, err)
	}
	// The loaded cache serves the next capture: nothing is read again.
	src := &countingSource{Source: &LocalSource{Dir: dir}}
	o.Source, o.Cache = src, got
	_, c2, st, err := Capture(ctx, o)
	if err != nil || st.Reused != st.Files || src.opens.Load() != 0 || st.CacheErr != nil {
		t.Fatalf("capture with the loaded cache: %+v, %d opens, %v", st, src.opens.Load(), err)
	}
	// Saved elsewhere (another directory: copied, not renamed).
	c2.SetID = "0000000002-20260101T000000Z"
	p2 := filepath.Join(t.TempDir(), "cache")
	if err := c2.Save(p2); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadCaptureCache(p2); err != nil || got.SetID != c2.SetID {
		t.Fatalf("load copy = %+v, %v", got, err)
	}
	if got, err := LoadCaptureCache(p + "-missing"); got != nil || err != nil {
		t.Fatalf("missing = %v, %v", got, err)
	}
	// A truncated cache: the files after the damage are read again, and
	// the capture says why.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Must(t, os.WriteFile(p, b[:len(b)-40], 0o600))
	trunc, err := LoadCaptureCache(p)
	if err != nil {
		t.Fatal(err)
	}
	src.opens.Store(0)
	o.Cache = trunc
	if _, _, st, err := Capture(ctx, o); err != nil || st.CacheErr == nil || src.opens.Load() == 0 || st.Reused+st.ReadFiles != st.Files {
		t.Fatalf("truncated cache: %+v, %d opens, %v", st, src.opens.Load(), err)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCaptureCache(p); err == nil {
		t.Fatal("garbage cache loaded")
	}
}

// TestRemoveStaleCacheTemps: the half-written next cache of a capture that
// was killed is removed by a later run once it is old enough; one being
// written now, another file and a directory of that name are left alone.
func TestRemoveStaleCacheTemps(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, ".tmp-capture-cache-111")
	fresh := filepath.Join(dir, ".tmp-capture-cache-222")
	other := filepath.Join(dir, "capture-prod-to-bcp-storage.cache")
	for _, p := range []string{old, fresh, other} {
		testkit.Must(t, os.WriteFile(p, []byte("x"), 0o600))
	}
	testkit.Must(t, os.Mkdir(filepath.Join(dir, ".tmp-capture-cache-dir"), 0o700))
	hourAgo := time.Now().Add(-2 * time.Hour)
	testkit.Must(t, os.Chtimes(old, hourAgo, hourAgo))
	testkit.Must(t, os.Chtimes(other, hourAgo, hourAgo))
	gone, err := RemoveStaleCacheTemps(dir, time.Hour)
	if err != nil || len(gone) != 1 || gone[0] != old {
		t.Fatalf("removed %v, %v; want only %s", gone, err, old)
	}
	for _, p := range []string{fresh, other, filepath.Join(dir, ".tmp-capture-cache-dir")} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
}

// TestCaptureReusesLists: with the cache, a directory whose lines did not
// change keeps its list object without encoding it again, and the tree is
// always the one a capture without a cache makes; a list gone from the
// store (pruned) or a version 2 cache (no memos) is encoded again.
func TestCaptureReusesLists(t *testing.T) {
	ctx := context.Background()
	dir := makeTree(t)
	store := objects.New(filepath.Join(t.TempDir(), "objects"))
	o := CaptureOptions{Name: "storage", Root: dir, Source: &LocalSource{Dir: dir}, Store: store, CacheDir: t.TempDir()}
	capture := func(cache *CaptureCache) (manifest.Tree, *CaptureCache, CaptureStats) {
		t.Helper()
		o.Cache = cache
		tree, next, st, err := Capture(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(next.Remove)
		// The same tree as a capture that reads everything and encodes
		// every list.
		o.Cache = nil
		fresh, c, _, err := Capture(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		c.Remove()
		if tree != fresh {
			t.Fatalf("tree with the cache %+v, without %+v", tree, fresh)
		}
		return tree, next, st
	}
	tree1, c1, st1 := capture(nil)
	if st1.ReusedLists != 0 || st1.Lists != tree1.Dirs+1 {
		t.Fatalf("first capture: %+v", st1)
	}
	before := countObjects(t, store)
	tree2, c2, st2 := capture(c1)
	if st2.ReusedLists != st2.Lists || st2.Lists != st1.Lists || tree2 != tree1 || countObjects(t, store) != before {
		t.Fatalf("nothing changed: %+v, tree %+v -> %+v", st2, tree1, tree2)
	}

	// A file's content changes: the lists on its path are encoded again,
	// the others reused.
	p := filepath.Join(dir, "sub", "deeper", "c")
	testkit.Must(t, os.WriteFile(p, []byte("gamma-2"), 0o640))
	future := time.Now().Add(time.Hour)
	testkit.Must(t, os.Chtimes(p, future, future))
	tree3, c3, st3 := capture(c2)
	if st3.ReusedLists != st3.Lists-3 || tree3.Dir == tree2.Dir {
		t.Fatalf("one file changed: %+v", st3)
	}

	// Only a directory's mode changes: its parent's list is encoded again.
	testkit.Must(t, os.Chmod(filepath.Join(dir, "a.b"), 0o700))
	tree4, c4, st4 := capture(c3)
	if st4.ReusedLists != st4.Lists-1 || tree4.Dir == tree3.Dir {
		t.Fatalf("a directory's mode changed: %+v", st4)
	}

	// A list pruned from the store is stored again, not named.
	var sub manifest.Ref
	r := store.Trees()
	r.List = func(ref manifest.Ref) error {
		if ref != tree4.Dir && sub.SHA256 == "" {
			sub = ref
		}
		return nil
	}
	testkit.Must(t, r.Walk(ctx, tree4, func(manifest.Entry) error { return nil }))
	testkit.Must(t, store.Remove(sub.SHA256))
	_, c5, st5 := capture(c4)
	if st5.ReusedLists != st5.Lists-1 {
		t.Fatalf("a pruned list: %+v", st5)
	}
	if ok, err := store.Has(sub.SHA256); !ok || err != nil {
		t.Fatalf("the pruned list is not there again: %v %v", ok, err)
	}

	// A version 2 cache (files only): every file reused, every list
	// encoded again.
	c5.SetID = "0000000005-20260101T000000Z"
	v2 := filepath.Join(t.TempDir(), "cache-v2")
	writeCacheV2(t, c5, v2)
	old, err := LoadCaptureCache(v2)
	if err != nil || old.SetID != c5.SetID {
		t.Fatalf("load version 2: %+v, %v", old, err)
	}
	_, _, st6 := capture(old)
	if st6.Reused != st6.Files || st6.ReadFiles != 0 || st6.ReusedLists != 0 {
		t.Fatalf("version 2 cache: %+v", st6)
	}
}

// writeCacheV2 writes c's file records in the version 2 format.
func writeCacheV2(t *testing.T, c *CaptureCache, file string) {
	t.Helper()
	r, err := openCacheReader(c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	h, err := cacheIDBytes(c.SetID)
	if err != nil {
		t.Fatal(err)
	}
	b := append([]byte(cacheMagicV2), h[len(cacheMagic):]...)
	for ; !r.done; r.next() {
		if r.dir {
			continue
		}
		sum, err := hex.DecodeString(r.e.Object)
		if err != nil {
			t.Fatal(err)
		}
		b = binary.AppendUvarint(b, uint64(len(r.cur)))
		b = append(b, r.cur...)
		b = binary.AppendVarint(b, r.e.Size)
		b = binary.AppendVarint(b, r.e.MTimeNs)
		b = binary.AppendUvarint(b, r.e.Inode)
		b = append(b, sum...)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	b = binary.AppendUvarint(b, 0)
	testkit.Must(t, os.WriteFile(file, b, 0o600))
}
