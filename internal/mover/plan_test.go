package mover

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

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
