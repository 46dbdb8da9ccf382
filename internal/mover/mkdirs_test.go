package mover

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
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
