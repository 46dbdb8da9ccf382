package mover

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"

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

// stepsDst is a publishingDst that also writes the last phases in one
// request (StepPublisher, as the helper does), listing there what it is
// asked to once they are done - or, lists false, nothing (SFTP alone). It
// notes each directory listed on its own once they are written.
type stepsDst struct {
	*publishingDst
	listing bool
	tail    atomic.Bool // the last phases are written
	mu      sync.Mutex
	after   []string // listed on their own since
}

func (d *stepsDst) PublishSteps(ctx context.Context, sync []string, steps [][]remote.Published, list []string) ([]remote.DirList, error) {
	for _, files := range steps {
		for _, f := range files {
			if err := d.MkdirAll(ctx, path.Dir(f.Name)); err != nil {
				return nil, err
			}
		}
		if err := d.Publish(ctx, files); err != nil {
			return nil, err
		}
	}
	d.tail.Store(true)
	if !d.listing {
		return nil, nil
	}
	out := make([]remote.DirList, len(list))
	for i, dir := range list {
		out[i].Entries, out[i].Err = d.Local.ReadDir(ctx, dir)
	}
	return out, nil
}

func (d *stepsDst) note(dirs ...string) {
	if d.tail.Load() {
		d.mu.Lock()
		d.after = append(d.after, dirs...)
		d.mu.Unlock()
	}
}

func (d *stepsDst) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	d.note(dir)
	return d.Local.ReadDir(ctx, dir)
}

func (d *stepsDst) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	d.note(dirs...)
	return d.publishingDst.ReadDirs(ctx, dirs)
}

// The request that writes a copy's last phases also lists the held
// files' directories and pins/, where the destination can: nothing is
// listed again on its own for the verified-file cache, the set's record
// or prune (over a far link two round trips at the end of every run), and
// the next run finds the set unchanged by its record alone (a held
// directory's digest taken before its last file was written would send it
// the long way: every object directory listed). One that cannot (lists
// false) has them listed after it, with the same outcome.
func TestPublishTailLists(t *testing.T) {
	for _, lists := range []bool{true, false} {
		srcDir, dstDir := t.TempDir(), t.TempDir()
		c := movertest.New(t, srcDir)
		id := c.Publish(movertest.Small("a", 300))
		dst := &stepsDst{publishingDst: &publishingDst{Local: NewLocal(dstDir), offered: true}, listing: lists}
		cache := filepath.Join(t.TempDir(), "checked")
		o := opts(c, NewLocal(srcDir), dst)
		o.Checked = mustOpenChecked(t, cache)
		if res := run(t, o); res.Set != id || res.Copied != res.Files {
			t.Fatalf("lists %v: %+v, want all of %s copied", lists, res, id)
		}
		testkit.Must(t, o.Checked.Save())
		verifyDst(t, c, dstDir, id)
		listedHeld := slices.ContainsFunc(dst.after, func(d string) bool {
			return d == manifest.PinsDirName || d == path.Join(manifest.SetsDirName, id)
		})
		if lists == listedHeld {
			t.Errorf("lists %v: listed on their own after the last phases: %v", lists, dst.after)
		}

		// The next run: the record says the set is there, unchanged.
		dst.after = nil
		o.Checked = mustOpenChecked(t, cache)
		res := run(t, o)
		if res.Copied != 0 {
			t.Errorf("lists %v: the next run %+v, want nothing copied", lists, res)
		}
		if slices.ContainsFunc(dst.after, func(d string) bool { return strings.HasPrefix(d, manifest.ObjectsDirName+"/") }) {
			t.Errorf("lists %v: the next run listed %v, want the set found unchanged by its record", lists, dst.after)
		}
	}
}
