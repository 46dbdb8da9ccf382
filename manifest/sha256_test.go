package manifest

import (
	"strings"
	"testing"
)

// TestValidSHA256: exactly 64 lower-case hex digits, every other byte
// refused at every position.
func TestValidSHA256(t *testing.T) {
	ok := strings.Repeat("0123456789abcdef", 4)
	if !ValidSHA256(ok) {
		t.Fatalf("%s refused", ok)
	}
	for _, s := range []string{"", ok[:63], ok + "0", strings.ToUpper(ok)} {
		if ValidSHA256(s) {
			t.Errorf("%q accepted", s)
		}
	}
	for b := range 256 {
		want := '0' <= b && b <= '9' || 'a' <= b && b <= 'f'
		for _, i := range []int{0, 31, 63} {
			s := ok[:i] + string([]byte{byte(b)}) + ok[i+1:]
			if got := ValidSHA256(s); got != want {
				t.Errorf("byte %#x at %d: %v, want %v", b, i, got, want)
			}
		}
	}
}
