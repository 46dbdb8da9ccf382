package mover

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// A spool record keeps what the want it was made from says: a file's sum,
// size and name, an object's name taken from its sum; decodeSum and
// isObjectRel agree with hex.Decode and manifest.ObjectRel, a malformed
// sum decoding short (it then matches no content).
func TestSpoolRecord(t *testing.T) {
	sum := strings.Repeat("0123456789abcdef", 4)
	for _, w := range []*want{
		{name: manifest.ObjectRel(sum), sum: sum, size: 4096, phase: phaseData},
		{name: "es/snapshots/index-7", sum: sum, size: 1 << 40, phase: phaseData},
		{name: manifest.ObjectsDirName + "/01/" + sum[:63] + "x", sum: sum, size: 0, phase: phaseData},
	} {
		rec := appendWant(nil, classTodo, w)
		n := 0
		err := decodeWants(rec, func(class byte, got *want) error {
			n++
			if class != classTodo || got.name != w.name || got.sum != w.sum || got.size != w.size {
				t.Errorf("%+v read back as %+v (class %d)", w, got, class)
			}
			return nil
		})
		if err != nil || n != 1 {
			t.Errorf("%s: %d records, %v", w.name, n, err)
		}
	}
	for _, s := range []string{sum, strings.ToUpper(sum), sum[:10], sum[:9], sum[:20] + "zz" + sum[22:], sum + "00", "", "a"} {
		var want [32]byte
		_, _ = hex.Decode(want[:], []byte(s[:min(len(s), 64)]))
		if got := decodeSum(s); got != want {
			t.Errorf("decodeSum(%q) = %x, want %x", s, got, want)
		}
		for _, name := range []string{manifest.ObjectRel(s), manifest.ObjectRel(sum), "objects/" + s, "x/" + s} {
			if got, want := isObjectRel(name, s), name == manifest.ObjectRel(s); got != want {
				t.Errorf("isObjectRel(%q, %q) = %v, want %v", name, s, got, want)
			}
		}
	}
}
