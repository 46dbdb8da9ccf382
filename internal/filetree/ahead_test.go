package filetree

import (
	"slices"
	"testing"
)

// TestAheadWindow: small directories are listed up to readAhead beyond
// the one walked; big ones only as far as aheadBytes allows, the next to
// walk always, so a tree of huge directories holds one listing ahead.
func TestAheadWindow(t *testing.T) {
	walk := func(sizes []int64) (most int) {
		w := aheadWindow{size: func(k int) int64 { return sizes[k] }, n: len(sizes)}
		listed := map[int]bool{}
		for k := range sizes {
			for _, s := range w.next(k) {
				if listed[s] {
					t.Fatalf("subdirectory %d listed twice", s)
				}
				listed[s] = true
			}
			if !listed[k] {
				t.Fatalf("subdirectory %d walked before it was listed", k)
			}
			most = max(most, len(listed)-k)
			w.walked(k)
		}
		if len(listed) != len(sizes) || w.held != 0 {
			t.Fatalf("%d of %d listed, %d bytes still held", len(listed), len(sizes), w.held)
		}
		return most
	}
	small := slices.Repeat([]int64{32 << 10}, 100)
	if got, want := walk(small), readAhead+1; got != want {
		t.Errorf("small directories: %d listed and not walked at most; want %d", got, want)
	}
	huge := slices.Repeat([]int64{aheadBytes}, 10)
	if got := walk(huge); got != 1 {
		t.Errorf("huge directories: %d listed and not walked at most; want 1 (the next)", got)
	}
	mixed := []int64{aheadBytes / 2, aheadBytes / 2, aheadBytes / 2, 0, 0, aheadBytes, 4096}
	if got := walk(mixed); got > 3 {
		t.Errorf("mixed: %d listed and not walked at most; want at most 3", got)
	}
}
