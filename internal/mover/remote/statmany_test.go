package remote

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestStatMany: the names of several directories looked up in one
// request give the entries a listing shows of them; a missing name is
// left out, a missing directory or one below a file is its own error, and
// nothing outside the root is looked at. An older helper does not offer
// it.
func TestStatMany(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "channel")
	testkit.Must(t, os.MkdirAll(filepath.Join(root, "objects/ab/sub"), 0o750))
	testkit.Must(t, os.WriteFile(filepath.Join(root, "objects/ab/x"), []byte("xx"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(root, "objects/cd"), []byte("file"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o640))
	testkit.Must(t, os.Symlink(parent, filepath.Join(root, "out")))
	testkit.Must(t, os.Symlink("../../../secret", filepath.Join(root, "objects/ab/link")))
	c := pair(t, root)
	ctx := context.Background()
	listed, err := c.List(ctx, "objects/ab")
	testkit.Must(t, err)
	want := map[string]Entry{}
	for _, e := range listed {
		want[e.Name] = e
	}

	cases := []struct {
		name  string
		dir   DirNames
		found []string // the names found, as the listing shows them
		err   error    // the directory's error, if it has one (nil: any)
	}{
		{"names found and missing", DirNames{"objects/ab", []string{"x", "nope", "sub", "link"}}, []string{"x", "sub", "link"}, nil},
		{"no names", DirNames{"objects/ab", nil}, nil, nil},
		{"missing directory", DirNames{"missing", []string{"x"}}, nil, fs.ErrNotExist},
		{"a file", DirNames{"objects/cd", []string{"x"}}, nil, syscall.ENOTDIR},
		{"below a file", DirNames{"objects/cd/ef", []string{"x"}}, nil, syscall.ENOTDIR},
		{"parent", DirNames{"..", []string{"secret"}}, nil, nil},
		{"escaping", DirNames{"../channel/..", []string{"secret"}}, nil, nil},
		{"absolute", DirNames{parent, []string{"secret"}}, nil, nil},
		{"symlink out", DirNames{"out", []string{"secret"}}, nil, nil},
		{"name up", DirNames{"objects/ab", []string{"../../../secret"}}, nil, syscall.EINVAL},
		{"name dot dot", DirNames{"objects/ab", []string{".."}}, nil, syscall.EINVAL},
		{"empty name", DirNames{"objects/ab", []string{""}}, nil, syscall.EINVAL},
	}
	dirs := make([]DirNames, len(cases))
	for i, tc := range cases {
		dirs[i] = tc.dir
	}
	res, err := c.StatMany(ctx, dirs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(cases) {
		t.Fatalf("%d results for %d directories", len(res), len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := res[i]
			if tc.found == nil && tc.dir.Dir != "objects/ab" {
				if got.Err == nil || tc.err != nil && !errors.Is(got.Err, tc.err) {
					t.Fatalf("err %v, want %v", got.Err, tc.err)
				}
				if got.Entries != nil {
					t.Errorf("entries %+v beside an error", got.Entries)
				}
				return
			}
			if tc.err != nil {
				if !errors.Is(got.Err, tc.err) {
					t.Fatalf("err %v, want %v", got.Err, tc.err)
				}
				return
			}
			if got.Err != nil {
				t.Fatal(got.Err)
			}
			if len(got.Entries) != len(tc.found) {
				t.Fatalf("entries %+v, want %v", got.Entries, tc.found)
			}
			for j, e := range got.Entries {
				if e.Name != tc.found[j] || e != want[e.Name] {
					t.Errorf("entry %+v, listed as %+v", e, want[tc.found[j]])
				}
			}
		})
	}

	older := pairOffering(t, root, []byte{opPublish, opListMany, opZstd})
	if _, err := older.StatMany(ctx, dirs[:1]); !errors.Is(err, ErrNotOffered) {
		t.Errorf("StatMany to an older helper: %v, want ErrNotOffered", err)
	}
}
