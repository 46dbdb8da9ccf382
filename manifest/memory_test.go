package manifest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// heapProbe records the live heap (after a GC) when hashing starts, i.e.
// right after the existence phase streamed the whole list.
type heapProbe struct{ live uint64 }

func (p *heapProbe) Begin(what string, _ int64, _ string) {
	if what == "verify: hashing" {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.live = ms.HeapAlloc
	}
}

func (p *heapProbe) Add(int64) {}
func (p *heapProbe) End()      {}

// TestVerifyStreamsLists: a set whose file list is many times larger than
// what Verify keeps live is verified without loading the list.
func TestVerifyStreamsLists(t *testing.T) {
	const n = 60000
	k := newKey(t, "ed25519")
	root := filepath.Join(t.TempDir(), "prod-to-bcp")
	must(t, manifest.WriteChannel(root, testChannel))
	l := manifest.Layout{Root: root}
	store := objects.New(l.ObjectsDir())
	ctx := context.Background()
	obj, err := store.Put(ctx, strings.NewReader("same content everywhere"))
	must(t, err)
	list, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for i := range n {
			if i%1000 == 0 {
				if err := lw.WriteEntry(manifest.Entry{Path: fmt.Sprintf("d%02d", i/1000), Type: manifest.TypeDir, Mode: 0o750, MTime: created0}); err != nil {
					return err
				}
			}
			e := manifest.Entry{Path: fmt.Sprintf("d%02d/%s-%08d.pdf", i/1000, strings.Repeat("x", 40), i), Type: manifest.TypeFile,
				Mode: 0o640, MTime: created0, Size: obj.Size, Object: obj.SHA256}
			if err := lw.WriteEntry(e); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	m := &manifest.Manifest{Version: "1.1", Channel: testChannel, Sequence: 1, Created: created0,
		Producer: manifest.Producer{Host: "h", Program: "test"},
		Trees:    []manifest.Tree{{Name: "storage", List: list, Files: n, Bytes: n * obj.Size}}}
	_, err = manifest.Publish(ctx, l, m, k.Signer)
	must(t, err)

	probe := &heapProbe{}
	rep, err := manifest.Verify(ctx, manifest.VerifyOptions{Root: root, AllowedSigners: allowed(t, allowedLine(k)), Progress: probe})
	if err != nil || rep.Files != n+1 || rep.Hashed < 2 || rep.Hashed > 1+int64(runtime.NumCPU()) {
		t.Fatalf("%v %+v", err, rep)
	}
	// The decoded entries alone would take several times the list's size.
	if probe.live == 0 || probe.live > uint64(list.Size)/2 {
		t.Fatalf("live heap %d bytes at the start of hashing, list is %d bytes: lists must be streamed", probe.live, list.Size)
	}
	t.Logf("list %d bytes, live heap %d bytes, report %+v", list.Size, probe.live, rep)
}
