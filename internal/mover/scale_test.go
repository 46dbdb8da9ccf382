package mover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestStreamingPushAtScale pushes a set of 300,000 files through the
// bucketed plan and copy (spools, per-bucket cache) and checks that the
// destination holds exactly the source's files, byte for byte - what the
// map-of-every-file push produced - that a rerun finds everything present
// without reading a file, and that after losses and a damaged file a
// rerun copies exactly those. The objects are served from memory by the
// source and written to memory at the destination, so that the test
// needs no 300,000 files on disk. Not timed.
func TestStreamingPushAtScale(t *testing.T) {
	const files = 300_000
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	src := &virtualSrc{l: NewLocal(srcDir), objs: map[string][]byte{}, dirs: map[string][]string{}}
	tree := make([]manifest.Entry, 0, files)
	for i := range files {
		data := []byte(fmt.Sprintf("file %d of the scale test\n", i))
		sum := movertest.Sum(data)
		name := manifest.ObjectRel(sum)
		if _, dup := src.objs[name]; !dup {
			src.objs[name] = data
			src.dirs[path.Dir(name)] = append(src.dirs[path.Dir(name)], path.Base(name))
		}
		tree = append(tree, manifest.Entry{Path: fmt.Sprintf("d%04d/f%07d", i/1000, i), Type: manifest.TypeFile, Mode: 0o640, Size: int64(len(data)), Object: sum})
	}
	id := c.PublishEntries(tree)
	dst := newMemFS()
	cache := filepath.Join(t.TempDir(), "checked")
	push := func() *Result {
		t.Helper()
		o := opts(c, src, dst)
		o.Workers = 64
		o.Checked = mustOpenCheckedFile(t, cache)
		res := run(t, o)
		if err := o.Checked.Save(); err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := push()
	if res.Set != id || res.Copied != res.Files || res.Files < files {
		t.Fatalf("first push: %+v, want all of set %s's %d+ files copied", res, id, files)
	}
	// The destination holds the source's files and nothing else.
	want := src.all(t)
	got := dst.all()
	if len(got) != len(want) {
		t.Errorf("destination holds %d files, the source %d", len(got), len(want))
	}
	for name, data := range want {
		if !bytes.Equal(got[name], data) {
			t.Fatalf("%s differs at the destination (%d bytes, want %d)", name, len(got[name]), len(data))
		}
	}

	// Nothing to do, and nothing read to find that out.
	dst.opens.Store(0)
	if res := push(); res.Copied != 0 || res.Present != res.Files {
		t.Fatalf("second push: %+v, want nothing copied", res)
	}
	if n := dst.opens.Load(); n != 0 {
		t.Fatalf("second push read %d files at the destination, want 0", n)
	}

	// Lose 1000 objects and damage one (same size, newer time): the
	// cache, merged bucket by bucket, says which to copy and which to
	// hash; nothing else is read.
	var lost []string
	for name := range src.objs {
		if len(lost) == 1001 {
			break
		}
		lost = append(lost, name)
	}
	damaged := lost[1000]
	for _, name := range lost[:1000] {
		dst.remove(name)
	}
	dst.damage(damaged)
	dst.opens.Store(0)
	res = push()
	if res.Copied != 1001 || res.Replaced != 1 || res.Present != res.Files-1001 {
		t.Fatalf("after losses: %+v, want 1001 copied, 1 of them replaced", res)
	}
	if n := dst.opens.Load(); n != 1 {
		t.Fatalf("after losses: %d files read at the destination, want 1 (the damaged one)", n)
	}
	if got := dst.all(); !bytes.Equal(got[damaged], src.objs[damaged]) || len(got) != len(want) {
		t.Fatalf("after losses: damaged file not replaced, or %d files (want %d)", len(got), len(want))
	}
}

func mustOpenCheckedFile(t *testing.T, path string) *Checked {
	t.Helper()
	c, err := OpenChecked(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// virtualSrc is a channel directory on disk whose objects/ also holds
// objs, served from memory. It is only read.
type virtualSrc struct {
	l    *Local
	objs map[string][]byte   // name -> content
	dirs map[string][]string // objects/<aa> -> names in objs
}

var _ NameLister = (*virtualSrc)(nil)

func (v *virtualSrc) String() string { return "virtual+" + v.l.String() }

func (v *virtualSrc) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	ents, err := v.l.ReadDir(ctx, dir)
	return v.merge(dir, ents, err, false)
}

func (v *virtualSrc) ReadDirNames(ctx context.Context, dir string) ([]Entry, error) {
	ents, err := v.l.ReadDirNames(ctx, dir)
	return v.merge(dir, ents, err, true)
}

func (v *virtualSrc) merge(dir string, ents []Entry, err error, names bool) ([]Entry, error) {
	more, ok := v.dirs[dir]
	if !ok {
		return ents, err
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, n := range more {
		e := Entry{Name: n, Size: int64(len(v.objs[dir+"/"+n])), ModTime: time.Unix(1700000000, 0)}
		if names {
			e.Size = -1
		}
		ents = append(ents, e)
	}
	return ents, nil
}

func (v *virtualSrc) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if data, ok := v.objs[name]; ok {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
	return v.l.Open(ctx, name)
}

func (v *virtualSrc) Create(context.Context, string) (File, error) {
	return nil, errors.New("read only")
}
func (v *virtualSrc) MkdirAll(context.Context, string) error       { return errors.New("read only") }
func (v *virtualSrc) Rename(context.Context, string, string) error { return errors.New("read only") }
func (v *virtualSrc) Remove(context.Context, string) error         { return errors.New("read only") }
func (v *virtualSrc) Close() error                                 { return nil }

// all returns every file of the channel, by name.
func (v *virtualSrc) all(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	for name, data := range v.objs {
		out[name] = data
	}
	err := filepath.WalkDir(v.l.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(v.l.Root, p)
		data, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// memFS is a destination in memory that can sync at once (FSSyncer) and
// fingerprint directories (Digester), as a local one can.
type memFS struct {
	mu    sync.Mutex
	files map[string]*memFile
	kids  map[string]map[string]bool // directory -> names (files and directories)
	clock int64
	opens atomic.Int64 // files opened for reading, but channel.json
}

type memFile struct {
	fs    *memFS
	name  string
	data  []byte
	mtime time.Time
}

var (
	_ FSSyncer = (*memFS)(nil)
	_ Digester = (*memFS)(nil)
)

func newMemFS() *memFS {
	return &memFS{files: map[string]*memFile{}, kids: map[string]map[string]bool{".": {}}}
}

func (m *memFS) String() string { return "mem" }

func (m *memFS) ReadDir(_ context.Context, dir string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	kids, ok := m.kids[dir]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	out := make([]Entry, 0, len(kids))
	for n := range kids {
		full := path.Join(dir, n)
		if f, ok := m.files[full]; ok {
			out = append(out, Entry{Name: n, Size: int64(len(f.data)), ModTime: f.mtime})
		} else {
			out = append(out, Entry{Name: n, Dir: true, Size: 0})
		}
	}
	return out, nil
}

func (m *memFS) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	out := make([][32]byte, len(dirs))
	for i, d := range dirs {
		ents, err := m.ReadDir(ctx, d)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		out[i] = remote.Digest(ents)
	}
	return out, nil
}

func (m *memFS) SyncFS(context.Context, []string) error { return nil }

func (m *memFS) Open(_ context.Context, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[path.Clean(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if name != manifest.ChannelFileName {
		m.opens.Add(1)
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

func (m *memFS) Create(_ context.Context, name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	if _, ok := m.kids[path.Dir(name)]; !ok {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrNotExist}
	}
	f := &memFile{fs: m, name: name}
	m.put(f)
	return f, nil
}

// put stores f under its name; the caller holds mu.
func (m *memFS) put(f *memFile) {
	m.clock++
	f.mtime = time.Unix(1800000000, m.clock)
	m.files[f.name] = f
	m.kids[path.Dir(f.name)][path.Base(f.name)] = true
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.data = append(f.data, p...)
	f.fs.clock++
	f.mtime = time.Unix(1800000000, f.fs.clock)
	return len(p), nil
}

func (f *memFile) Sync() error  { return nil }
func (f *memFile) Close() error { return nil }

func (m *memFS) MkdirAll(_ context.Context, dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var chain []string
	for d := path.Clean(dir); d != "."; d = path.Dir(d) {
		chain = append(chain, d)
	}
	for i := len(chain) - 1; i >= 0; i-- { // parents first
		d := chain[i]
		if _, ok := m.kids[d]; !ok {
			m.kids[d] = map[string]bool{}
		}
		m.kids[path.Dir(d)][path.Base(d)] = true
	}
	return nil
}

func (m *memFS) Rename(_ context.Context, from, to string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	from, to = path.Clean(from), path.Clean(to)
	f, ok := m.files[from]
	if !ok {
		return &fs.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	delete(m.files, from)
	delete(m.kids[path.Dir(from)], path.Base(from))
	f.name = to
	m.files[to] = f
	m.kids[path.Dir(to)][path.Base(to)] = true
	return nil
}

func (m *memFS) Remove(_ context.Context, name string) error {
	m.remove(name)
	return nil
}

func (m *memFS) remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	delete(m.files, name)
	delete(m.kids[path.Dir(name)], path.Base(name))
	if len(m.kids[name]) == 0 {
		delete(m.kids, name)
	}
}

// damage changes a file's content in place (same size, a new time).
func (m *memFS) damage(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.files[name]
	f.data = append([]byte(nil), f.data...)
	f.data[0] ^= 0xff
	m.put(f)
}

func (m *memFS) Close() error { return nil }

// all returns every file, by name.
func (m *memFS) all() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for name, f := range m.files {
		if !strings.Contains(name, manifest.MoverTempPrefix) {
			out[name] = f.data
		}
	}
	return out
}

// A set of format 1.0 (its tree one flat list) is pushed as before: every
// object its list names, the list itself, and a rerun finds it all there.
func TestFormat10SetPushed(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Format10 = true
	id := c.Publish(movertest.Small("old", 20))
	o := opts(c, NewLocal(srcDir), NewLocal(dstDir))
	o.Checked = mustOpenCheckedFile(t, filepath.Join(t.TempDir(), "checked"))
	res := run(t, o)
	if res.Set != id || res.Copied != res.Files {
		t.Fatalf("push: %+v, want every file of set %s copied", res, id)
	}
	verifyDst(t, c, dstDir, id)
	if res := run(t, o); res.Copied != 0 || res.Present != res.Files {
		t.Fatalf("rerun: %+v, want nothing copied", res)
	}
}
