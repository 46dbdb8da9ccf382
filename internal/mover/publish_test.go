package mover

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
)

// publishingDst is a local destination that offers what the helper
// offers (Publisher, DirsLister), done here, or - offered false - one that
// says it does not (an older helper).
type publishingDst struct {
	*Local
	offered          bool
	published, lists atomic.Int32
}

func (d *publishingDst) Publish(ctx context.Context, files []remote.Published) error {
	if !d.offered {
		return remote.ErrNotOffered
	}
	d.published.Add(1)
	for _, f := range files {
		w, err := d.Create(ctx, f.Tmp)
		if err != nil {
			return err
		}
		_, err = w.Write(f.Data)
		if err == nil {
			err = w.Sync()
		}
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := d.Rename(ctx, f.Tmp, f.Name); err != nil {
			return err
		}
	}
	return nil
}

func (d *publishingDst) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	if !d.offered {
		return nil, remote.ErrNotOffered
	}
	d.lists.Add(1)
	out := make([]remote.DirList, len(dirs))
	for i, dir := range dirs {
		out[i].Entries, out[i].Err = d.ReadDir(ctx, dir)
	}
	return out, nil
}

// A destination that publishes the last phases in one request each and
// lists directories many at a time gets the same whole, verified set as
// one that does neither (an older helper), which goes the usual way.
func TestPublishAndListMany(t *testing.T) {
	for _, offered := range []bool{true, false} {
		srcDir, dstDir := t.TempDir(), t.TempDir()
		c := movertest.New(t, srcDir)
		id := c.Publish(movertest.Small("a", 300))
		dst := &publishingDst{Local: NewLocal(dstDir), offered: offered}
		o := opts(c, NewLocal(srcDir), dst)
		o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "checked"))
		res := run(t, o)
		if res.Set != id || res.Copied != res.Files {
			t.Fatalf("offered %v: %+v, want all of %s copied", offered, res, id)
		}
		verifyDst(t, c, dstDir, id)
		if _, err := os.Stat(filepath.Join(dstDir, tmpName(setRel(id, "manifest.json")))); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("offered %v: a temporary manifest is left (%v)", offered, err)
		}
		p, l := dst.published.Load(), dst.lists.Load()
		if offered && (p < 2 || l < 1) || !offered && (p != 0 || l != 0) {
			t.Errorf("offered %v: %d publish and %d list-many requests", offered, p, l)
		}
	}
}
