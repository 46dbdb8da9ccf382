package filetree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// memTree is a directory tree in memory, both a Source (capture) and a
// Target (apply), so that the streaming paths can be run at a few hundred
// thousand entries without as many files on disk.
type memTree struct {
	nodes map[string]*memNode        // "." is the root
	kids  map[string]map[string]bool // directory -> names in it
	inode uint64
	reads atomic.Int64
}

type memNode struct {
	mode   fs.FileMode // with the type bits
	mtime  time.Time
	data   []byte
	target string
	inode  uint64
}

type memInfo struct {
	name string
	n    *memNode
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return int64(len(i.n.data)) }
func (i memInfo) Mode() fs.FileMode  { return i.n.mode }
func (i memInfo) ModTime() time.Time { return i.n.mtime }
func (i memInfo) IsDir() bool        { return i.n.mode.IsDir() }
func (i memInfo) Sys() any           { return i.n }

func newMemTree() *memTree {
	return &memTree{nodes: map[string]*memNode{".": {mode: fs.ModeDir | 0o755}}, kids: map[string]map[string]bool{}}
}

func clean(name string) string {
	if name == "" {
		return "."
	}
	return name
}

func (m *memTree) put(name string, n *memNode) {
	m.inode++
	n.inode = m.inode
	m.link(clean(name), n)
}

func (m *memTree) link(name string, n *memNode) {
	m.nodes[name] = n
	d := path.Dir(name)
	if m.kids[d] == nil {
		m.kids[d] = map[string]bool{}
	}
	m.kids[d][path.Base(name)] = true
}

func (m *memTree) unlink(name string) {
	delete(m.nodes, name)
	delete(m.kids[path.Dir(name)], path.Base(name))
}

func (m *memTree) String() string { return "mem" }

func (m *memTree) Lstat(name string) (fs.FileInfo, error) {
	n, ok := m.nodes[clean(name)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return memInfo{path.Base(clean(name)), n}, nil
}

func (m *memTree) ReadDir(name string) ([]fs.FileInfo, error) {
	dir := clean(name)
	if n, ok := m.nodes[dir]; !ok || !n.mode.IsDir() {
		return nil, fs.ErrNotExist
	}
	var out []fs.FileInfo
	for k := range m.kids[dir] {
		out = append(out, memInfo{k, m.nodes[path.Join(dir, k)]})
	}
	return out, nil
}

func (m *memTree) Open(name string) (io.ReadCloser, error) {
	n, ok := m.nodes[clean(name)]
	if !ok {
		return nil, fs.ErrNotExist
	}
	m.reads.Add(1)
	return io.NopCloser(bytes.NewReader(n.data)), nil
}

func (m *memTree) Readlink(name string) (string, error) { return m.nodes[clean(name)].target, nil }

func (m *memTree) Meta(fi fs.FileInfo) Meta { return Meta{Inode: fi.Sys().(*memNode).inode} }

func (m *memTree) Mkdir(name string, perm fs.FileMode) error {
	if _, ok := m.nodes[name]; ok {
		return fs.ErrExist
	}
	m.put(name, &memNode{mode: fs.ModeDir | perm})
	return nil
}

type memFile struct {
	bytes.Buffer
	n *memNode
}

func (f *memFile) Close() error { f.n.data = f.Bytes(); return nil }

func (m *memTree) Create(name string, perm fs.FileMode) (io.WriteCloser, error) {
	if _, ok := m.nodes[name]; ok {
		return nil, fs.ErrExist
	}
	n := &memNode{mode: perm}
	m.put(name, n)
	return &memFile{n: n}, nil
}

func (m *memTree) Symlink(oldname, newname string) error {
	m.put(newname, &memNode{mode: fs.ModeSymlink | 0o777, target: oldname})
	return nil
}

func (m *memTree) Rename(oldname, newname string) error {
	n, ok := m.nodes[oldname]
	if !ok || n.mode.IsDir() {
		return fs.ErrNotExist // only files and links are renamed by Apply
	}
	m.unlink(oldname)
	m.link(newname, n)
	return nil
}

func (m *memTree) Remove(name string) error {
	if _, ok := m.nodes[name]; !ok {
		return fs.ErrNotExist
	}
	if len(m.kids[name]) > 0 {
		return fmt.Errorf("remove %s: directory not empty", name)
	}
	m.unlink(name)
	return nil
}

func (m *memTree) RemoveAll(name string) error {
	for k := range m.kids[name] {
		_ = m.RemoveAll(path.Join(name, k)) // a map: cannot fail
	}
	m.unlink(name)
	return nil
}

func (m *memTree) Chmod(name string, mode fs.FileMode) error {
	n := m.nodes[name]
	n.mode = n.mode&fs.ModeType | mode
	return nil
}

func (m *memTree) Lchown(string, int, int) error { return nil }
func (m *memTree) Chtimes(name string, mtime time.Time) error {
	m.nodes[clean(name)].mtime = mtime
	return nil
}
func (m *memTree) Owner(fs.FileInfo) (int, int, bool) { return 0, 0, false }
func (m *memTree) TimeGranularity() time.Duration     { return time.Nanosecond }

// listPutter keeps what it is given (the directory lists) so that the tree
// can be walked back.
type listPutter struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newListPutter() *listPutter { return &listPutter{m: map[string][]byte{}} }

func (l *listPutter) Put(_ context.Context, r io.Reader) (manifest.Ref, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return manifest.Ref{}, err
	}
	sum := sha256.Sum256(b)
	ref := manifest.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b))}
	l.mu.Lock()
	l.m[ref.SHA256] = b
	l.mu.Unlock()
	return ref, nil
}

func (l *listPutter) Open(ref manifest.Ref) (io.ReadCloser, error) {
	l.mu.Lock()
	b, ok := l.m[ref.SHA256]
	l.mu.Unlock()
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// expected is the set's list as the spec defines it, built without the
// code under test: every node of m (root excluded) in walk order.
func expected(m *memTree) []manifest.Entry {
	var out []manifest.Entry
	for p, n := range m.nodes {
		if p == "." {
			continue
		}
		e := manifest.Entry{Path: p, Mode: uint32(n.mode & fs.ModePerm), MTime: n.mtime}
		switch {
		case n.mode.IsDir():
			e.Type = manifest.TypeDir
		case n.mode&fs.ModeSymlink != 0:
			e.Type, e.Target = manifest.TypeSymlink, n.target
		default:
			sum := sha256.Sum256(n.data)
			e.Type, e.Size, e.Object = manifest.TypeFile, int64(len(n.data)), hex.EncodeToString(sum[:])
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return manifest.ComparePaths(out[i].Path, out[j].Path) < 0 })
	return out
}

// treeOf writes entries with the tree writer, as format 2.0 defines.
func treeOf(t *testing.T, es []manifest.Entry) manifest.Tree {
	t.Helper()
	tw := manifest.NewTreeWriter(context.Background(), newListPutter())
	for _, e := range es {
		testkit.Must(t, tw.WriteEntry(e))
	}
	tr, err := tw.Tree("storage", "")
	testkit.Must(t, err)
	return tr
}

// sameTree reports the first difference between two trees' contents.
func sameTree(a, b *memTree) error {
	if len(a.nodes) != len(b.nodes) {
		return fmt.Errorf("%d entries, want %d", len(a.nodes), len(b.nodes))
	}
	for p, n := range b.nodes {
		g, ok := a.nodes[p]
		switch {
		case !ok:
			return fmt.Errorf("%s missing", p)
		case p == ".":
		case n.mode&fs.ModeSymlink != 0 && g.mode&fs.ModeSymlink != 0 && g.target == n.target:
			// a link's own mtime is not restored (it would be followed)
		case g.mode != n.mode || !g.mtime.Equal(n.mtime) || !bytes.Equal(g.data, n.data) || g.target != n.target:
			return fmt.Errorf("%s: %v %v %d bytes -> %q, want %v %v %d bytes -> %q", p, g.mode, g.mtime, len(g.data), g.target, n.mode, n.mtime, len(n.data), n.target)
		}
	}
	return nil
}

// TestStreamingAtScale: at 300,000 files the streaming paths - capture
// with the capture cache read and written alongside the walk, and Apply
// merging the set with the target per directory - give the manifest tree
// that format 2.0 defines for the source and a target equal to it, for a
// first run, an unchanged run and a 1% change with files added and
// removed.
func TestStreamingAtScale(t *testing.T) {
	const dirs, perDir = 300, 1000
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := newMemTree()
	objs := memObjects{}
	file := func(p, content string, mtime time.Time) {
		b := []byte(content)
		sum := sha256.Sum256(b)
		objs[hex.EncodeToString(sum[:])] = b
		src.put(p, &memNode{mode: 0o640, mtime: mtime, data: b})
	}
	for d := 0; d < dirs; d++ {
		dir := fmt.Sprintf("d%03d", d)
		src.put(dir, &memNode{mode: fs.ModeDir | 0o750, mtime: t0})
		for i := 0; i < perDir; i++ {
			file(fmt.Sprintf("%s/f%07d.pdf", dir, d*perDir+i), fmt.Sprintf("document %d", d*perDir+i), t0)
		}
		if d%50 == 0 {
			src.put(dir+"/sub", &memNode{mode: fs.ModeDir | 0o700, mtime: t0})
			src.put(dir+"/sub/link", &memNode{mode: fs.ModeSymlink | 0o777, mtime: t0, target: "../f0000000.pdf"})
			file(dir+"/sub/x", "below", t0)
		}
	}
	cacheDir := t.TempDir()
	capture := func(cache *CaptureCache) (manifest.Tree, *listPutter, *CaptureCache, CaptureStats) {
		t.Helper()
		lists := newListPutter()
		tr, next, st, err := Capture(ctx, CaptureOptions{Name: "storage", Source: src, Store: lists, Cache: cache, CacheDir: cacheDir})
		testkit.Must(t, err)
		want := treeOf(t, expected(src))
		if tr.Dir != want.Dir || tr.Dirs != want.Dirs || tr.Files != want.Files || tr.Bytes != want.Bytes {
			t.Fatalf("captured tree %+v, want %+v", tr, want)
		}
		return tr, lists, next, st
	}
	dst := newMemTree()
	apply := func(tr manifest.Tree, lists *listPutter) ApplyStats {
		t.Helper()
		r := manifest.TreeReader{Open: lists.Open}
		st, err := Apply(ctx, ApplyOptions{Target: dst, Objects: objs, MaxChanges: 10,
			Entries: func(fn func(manifest.Entry) error) error { return r.Walk(ctx, tr, fn) }})
		testkit.Must(t, err)
		if err := sameTree(dst, src); err != nil {
			t.Fatalf("target after apply: %v", err)
		}
		return st
	}

	tr1, lists1, cache1, st := capture(nil)
	if st.ReadFiles != st.Files || st.Files != dirs*perDir+dirs/50 {
		t.Fatalf("first capture %+v", st)
	}
	if a := apply(tr1, lists1); a.Added != int64(len(src.nodes)-1) {
		t.Fatalf("first apply %+v", a)
	}

	src.reads.Store(0)
	tr2, lists2, cache2, st := capture(cache1)
	if src.reads.Load() != 0 || st.Reused != st.Files || tr2.Dir != tr1.Dir {
		t.Fatalf("unchanged capture read %d files: %+v", src.reads.Load(), st)
	}
	if a := apply(tr2, lists2); a.Added+a.Replaced+a.Removed+a.MetaFixed != 0 {
		t.Fatalf("unchanged apply %+v", a)
	}

	// 1%: 3,000 files rewritten (30 directories of 100), 100 removed, 100
	// added in a new directory; the target also holds what the set lacks.
	t1 := t0.Add(time.Hour)
	for d := 0; d < 30; d++ {
		for i := 0; i < 100; i++ {
			k := d*10*perDir + i
			file(fmt.Sprintf("d%03d/f%07d.pdf", d*10, k), fmt.Sprintf("document %d, second version", k), t1)
		}
	}
	for i := 0; i < 100; i++ {
		src.unlink(fmt.Sprintf("d299/f%07d.pdf", 299*perDir+i))
	}
	src.put("new", &memNode{mode: fs.ModeDir | 0o750, mtime: t1})
	for i := 0; i < 100; i++ {
		file(fmt.Sprintf("new/n%03d", i), fmt.Sprintf("new %d", i), t1)
	}
	for _, p := range []string{"d150/zz-extra", "d000/.tmp-bcp-f0000001.pdf-0123456789ab"} {
		dst.put(p, &memNode{mode: 0o600, mtime: t0, data: []byte("not in the set")})
	}
	dst.put("gone", &memNode{mode: fs.ModeDir | 0o700, mtime: t0})
	dst.put("gone/y", &memNode{mode: 0o600, mtime: t0})
	src.reads.Store(0)
	tr3, lists3, _, st := capture(cache2)
	if src.reads.Load() != 3000+100 || st.ReadFiles != 3100 {
		t.Fatalf("1%% change: %d files read, %+v", src.reads.Load(), st)
	}
	a := apply(tr3, lists3)
	if a.Added != 101 || a.Replaced != 3000 || a.Removed != 100+3 || len(a.Stale) != 1 || len(a.Changes) != 10 || !a.ChangesTruncated {
		t.Fatalf("1%% apply %+v", a)
	}
}
