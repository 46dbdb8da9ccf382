package manifest_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// FuzzDecode: no input makes Decode panic, and whatever it accepts encodes
// and decodes again to the same document. Seeds: testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	good, err := manifest.Encode(sampleManifest())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":"2.0"}`))
	f.Add([]byte(`{"version":"1.9","x":[1,2]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := manifest.Decode(data)
		if err != nil {
			if !errors.Is(err, manifest.ErrInvalid) && !errors.Is(err, manifest.ErrUnknownVersion) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		enc, err := manifest.Encode(m)
		if err != nil {
			t.Fatalf("accepted manifest does not encode: %v", err)
		}
		m2, err := manifest.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded manifest does not decode: %v", err)
		}
		enc2, _ := manifest.Encode(m2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("round trip not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// FuzzReadEntries: no list makes the reader panic; every entry it yields
// has a clean path inside its root, and paths come strictly increasing.
// Seeds: testdata/fuzz/FuzzReadEntries.
func FuzzReadEntries(f *testing.F) {
	var buf bytes.Buffer
	lw := manifest.NewListWriter(&buf)
	for _, e := range sampleEntries() {
		if err := lw.WriteEntry(e); err != nil {
			f.Fatal(err)
		}
	}
	if err := lw.Flush(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"path":"../x","type":"dir","mode":0,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var last string
		n := 0
		err := manifest.ReadEntries(bytes.NewReader(data), func(e manifest.Entry) error {
			checkInside(t, e.Path)
			if n > 0 && manifest.ComparePaths(last, e.Path) >= 0 {
				t.Fatalf("%q after %q", e.Path, last)
			}
			last = e.Path
			n++
			return nil
		})
		if err != nil && !errors.Is(err, manifest.ErrInvalid) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
	})
}

// FuzzCleanPath: an accepted path never leaves its root.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"a/b", "../a", "a/../../b", "/etc", "a\x00b", "", ".", "a//b", "a/./b", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := manifest.CleanPath(p)
		if err != nil {
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if got != p {
			t.Fatalf("CleanPath changed %q to %q", p, got)
		}
		checkInside(t, p)
	})
}

// checkInside fails unless p is a relative path that stays below its root.
func checkInside(t *testing.T, p string) {
	t.Helper()
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		t.Fatalf("accepted path %q", p)
	}
	depth := 0
	for _, el := range strings.Split(p, "/") {
		switch el {
		case "..":
			depth--
		case ".", "":
			t.Fatalf("accepted path %q with element %q", p, el)
		default:
			depth++
		}
		if depth < 0 {
			t.Fatalf("accepted path %q leaves its root", p)
		}
	}
}
