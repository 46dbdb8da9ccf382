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
	"github.com/squirro-bcp/bcp/manifest"
)

// digestsAsked is a local destination that notes which directories were
// fingerprinted before the set's signature was in place (behind the copy)
// and after.
type digestsAsked struct {
	*Local
	sig string // the set's signature at the destination

	mu            sync.Mutex
	before, after int
}

func (d *digestsAsked) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	d.mu.Lock()
	if _, err := os.Stat(d.sig); err == nil {
		d.after += len(dirs)
	} else {
		d.before += len(dirs)
	}
	d.mu.Unlock()
	return d.Local.DirDigests(ctx, dirs)
}

// The record's digests of the directories a first copy fills are taken
// behind the copy, as each bucket's last file is in place, not all once
// the set is (over a far link a walk of every directory after the last
// file); the record they make is the set's as it stands: a rerun has
// nothing to do and reads only the set's manifest and signature.
func TestRecordDigestsBehindTheCopy(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "behind", Files: 3 * batchLeast, FileSize: 64})
	dst := &digestsAsked{Local: NewLocal(dstDir), sig: filepath.Join(dstDir, manifest.SetsDirName, id, manifest.SignatureFileName)}
	counted := &opens{FS: NewLocal(srcDir)}
	o := opts(c, counted, dst)
	cache := filepath.Join(t.TempDir(), "checked")
	o.Checked = mustOpenChecked(t, cache)
	if res := run(t, o); res.Copied != res.Files {
		t.Fatalf("first copy: %+v", res)
	}
	if dst.before == 0 {
		t.Fatalf("no directory fingerprinted before the set was in place (%d after)", dst.after)
	}
	if err := o.Checked.Save(); err != nil {
		t.Fatal(err)
	}
	o.Checked = mustOpenChecked(t, cache)
	counted.n.Store(0)
	if res := run(t, o); res.Copied != 0 || res.Present != res.Files {
		t.Fatalf("rerun: %+v, want nothing to do", res)
	}
	if n := counted.n.Load(); n != 3 {
		t.Fatalf("rerun read %d files at the source, want 3 (channel, manifest, signature): the record's digests do not match", n)
	}
	verifyDst(t, c, dstDir, id)
}

// heldDigester answers DirDigests only once release is closed, and says
// on arrived when each request arrives.
type heldDigester struct {
	arrived chan []string
	release chan struct{}
}

func (d *heldDigester) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	d.arrived <- dirs
	<-d.release
	sums := make([][32]byte, len(dirs))
	for i, dir := range dirs {
		sums[i][0] = dir[len(dir)-1]
	}
	return sums, nil
}

// A bucket stamped whole while the digests of another are being taken is
// asked for at once, not after that request's answer: the last batches
// of a copy end within a round trip of each other, and their digests
// asked for one after the other came back after the last phases.
func TestCopiedDigestsOverlap(t *testing.T) {
	dg := &heldDigester{arrived: make(chan []string, 2), release: make(chan struct{})}
	c := &copiedDigests{dg: dg, sums: map[string][32]byte{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	c.want[1], c.want[2] = 1, 1
	c.dirs[1], c.dirs[2] = []string{"objects/01"}, []string{"objects/02"}
	go c.run(context.Background())
	c.stamped(1, 1)
	if got := <-dg.arrived; !slices.Equal(got, c.dirs[1]) {
		t.Fatalf("first request for %v, want %v", got, c.dirs[1])
	}
	c.stamped(2, 1)
	select {
	case got := <-dg.arrived:
		if !slices.Equal(got, c.dirs[2]) {
			t.Errorf("second request for %v, want %v", got, c.dirs[2])
		}
	case <-time.After(10 * time.Second): // (a hang, not a timing)
		t.Fatal("the second bucket's digests were not asked for while the first request was out")
	}
	close(dg.release)
	sums := c.finish()
	if len(sums) != 2 || sums["objects/01"][0] != '1' || sums["objects/02"][0] != '2' {
		t.Errorf("digests taken: %v, want both buckets'", sums)
	}
}
