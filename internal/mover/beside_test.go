package mover

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// countingLocal is a Local destination that counts the listings of
// objects/ directories (every optional interface of Local kept).
type countingLocal struct {
	*Local
	objLists atomic.Int64
}

func (c *countingLocal) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	if strings.HasPrefix(dir, manifest.ObjectsDirName+"/") {
		c.objLists.Add(1)
	}
	return c.Local.ReadDir(ctx, dir)
}

// namedOpens records the names a source FS opens.
type namedOpens struct {
	FS
	mu    sync.Mutex
	names map[string]bool
}

func (o *namedOpens) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	o.mu.Lock()
	o.names[name] = true
	o.mu.Unlock()
	return o.FS.Open(ctx, name)
}

// listsOf is the object names of set id's tree lists at dir.
func listsOf(t *testing.T, dir, id string) []string {
	t.Helper()
	data, err := os.ReadFile(manifest.Layout{Root: dir}.ManifestPath(id))
	testkit.Must(t, err)
	m, err := manifest.Decode(data)
	testkit.Must(t, err)
	var out []string
	r := manifest.TreeReader{
		Open: func(ref manifest.Ref) (io.ReadCloser, error) {
			return os.Open(manifest.Layout{Root: dir}.ObjectPath(ref.SHA256))
		},
		List: func(ref manifest.Ref) error {
			out = append(out, manifest.ObjectRel(ref.SHA256))
			return nil
		},
	}
	testkit.Must(t, r.Walk(context.Background(), m.Trees[0], func(manifest.Entry) error { return nil }))
	return out
}

// spread is a set of 20 directories of 10 files each; changed replaces
// the content of the files named.
func spread(salt string, changed ...string) movertest.Spec {
	s := movertest.Spec{Tree: map[string][]byte{}, ES: map[string][]byte{"snap-x.dat": movertest.Content("snap", 200)}}
	for d := range 20 {
		for f := range 10 {
			p := fmt.Sprintf("d%02d/f%d", d, f)
			s.Tree[p] = movertest.Content(p, 100+f)
		}
	}
	for _, p := range changed {
		s.Tree[p] = movertest.Content(salt+p, 77)
	}
	return s
}

// A push whose set changed in a few directories since the set the last
// run recorded at the destination plans only those directories' files:
// the unchanged directories' lists are not read and their objects are
// not looked up. A full comparison (--full-compare, or the first run
// full-compare-every after the last one) finds an object lost at the
// destination below an unchanged directory and copies it again.
func TestPushSkipsUnchangedDirs(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.MTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			c.Publish(spread("1"))
			src, dst := d.ends(t, srcDir, dstDir)
			if _, ok := dst.(*Local); ok {
				dst = &countingLocal{Local: dst.(*Local)}
			}
			counted := &namedOpens{FS: src, names: map[string]bool{}}
			o := opts(c, counted, dst)
			o.FullCompareEvery = 24 * time.Hour
			cache := filepath.Join(t.TempDir(), "checked")
			rerun := func() *Result {
				t.Helper()
				if o.Checked != nil {
					testkit.Must(t, o.Checked.Save())
				}
				o.Checked = mustOpenChecked(t, cache)
				counted.names = map[string]bool{}
				if cl, ok := dst.(*countingLocal); ok {
					cl.objLists.Store(0)
				}
				return run(t, o)
			}
			first := rerun()
			if first.SkippedDirs != 0 || first.Copied != first.Files {
				t.Fatalf("first push: %+v, want every file copied", first)
			}
			// 3 files in 2 of 20 directories change.
			id2 := c.Publish(spread("2", "d03/f1", "d03/f2", "d07/f5"))
			res := rerun()
			if res.Set != id2 || res.SkippedDirs != 18 {
				t.Fatalf("second push: %+v, want %s with 18 directories skipped", res, id2)
			}
			// Planned: the 20 files of d03 and d07, their lists and the
			// root's, es/ (its list and 3 files), the MySQL dump, the
			// manifest and its signature. Copied: the 3 files, the 3
			// lists, es/'s list and 2 generation files, the dump, the
			// manifest and its signature.
			if res.Files != 30 || res.Copied != 12 {
				t.Fatalf("second push planned %d files and copied %d, want 30 and 12: %+v", res.Files, res.Copied, res)
			}
			// Of set 2's 21 lists, only the root's, d03's and d07's
			// were read at the source.
			var read []string
			for _, l := range listsOf(t, srcDir, id2) {
				if counted.names[l] {
					read = append(read, l)
				}
			}
			if len(read) != 3 {
				t.Fatalf("second push read %d of set 2's lists at the source, want 3", len(read))
			}
			if cl, ok := dst.(*countingLocal); ok && cl.objLists.Load() != 0 {
				t.Fatalf("second push listed %d objects/ directories at the destination, want 0 (a stat per file)", cl.objLists.Load())
			}
			verifyDst(t, c, dstDir, id2)
			// Nothing to do: the root list is the recorded set's.
			if res := rerun(); res.Set != id2 || res.Copied != 0 || res.SkippedDirs != 1 {
				t.Fatalf("rerun: %+v, want nothing to do with the tree skipped", res)
			}

			// An object lost at the destination below an unchanged
			// directory is not seen by a run that skips it...
			lost := filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("d12/f4", 104))))
			testkit.Must(t, os.Remove(lost))
			id3 := c.Publish(spread("3", "d03/f1"))
			if res := rerun(); res.Set != id3 || res.SkippedDirs != 18 {
				t.Fatalf("third push: %+v, want %s with 18 directories skipped (d03 and d07 changed)", res, id3)
			}
			if _, err := os.Stat(lost); err == nil {
				t.Fatal("the lost object is back without a full comparison")
			}
			// ... but by --full-compare, which copies it again.
			o.FullCompare = true
			if res := rerun(); res.SkippedDirs != 0 || res.Copied != 1 {
				t.Fatalf("--full-compare: %+v, want the lost object copied", res)
			}
			verifyDst(t, c, dstDir, id3)
			o.FullCompare = false
			// That run recorded the digests of every directory: a loss
			// now makes the next run with nothing to do compare every
			// file, not walk beside the recorded set.
			testkit.Must(t, os.Remove(lost))
			if res := rerun(); res.Set != id3 || res.SkippedDirs != 0 || res.Copied != 1 {
				t.Fatalf("nothing to do after a loss: %+v, want the lost object copied", res)
			}
			// And by the first run full-compare-every after the last full
			// comparison.
			testkit.Must(t, os.Remove(lost))
			c.Publish(spread("4", "d03/f1"))
			o.FullCompareEvery = time.Nanosecond
			if res := rerun(); res.SkippedDirs != 0 || res.Replaced != 0 && res.Copied < 2 {
				t.Fatalf("after full-compare-every: %+v, want a full comparison that copies the lost object", res)
			}
			_, err := os.Stat(lost)
			testkit.Must(t, err)
			// A record of a set no longer published at the destination
			// is no base: the run compares every file.
			o.FullCompareEvery = 24 * time.Hour
			id5 := c.Publish(spread("5", "d03/f1"))
			rec := o.Checked.record()
			testkit.Must(t, o.Checked.Save())
			testkit.Must(t, os.Remove(manifest.Layout{Root: dstDir}.SignaturePath(rec.set)))
			o.Checked = nil
			if res := rerun(); res.Set != id5 || res.SkippedDirs != 0 {
				t.Fatalf("base set unpublished: %+v, want a full comparison", res)
			}
			verifyDst(t, c, dstDir, id5)
		})
	}
}
