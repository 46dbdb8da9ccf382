package manifest

import "testing"

func TestIsESMetadata(t *testing.T) {
	for path, want := range map[string]bool{
		"index.latest":              true,
		"index-12":                  true,
		"indices/abc/0/index-Zx1":   true,
		"indices/abc/0/__blob":      false,
		"indices/abc/0/snap-u.dat":  false,
		"indices/abc/meta-u.dat":    false,
		"indices/abc/index-x":       false,
		"snap-u.dat":                false,
		"meta-u.dat":                false,
		"indices/abc/0/sub/index-x": false,
		"other/abc/0/index-x":       false,
		"incompatible-snapshots":    false,
		"indices/abc/0/index-":      true,
		"index-":                    false,
		"index-12x":                 false,
	} {
		if got := IsESMetadata(path); got != want {
			t.Errorf("IsESMetadata(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestESGeneration(t *testing.T) {
	gen, ok := ESGeneration([]byte{0, 0, 0, 0, 0, 0, 1, 2})
	if !ok || gen != 258 || ESGenerationFile(gen) != "index-258" || !IsESGenerationFile(ESGenerationFile(gen)) || string(ESIndexLatestContent(gen)) != "\x00\x00\x00\x00\x00\x00\x01\x02" {
		t.Fatalf("generation %d %v", gen, ok)
	}
	if _, ok := ESGeneration([]byte{1, 2}); ok {
		t.Fatal("a 2-byte index.latest decoded")
	}
}
