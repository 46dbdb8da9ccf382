package manifest

import "testing"

func TestRepoMeta(t *testing.T) {
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
	} {
		if got := repoMeta(path); got != want {
			t.Errorf("repoMeta(%q) = %v, want %v", path, got, want)
		}
	}
}
