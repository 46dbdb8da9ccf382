package objects_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// temporaries lists the .tmp-* files in the store's root.
func temporaries(t *testing.T, s *objects.Store) []string {
	t.Helper()
	ents, err := os.ReadDir(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), manifest.TempPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestBatch: objects put through a Batch from several goroutines appear
// under their names only batch by batch, once the batch was synced, and
// all of them (duplicates and objects already there included) after
// Flush, each with its content and no temporary file left: on Linux with
// unnamed files, and with temporary names (NFS).
func TestBatch(t *testing.T) {
	t.Run("unnamed", func(t *testing.T) { testBatch(t, (*objects.Store).NewBatch, runtime.GOOS == "linux") })
	t.Run("named", func(t *testing.T) { testBatch(t, objects.NewNamedBatch, false) })
}

// batchKinds are the ways a Batch names objects: unnamed files where the
// file system has them (Linux), temporary names (NFS).
var batchKinds = map[string]func(*objects.Store) *objects.Batch{
	"unnamed": (*objects.Store).NewBatch,
	"named":   objects.NewNamedBatch,
}

func testBatch(t *testing.T, newBatch func(*objects.Store) *objects.Batch, unnamed bool) {
	ctx := context.Background()
	s := objects.New(filepath.Join(t.TempDir(), "objects"))
	there, err := s.Put(ctx, strings.NewReader("object 7"))
	if err != nil {
		t.Fatal(err)
	}
	b := newBatch(s)
	n := 2*objects.BatchObjects + 5
	refs := make([]manifest.Ref, n)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				ref, err := b.Put(ctx, strings.NewReader(fmt.Sprintf("object %d", i%(n-1)))) // the last one is a duplicate of the first
				if err != nil {
					errs <- err
					return
				}
				refs[i] = ref
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if refs[7] != there {
		t.Fatalf("object 7: %v, want %v", refs[7], there)
	}
	var named int
	for _, r := range refs {
		if ok, _ := s.Has(r.SHA256); ok {
			named++
		}
	}
	if max := objects.BatchMax(b); named < max || named == n {
		t.Fatalf("before Flush %d of %d objects have their names, want the full batches of %d only", named, n, max)
	}
	if tmp := fanOutTemporaries(t, s); unnamed && len(tmp) != 0 {
		t.Fatalf("objects waiting for their names have temporary names: %d, e.g. %s", len(tmp), tmp[0])
	} else if !unnamed && len(tmp) == 0 {
		t.Fatal("no object is waiting under a temporary name")
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i, r := range refs {
		if err := s.Check(ctx, r.SHA256, r.Size); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
	}
	if tmp := append(temporaries(t, s), fanOutTemporaries(t, s)...); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// fanOutTemporaries lists the .tmp-* files in the store's fan-out
// directories.
func fanOutTemporaries(t *testing.T, s *objects.Store) []string {
	t.Helper()
	tmp, err := filepath.Glob(filepath.Join(s.Root(), "??", manifest.TempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestBatchRepairsAndShares: a batch replaces a damaged object by its
// intact content, and two puts of one content in the same batch leave
// one intact object.
func TestBatchRepairsAndShares(t *testing.T) {
	for name, newBatch := range batchKinds {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := objects.New(filepath.Join(t.TempDir(), "objects"))
			ref, err := s.Put(ctx, strings.NewReader("hello world"))
			if err != nil {
				t.Fatal(err)
			}
			damage(t, s.Path(ref.SHA256), "hello") // truncated
			b := newBatch(s)
			for _, c := range []string{"hello world", "twice", "twice"} {
				if _, err := b.Put(ctx, strings.NewReader(c)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(ctx, ref.SHA256, ref.Size); err != nil {
				t.Fatalf("not repaired: %v", err)
			}
			sum := sha256.Sum256([]byte("twice"))
			if err := s.Check(ctx, hex.EncodeToString(sum[:]), 5); err != nil {
				t.Fatalf("shared object: %v", err)
			}
			if tmp := append(temporaries(t, s), fanOutTemporaries(t, s)...); len(tmp) != 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
		})
	}
}

// TestBatchDiscard: what a failed producer put but did not flush leaves
// no temporary file and no object.
func TestBatchDiscard(t *testing.T) {
	for name, newBatch := range batchKinds {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := objects.New(filepath.Join(t.TempDir(), "objects"))
			b := newBatch(s)
			ref, err := b.Put(ctx, strings.NewReader("never published"))
			if err != nil {
				t.Fatal(err)
			}
			b.Discard()
			if ok, _ := s.Has(ref.SHA256); ok {
				t.Fatal("a discarded object exists")
			}
			if tmp := append(temporaries(t, s), fanOutTemporaries(t, s)...); len(tmp) != 0 {
				t.Fatalf("temporary files left: %v", tmp)
			}
		})
	}
}
