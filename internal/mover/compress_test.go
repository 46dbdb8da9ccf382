package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// compressible is a set of JSON-like files, small ones and one streamed
// (above 1 MiB), that compress several times.
func compressible(salt string) movertest.Spec {
	s := movertest.Spec{Tree: map[string][]byte{}, ES: map[string][]byte{}}
	doc := func(i, n int) []byte {
		var b []byte
		for k := 0; len(b) < n; k++ {
			b = fmt.Appendf(b, `{"id":"%s-%d-%d","title":"item %d","language":"en","score":%d},`+"\n", salt, i, k, k, (i*k)%97)
		}
		return b[:n]
	}
	for i := range 40 {
		s.Tree[fmt.Sprintf("docs/%s-%d.json", salt, i)] = doc(i, 2000+i*300)
	}
	s.ES[fmt.Sprintf("indices/idx-%s/0/__seg", salt)] = doc(1000, 3<<20+5)
	return s
}

// Through a helper that compresses the stream, a compressible set arrives
// whole and verified (every file hashed at the destination: the bytes
// written are the uncompressed ones) in fewer bytes than its files;
// turned off, in as many. A source file whose content no longer matches
// its hash is still refused: the mover hashes what it reads, before the
// stream compresses it.
func TestCompressedPush(t *testing.T) {
	s := testenv.SSHD(t)
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("compress=%v", on), func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			id := c.Publish(compressible("a"))
			dst := dialHelper(t, s, dstDir)
			dst.SetCompress(on)
			o := opts(c, NewLocal(srcDir), dst)
			if res := run(t, o); res.Set != id || res.Copied != res.Files {
				t.Fatalf("%+v, want all of %s copied", res, id)
			}
			verifyDst(t, c, dstDir, id)
			raw, sent := dst.Compression()
			if raw < 3<<20 || on && sent > raw/2 || !on && sent != raw {
				t.Errorf("%d bytes of file data took %d on the stream", raw, sent)
			}

			// A damaged source object (same size, compresses as well).
			spec := compressible("b")
			id2 := c.Publish(spec)
			obj := filepath.Join(srcDir, manifest.ObjectRel(movertest.Sum(spec.Tree["docs/b-3.json"])))
			damage(t, obj)
			_, err := Run(context.Background(), o)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("push of a damaged source file: %v, want ErrCorrupt", err)
			}
			if _, err := os.Stat(filepath.Join(dstDir, "sets", id2)); err == nil {
				t.Errorf("set %s published at the destination with a damaged file", id2)
			}
		})
	}
}

// Through the helper, the large files of a batched phase are copied
// behind its batches (streamBehind): a set of small files and large ones
// arrives whole and verified, each large file counted once; a large
// source file whose content no longer matches its hash fails the push
// (its error is not lost in the background), nothing of it is under its
// final name and the set is not published.
func TestLargeFilesBehindBatches(t *testing.T) {
	s := testenv.SSHD(t)
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	spec := func(salt string) movertest.Spec {
		sp := movertest.Spec{Tree: map[string][]byte{}, ES: map[string][]byte{}}
		for i := range 300 {
			sp.Tree[fmt.Sprintf("docs/%s-%d.bin", salt, i)] = movertest.Content(salt+fmt.Sprint(i), 100+i)
		}
		for i := range 3 {
			sp.Tree[fmt.Sprintf("big/%s-%d.bin", salt, i)] = movertest.Content(salt+"big"+fmt.Sprint(i), 2<<20+i)
		}
		return sp
	}
	id := c.Publish(spec("a"))
	o := opts(c, NewLocal(srcDir), dialHelper(t, s, dstDir))
	if res := run(t, o); res.Set != id || res.Copied != res.Files || res.Files < 303 {
		t.Fatalf("%+v, want all of %s copied", res, id)
	}
	verifyDst(t, c, dstDir, id)

	sp := spec("b")
	id2 := c.Publish(sp)
	rel := manifest.ObjectRel(movertest.Sum(sp.Tree["big/b-1.bin"]))
	damage(t, filepath.Join(srcDir, rel))
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("push of a damaged large source file: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dstDir, rel)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s at the destination after a failed copy (%v)", rel, err)
	}
	if _, err := os.Stat(filepath.Join(dstDir, "sets", id2)); err == nil {
		t.Errorf("set %s published at the destination with a damaged file", id2)
	}
}
