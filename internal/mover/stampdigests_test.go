package mover

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

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
