package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

// objMap is a Putter keeping objects in memory.
type objMap map[string][]byte

func (m objMap) Put(_ context.Context, r io.Reader) (Ref, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Ref{}, err
	}
	sum := sha256.Sum256(data)
	ref := Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	m[ref.SHA256] = data
	return ref, nil
}

func (m objMap) reader() TreeReader {
	return TreeReader{Open: func(ref Ref) (io.ReadCloser, error) {
		d, ok := m[ref.SHA256]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(d)), nil
	}}
}

// dirsTree is n files, per to a directory, in two levels of directories.
func dirsTree(n, per int) []Entry {
	mt := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	obj := strings.Repeat("9f", 32)
	var es []Entry
	for i := 0; i < n; i++ {
		if i%(per*10) == 0 {
			es = append(es, Entry{Path: fmt.Sprintf("d%04d", i/(per*10)), Type: TypeDir, Mode: 0o750, MTime: mt})
		}
		if i%per == 0 {
			es = append(es, Entry{Path: fmt.Sprintf("d%04d/s%04d", i/(per*10), i/per), Type: TypeDir, Mode: 0o750, MTime: mt})
		}
		es = append(es, Entry{Path: fmt.Sprintf("d%04d/s%04d/f%08d", i/(per*10), i/per, i), Type: TypeFile, Mode: 0o640, MTime: mt, Size: int64(i), Object: obj})
	}
	return es
}

func writeEntries(t *testing.T, tw *TreeWriter, es []Entry, memo func(dir string) *ListMemo) Tree {
	t.Helper()
	for _, e := range es {
		var m *ListMemo
		if e.Type == TypeDir && memo != nil {
			m = memo(e.Path)
		}
		if err := tw.WriteEntryMemo(e, m); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := tw.Tree("storage", "/srv")
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// A memo whose lines digest matches is reused (nothing encoded or
// stored); a memo whose lines differ, or whose object is not reusable, is
// not: the tree is always the one written without memos.
func TestTreeWriterMemo(t *testing.T) {
	ctx := context.Background()
	es := dirsTree(500, 50)
	st := objMap{}
	memos := map[string]ListMemo{}
	tw := NewTreeWriter(ctx, st)
	tw.OnList = func(dir string, m ListMemo) error { memos[dir] = m; return nil }
	want := writeEntries(t, tw, es, nil)
	if len(memos) != int(want.Lists()) {
		t.Fatalf("%d memos for %d lists", len(memos), want.Lists())
	}
	memo := func(dir string) *ListMemo {
		m, ok := memos[dir]
		if !ok {
			return nil
		}
		return &m
	}
	for _, c := range []struct {
		name     string
		reusable bool
		change   bool
		reused   int64
	}{
		{"same lines", true, false, want.Lists()},
		{"object gone", false, false, 0},
		{"one file changed", true, true, want.Lists() - 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			es := slices.Clone(es)
			if c.change {
				es[len(es)-1].Size++
			}
			fresh := writeEntries(t, NewTreeWriter(ctx, objMap{}), es, nil)
			empty := objMap{}
			tw := NewTreeWriter(ctx, empty)
			tw.Reusable = func(Ref) bool { return c.reusable }
			tw.SetRootMemo(memo(""))
			got := writeEntries(t, tw, es, memo)
			if got != fresh || tw.Reused != c.reused || int64(len(empty)) != got.Lists()-c.reused {
				t.Fatalf("tree %+v (want %+v), %d reused, %d stored", got, fresh, tw.Reused, len(empty))
			}
		})
	}
}

// WalkDirs gives every entry Walk gives, each directory's in order, and
// stops at a missing list.
func TestWalkDirs(t *testing.T) {
	ctx := context.Background()
	st := objMap{}
	tree := writeEntries(t, NewTreeWriter(ctx, st), dirsTree(3000, 40), nil)
	r := st.reader()
	var want []string
	if err := r.Walk(ctx, tree, func(e Entry) error { want = append(want, e.Path); return nil }); err != nil {
		t.Fatal(err)
	}
	var got []string
	last := map[string]string{} // directory -> last name seen
	lists := 0
	r.List = func(Ref) error { lists++; return nil }
	err := r.WalkDirs(ctx, tree, 4, func(e Entry) error {
		dir, name := "", e.Path
		if i := strings.LastIndexByte(e.Path, '/'); i >= 0 {
			dir, name = e.Path[:i], e.Path[i+1:]
		}
		if last[dir] >= name {
			return fmt.Errorf("%q after %q", e.Path, last[dir])
		}
		last[dir] = name
		got = append(got, e.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, ComparePaths)
	if !slices.Equal(got, want) || int64(lists) != tree.Lists() {
		t.Fatalf("WalkDirs: %d entries, %d lists; Walk: %d entries, %d lists", len(got), lists, len(want), tree.Lists())
	}
	for sha, data := range st {
		if sha != tree.Dir.SHA256 && len(data) > 0 {
			delete(st, sha)
			break
		}
	}
	err = r.WalkDirs(ctx, tree, 4, func(Entry) error { return nil })
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("a missing list: %v", err)
	}
}
