package mover

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// slowDirFS is a local destination whose MkdirAll takes a round trip of a
// far link (as over SFTP or the helper) and that records how many ran at
// once.
type slowDirFS struct {
	*Local
	rtt       time.Duration
	mu        sync.Mutex
	now, most int
	calls     int
}

func (s *slowDirFS) MkdirAll(ctx context.Context, dir string) error {
	s.mu.Lock()
	s.now++
	s.calls++
	s.most = max(s.most, s.now)
	s.mu.Unlock()
	time.Sleep(s.rtt)
	err := s.Local.MkdirAll(ctx, dir)
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	return err
}

// TestDirsInParallel: the directories a first copy needs (here the 256
// object directories) are created concurrently, not one round trip after the
// other.
func TestDirsInParallel(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "dirs", Files: 2000, FileSize: 64})
	dst := &slowDirFS{Local: NewLocal(dstDir), rtt: 5 * time.Millisecond}
	o := opts(c, NewLocal(srcDir), dst)
	o.Workers = 64
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if dst.calls < 256 {
		t.Fatalf("%d directories created, want at least the 256 object directories", dst.calls)
	}
	if dst.most < 16 {
		t.Errorf("at most %d directories created at once (of %d): one round trip each, one after the other", dst.most, dst.calls)
	}
	verifyDst(t, c, dstDir, id)
}

// parentsDirFS is slowDirFS whose MkdirAll, like the helper's, makes the
// missing parents in the same request.
type parentsDirFS struct {
	slowDirFS
	made []string
}

func (p *parentsDirFS) makesParents(context.Context) bool { return true }

func (p *parentsDirFS) MkdirAll(ctx context.Context, dir string) error {
	p.mu.Lock()
	p.made = append(p.made, dir)
	p.mu.Unlock()
	return p.slowDirFS.MkdirAll(ctx, dir)
}

// Where MkdirAll makes the parents too (the helper), only the deepest
// directories are asked for, all at once: one round trip for a tree four
// levels deep, not four.
func TestDirsDeepestAtOnce(t *testing.T) {
	dir := t.TempDir()
	dst := &parentsDirFS{slowDirFS: slowDirFS{Local: NewLocal(dir), rtt: 100 * time.Millisecond}}
	dirs := []string{"es", "es/snap", "es/snap/indices", "es/snap/indices/a", "es/snap/indices/b", "objects", "objects/00", "objects/01"}
	testkit.Must(t, mkdirs(context.Background(), dst, dirs, 64))
	slices.Sort(dst.made)
	if want := []string{"es/snap/indices/a", "es/snap/indices/b", "objects/00", "objects/01"}; !slices.Equal(dst.made, want) {
		t.Errorf("asked for %v, want only the deepest %v", dst.made, want)
	}
	if dst.most != 4 {
		t.Errorf("%d at once: want all 4 at once, one round trip", dst.most)
	}
	for _, d := range dirs {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v, want a directory", d, err)
		}
	}
}
