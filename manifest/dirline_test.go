package manifest

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

// strictDecode is how a line was decoded before parseDirLine.
func strictDecode(line []byte) (DirEntry, error) {
	var d DirEntry
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return d, err
	}
	if len(bytes.TrimSpace(line[dec.InputOffset():])) > 0 {
		return d, errDataAfter
	}
	return d, nil
}

var errDataAfter = bytes.ErrTooLarge // any non-nil error

func sampleDirLines() [][]byte {
	mt := time.Date(2026, 12, 2, 3, 33, 59, 123456789, time.UTC)
	es := []DirEntry{
		{Name: "f0000001.pdf", Type: TypeFile, Mode: 0o640, UID: 1000, GID: 1000, User: "squirro", Group: "squirro", MTime: mt, Size: 880, Object: strings.Repeat("ab", 32)},
		{Name: "d", Type: TypeDir, Mode: 0o2750, MTime: mt.Truncate(time.Second), Tree: &Ref{SHA256: strings.Repeat("0f", 32), Size: 42}},
		{Name: "link", Type: TypeSymlink, Mode: 0o777, UID: -1, GID: 0, MTime: time.Unix(0, 0).UTC(), Target: "../a <&> b"},
		{Name: "empty", Type: TypeFile, Mode: 0, MTime: mt, Object: strings.Repeat("cd", 32)},
		{Name: "ünïcødé\u2028", Type: TypeFile, Mode: 0o600, User: "a\"b", Group: "tab\t", MTime: mt, Size: 1 << 40, Object: strings.Repeat("ef", 32)},
	}
	var out [][]byte
	for i := range es {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&es[i]); err != nil {
			panic(err)
		}
		out = append(out, b.Bytes())
	}
	return append(out,
		[]byte(`{"name":"x","type":"file","mode":-0,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":4294967296,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":01,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1.0,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00+01:00"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-13-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z","size":99999999999999999999}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z","tree":null}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z","name":"y"}`+"\n"),
		[]byte(`{"Name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x\xff","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z"}`+"\n"),
		[]byte(`{"name":"x","type":"file","mode":1,"uid":1,"gid":0,"mtime":"2026-01-01T00:00:00Z"} {}`+"\n"),
	)
}

// checkAgrees fails if parseDirLine accepts a line that encoding/json
// would decode differently or refuse.
func checkAgrees(t *testing.T, line []byte) {
	t.Helper()
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return
	}
	var fast DirEntry
	if !parseDirLine(line[:len(line)-1], &fast) {
		return
	}
	want, err := strictDecode(line)
	if err != nil {
		t.Fatalf("%q: parseDirLine accepts, encoding/json says %v", line, err)
	}
	if !reflect.DeepEqual(fast, want) {
		t.Fatalf("%q: parseDirLine %+v, encoding/json %+v", line, fast, want)
	}
}

// TestParseDirLineAgrees: what TreeWriter writes takes the fast path, and
// on lines mutated at random the fast path never disagrees with
// encoding/json.
func TestParseDirLineAgrees(t *testing.T) {
	lines := sampleDirLines()
	for i, l := range lines[:4] { // written by encoding/json, no escapes
		var d DirEntry
		if !parseDirLine(l[:len(l)-1], &d) {
			t.Errorf("line %d %q: not taken by the fast path", i, l)
		}
	}
	rng := rand.New(rand.NewSource(1))
	alphabet := []byte(`{}[]",:\-0123456789.eE+ abtrunlfx` + "\xff\x00\t")
	for _, l := range lines {
		checkAgrees(t, l)
		for range 3000 {
			m := bytes.Clone(l)
			for range 1 + rng.Intn(3) {
				i := rng.Intn(len(m) - 1)
				switch rng.Intn(3) {
				case 0:
					m[i] = alphabet[rng.Intn(len(alphabet))]
				case 1:
					m = append(m[:i], m[i+1:]...)
				default:
					m = append(m[:i], append([]byte{alphabet[rng.Intn(len(alphabet))]}, m[i:]...)...)
				}
			}
			checkAgrees(t, m)
		}
	}
}

func FuzzParseDirLine(f *testing.F) {
	for _, l := range sampleDirLines() {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkAgrees(t, append(bytes.Clone(line), '\n')) })
}
