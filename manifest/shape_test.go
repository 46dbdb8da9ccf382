package manifest_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// TestVerifyRefusesEntryBelowSymlink: a validly signed set whose file lies
// below one of its own symlinks can never be restored, so verify calls it
// corrupt (exit 5) - before restore's first stage changes anything.
func TestVerifyRefusesEntryBelowSymlink(t *testing.T) {
	k := newKey(t, "ed25519")
	root := filepath.Join(t.TempDir(), "prod-to-bcp")
	must(t, manifest.WriteChannel(root, testChannel))
	l := manifest.Layout{Root: root}
	store := objects.New(l.ObjectsDir())
	ctx := context.Background()
	obj, err := store.Put(ctx, strings.NewReader("pwned"))
	must(t, err)
	list, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, e := range []manifest.Entry{
			{Path: "evil", Type: manifest.TypeSymlink, Mode: 0o777, MTime: created0, Target: "/tmp"},
			{Path: "evil/pwned", Type: manifest.TypeFile, Mode: 0o600, MTime: created0, Size: obj.Size, Object: obj.SHA256},
		} {
			if err := lw.WriteEntry(e); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	m := &manifest.Manifest{Version: "1.1", Channel: testChannel, Sequence: 1, Created: created0,
		Producer: manifest.Producer{Host: "h", Program: "test"},
		Trees:    []manifest.Tree{{Name: "storage", List: list, Files: 1, Bytes: obj.Size}}}
	_, err = manifest.Publish(ctx, l, m, k.Signer)
	must(t, err)
	rep, err := manifest.Verify(ctx, manifest.VerifyOptions{Root: root, AllowedSigners: allowed(t, allowedLine(k))})
	if !errors.Is(err, manifest.ErrCorrupt) || rep == nil || rep.Status != manifest.StatusCorrupt {
		t.Fatalf("Verify: %v, report %+v; want corrupt", err, rep)
	}
	if !strings.Contains(err.Error(), `"evil/pwned"`) || !strings.Contains(err.Error(), `parent "evil"`) {
		t.Fatalf("the error does not name the entry and its parent: %v", err)
	}
}
