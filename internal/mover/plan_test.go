package mover

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestFastEntry checks the reflection-free reader against encoding/json on
// lines as ListWriter writes them and on lines it must leave to json.
func TestFastEntry(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	marshal := func(e manifest.Entry) string {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	mt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name string
		line string
		obj  string
		size int64
		ok   bool
	}{
		{"file", marshal(manifest.Entry{Path: "a/b", Type: "file", Mode: 0o640, MTime: mt, Size: 4096, Object: sha}), sha, 4096, true},
		{"empty file", marshal(manifest.Entry{Path: "e", Type: "file", MTime: mt, Object: sha}), "", 0, false},
		{"dir", marshal(manifest.Entry{Path: "d", Type: "dir", MTime: mt}), "", 0, true},
		{"symlink", marshal(manifest.Entry{Path: "l", Type: "symlink", MTime: mt, Target: "x"}), "", 0, true},
		{"key text inside a value", marshal(manifest.Entry{Path: `x"type":"dir"`, Type: "file", MTime: mt, Size: 1, Object: sha}), sha, 1, true},
		{"bad object", `{"path":"a","type":"file","size":1,"object":"` + strings.Repeat("zz", 32) + `"}`, "", 0, false},
		{"spaces", `{"path": "a", "type": "file", "size": 1, "object": "` + sha + `"}`, "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, size, ok := fastEntry([]byte(tc.line))
			if ok != tc.ok || obj != tc.obj || size != tc.size {
				t.Fatalf("fastEntry(%s) = %q, %d, %v; want %q, %d, %v", tc.line, obj, size, ok, tc.obj, tc.size, tc.ok)
			}
		})
	}
}

// A first push that also brings an older set plans the older set against
// what the destination holds once the newest is copied: the objects the
// two share are present, not missing because objects/ was empty when the
// run began (goneDirs holds only until the destination is written).
func TestOlderSetSharesObjects(t *testing.T) {
	for _, d := range []direction{directions()[0], directions()[2]} { // dir-to-dir, push-helper
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.MTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) // unchanged files keep their times
			id1 := c.Publish(spread("1"))
			id2 := c.Publish(spread("2", "d03/f1"))
			src, dst := d.ends(t, srcDir, dstDir)
			res := run(t, opts(c, src, dst))
			if res.Set != id2 || len(res.Older) != 1 || res.Older[0].Set != id1 {
				t.Fatalf("got %+v, want %s and then %s", res, id2, id1)
			}
			// The older set's own (26: its other object, its lists, its
			// manifest and signature), not the ~200 objects it shares.
			if o := res.Older[0]; o.Copied == 0 || o.Copied > 50 {
				t.Errorf("older set: %d of %d files copied, want only the few it does not share with %s", o.Copied, o.Files, id2)
			}
			// Planned beside the newest set, just copied: only the
			// directory they do not share is looked at.
			if o := res.Older[0]; o.Files > res.Files/4 || o.Beside != id2 {
				t.Errorf("older set: %d files planned beside %q (the newest set has %d), want those of the directories it does not share with %s", o.Files, o.Beside, res.Files, id2)
			}
			verifyDst(t, c, dstDir, id1)
			verifyDst(t, c, dstDir, id2)
		})
	}
}
