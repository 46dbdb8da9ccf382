package mover

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
)

// supersede does at the source what Elasticsearch does with each new
// snapshot: the older root generations and shard-level index-* files are
// gone; only the newest generation's remain.
func supersede(t *testing.T, srcDir string, files ...string) {
	t.Helper()
	for _, f := range files {
		if err := os.Remove(filepath.Join(srcDir, "es", filepath.FromSlash(f))); err != nil {
			t.Fatal(err)
		}
	}
}

// Every complete set the source holds reaches the destination, not only
// the newest: older ones without the repository metadata the newest
// generation replaced, each complete (manifest.Verify) at the destination;
// a rerun with nothing to do stays on the unchanged-set fast path; a set
// whose copy stopped before its signature is finished by the next run.
func TestOlderSetsReplicated(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			a := movertest.Small("a", 3)
			a.ES["indices/idx-a/0/index-x1"] = []byte("shard generation 1")
			id1 := c.Publish(a)
			id2 := c.Publish(movertest.Small("b", 3))
			id3 := c.Publish(movertest.Small("c", 3))
			supersede(t, srcDir, "index-1", "index-2", "indices/idx-a/0/index-x1")

			src, dst := d.ends(t, srcDir, dstDir)
			counted := &opens{FS: src}
			o := opts(c, counted, dst)
			o.Checked, _ = OpenChecked(filepath.Join(t.TempDir(), "checked"))
			res := run(t, o)
			if res.Set != id3 || len(res.Older) != 2 || res.Older[0].Set != id1 || res.Older[1].Set != id2 {
				t.Fatalf("got %+v, want %s and then %s, %s (oldest first)", res, id3, id1, id2)
			}
			for _, s := range res.Older {
				if s.Reason != "" || s.Copied == 0 {
					t.Fatalf("older set %+v not copied", s)
				}
			}
			for _, id := range []string{id1, id2, id3} {
				verifyDst(t, c, dstDir, id)
			}
			if b, err := os.ReadFile(filepath.Join(dstDir, "es", "index.latest")); err != nil || b[7] != 3 {
				t.Fatalf("destination's index.latest = %v (%v), want generation 3", b, err)
			}

			rerun := func() *Result {
				t.Helper()
				counted.n.Store(0)
				return run(t, o)
			}
			_, fingerprints := dst.(Digester)
			if sftp, ok := dst.(*SFTP); ok && sftp.remote(context.Background()) == nil {
				fingerprints = false
			}
			res = rerun()
			if res.Copied != 0 || len(res.Older) != 0 {
				t.Fatalf("rerun: %+v, want nothing to do", res)
			}
			if n := counted.n.Load(); fingerprints && n != 3 {
				t.Fatalf("rerun read %d files at the source, want 3: the history must not cost the fast path", n)
			}

			// A copy of an older set that stopped before its signature.
			if err := os.Remove(manifest.Layout{Root: dstDir}.SignaturePath(id1)); err != nil {
				t.Fatal(err)
			}
			res = rerun()
			if len(res.Older) != 1 || res.Older[0].Set != id1 || res.Older[0].Copied != 1 {
				t.Fatalf("after losing %s's signature: %+v, want only it copied", id1, res.Older)
			}
			verifyDst(t, c, dstDir, id1)
		})
	}
}

// An older set that is not complete at the source is left out, with the
// reason; the others and the newest still arrive.
func TestOlderIncompleteSetLeftOut(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id1 := c.Publish(movertest.Small("a", 2))
	id2 := c.Publish(movertest.Small("b", 2))
	id3 := c.Publish(movertest.Small("c", 2))
	supersede(t, srcDir, "index-1", "index-2")
	if err := os.Remove(filepath.Join(srcDir, "es", "indices", "idx-b", "0", "__1")); err != nil {
		t.Fatal(err)
	}
	res := run(t, opts(c, NewLocal(srcDir), NewLocal(dstDir)))
	if res.Set != id3 || len(res.Older) != 2 || res.Older[0].Set != id1 || res.Older[0].Reason != "" ||
		res.Older[1].Set != id2 || !strings.Contains(res.Older[1].Reason, "__1") {
		t.Fatalf("got %+v, want %s copied and %s left out naming the missing blob", res.Older, id1, id2)
	}
	verifyDst(t, c, dstDir, id1)
	if signed(dstDir, id2) {
		t.Fatalf("incomplete set %s appeared at the destination", id2)
	}
}
