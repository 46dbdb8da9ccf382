package mover

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestLocalPinDirs: in a pinned directory a file is created, read and
// renamed relative to the open directory, with the same result as by path;
// pins nest, and the last unpin closes the directory.
func TestLocalPinDirs(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "objects", "ab"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := NewLocal(root)
	unpin := l.pinDirs([]string{"objects/ab", "missing"})
	again := l.pinDirs([]string{"objects/ab"})
	if len(l.pinned) != 1 || l.pinned["objects/ab"].refs != 2 {
		t.Fatalf("pinned %v: want objects/ab twice and not the missing directory", l.pinned)
	}
	if fd, _ := l.at("objects/ab/x"); fd != l.pinned["objects/ab"].fd {
		t.Fatal("a file of a pinned directory does not go through it")
	}
	writeTemp(t, l, "objects/ab/.tmp-x", "data")
	if err := l.Rename(ctx, "objects/ab/.tmp-x", "objects/ab/x"); err != nil {
		t.Fatal(err)
	}
	again()
	r, err := l.Open(ctx, "objects/ab/x")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close() // only read
	if err != nil || string(got) != "data" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := l.Open(ctx, "objects/ab/none"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a missing file: %v", err)
	}
	if _, err := l.Open(ctx, "missing/x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open in a missing directory: %v", err)
	}
	unpin()
	if len(l.pinned) != 0 {
		t.Fatalf("still pinned after the last unpin: %v", l.pinned)
	}
	if b, err := os.ReadFile(filepath.Join(root, "objects", "ab", "x")); err != nil || string(b) != "data" {
		t.Fatalf("by path: %q, %v", b, err)
	}
}

// TestReadUpTo: a reader whose short reads are the end stops at the
// size it expects; others read on to the end; a longer file fills more.
func TestReadUpTo(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("hello"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := NewLocal(filepath.Dir(f.Name())).Open(context.Background(), filepath.Base(f.Name()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, c := range []struct {
		name string
		r    io.Reader
		want int
		n    int
	}{
		{"local file", raw, 5, 5},
		{"one byte at a time", iotest.OneByteReader(iotest.OneByteReader(stringsReader("hello"))), 5, 5},
		{"longer than expected", stringsReader("hello!"), 5, 6},
		{"shorter than expected", stringsReader("hell"), 5, 4},
	} {
		buf := make([]byte, c.want+1)
		n, err := readUpTo(c.r, buf, c.want)
		if err != nil || n != c.n {
			t.Errorf("%s: %d, %v; want %d", c.name, n, err, c.n)
		}
	}
}

func stringsReader(s string) io.Reader { return &onceReader{s: s} }

// onceReader returns its string in one read, then EOF.
type onceReader struct{ s string }

func (r *onceReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p, r.s)
	r.s = r.s[n:]
	return n, nil
}

// TestEachRun: every file once, in runs, admitted in order; a run waiting
// for room is handed out before admit waits; the first error stops it.
func TestEachRun(t *testing.T) {
	files := make([]*want, 1000)
	for i := range files {
		files[i] = &want{name: "f", size: int64(i)}
	}
	var mu sync.Mutex
	seen := map[*want]int{}
	room := atomic.Int64{}
	room.Store(10)
	var admitted []int64
	admit := func(ctx context.Context, w *want) error {
		for room.Load() <= 0 { // waits for a worker to give room back
			runtime.Gosched()
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		room.Add(-1)
		admitted = append(admitted, w.size)
		return nil
	}
	tryAdmit := func(w *want) bool {
		if room.Add(-1) < 0 {
			room.Add(1)
			return false
		}
		admitted = append(admitted, w.size)
		return true
	}
	err := eachRun(context.Background(), files, 3, admit, tryAdmit, func(_ context.Context, w *want) error {
		defer room.Add(1)
		mu.Lock()
		seen[w]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range files {
		if seen[w] != 1 || admitted[i] != w.size {
			t.Fatalf("file %d: run %d times, admitted as %d", i, seen[w], admitted[i])
		}
	}
	boom := errors.New("boom")
	var n atomic.Int64
	err = eachRun(context.Background(), files, 4, nil, nil, func(_ context.Context, w *want) error {
		if n.Add(1) == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n.Load() == int64(len(files)) {
		t.Fatalf("error %v after %d files: want boom before the end", err, n.Load())
	}
}

// TestCopyWorkers: a copy between two local-disk directories has a few
// files in flight per CPU; one with another end keeps Workers.
func TestCopyWorkers(t *testing.T) {
	dir := t.TempDir()
	if !onLocalDisk(dir) {
		testenv.RequireCI(t, dir+" on a local-disk file system known to onLocalDisk", "set TMPDIR to a directory on ext4, XFS, btrfs or tmpfs")
	}
	c := &copier{src: NewLocal(dir), dst: NewLocal(t.TempDir())}
	if got, limit := c.copyWorkers(512), max(4, localDiskWorkers*runtime.NumCPU()); got != limit {
		t.Errorf("local to local: %d in flight, want %d", got, limit)
	}
	if got := c.copyWorkers(3); got != 3 {
		t.Errorf("local to local, 3 asked: %d in flight", got)
	}
	c = &copier{src: NewLocal(dir), dst: struct{ FS }{NewLocal(dir)}}
	if got := c.copyWorkers(512); got != 512 {
		t.Errorf("to another kind of destination: %d in flight, want 512", got)
	}
}
