package mover

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestSFTPDirDigests: without the helper, the digests of one find through
// the shell equal those of the SFTP listings of the same directories,
// whatever the names hold (spaces, newlines, quotes, shell syntax, a
// leading dash); nothing in a name is run. Where find cannot be run the
// answer is ErrNoDigest, and a missing directory is an error.
func TestSFTPDirDigests(t *testing.T) {
	s := testenv.SSHD(t)
	root, dirs := oddDirs(t)
	f := dialSFTP(t, s, root)
	ctx := context.Background()
	sums, err := f.viaSFTP.DirDigests(ctx, dirs)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dirs {
		ents, err := f.viaSFTP.ReadDir(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if want := remote.Digest(ents); sums[i] != want {
			t.Errorf("%q: find's digest differs from the listing's (%d entries)", d, len(ents))
		}
	}
	notRun(t, root)
	if sums[0] == sums[1] {
		t.Fatal("two different directories have the same digest")
	}
	// A change shows: a file's time (whole seconds), then a new file.
	p := filepath.Join(root, "objects/ab", "plain")
	testkit.Must(t, os.Chtimes(p, time.Unix(1_600_000_000, 0), time.Unix(1_600_000_000, 0)))
	again, err := f.viaSFTP.DirDigests(ctx, dirs[1:2])
	if err != nil || again[0] == sums[1] {
		t.Fatalf("after a change: %v, same digest %v", err, again[0] == sums[1])
	}

	if _, err := f.viaSFTP.DirDigests(ctx, []string{"objects/ab", "missing"}); err == nil || errors.Is(err, ErrNoDigest) {
		t.Fatalf("a missing directory: %v, want an error other than ErrNoDigest", err)
	}
	if _, err := f.viaSFTP.DirDigests(ctx, []string{"objects/ab/plain"}); err == nil {
		t.Fatal("a file fingerprinted as a directory")
	}

	for _, cmd := range []string{"/nonexistent/find", "busybox-find() { false; }; busybox-find", "exec true;"} {
		g := dialSFTP(t, s, root)
		g.viaSFTP.findCmd = cmd
		for range 2 {
			if _, err := g.viaSFTP.DirDigests(ctx, dirs[1:2]); !errors.Is(err, ErrNoDigest) {
				t.Fatalf("find as %q: %v, want ErrNoDigest", cmd, err)
			}
		}
		if g.viaSFTP.findState.Load() != syncUnavailable {
			t.Fatalf("find as %q: not given up", cmd)
		}
	}
}

// oddDirs makes directories whose names, and whose entries' names, hold
// what a shell would act on (spaces, newlines, quotes, shell syntax, a
// leading dash), with sizes and sub-second times that differ, a
// subdirectory and a symbolic link each; "empty" is empty. It returns the
// root and the directories below it ("" the root itself).
func oddDirs(t *testing.T) (string, []string) {
	t.Helper()
	root := t.TempDir()
	odd := []string{"plain", "with space", "new\nline", "quote'd", `double"q`, "$(touch pwned)",
		"`touch pwned2`", "-rf", "back\\slash", "semi;colon", " lead", "tab\there", ".hidden", "ünï"}
	dirs := []string{"", "objects/ab", "empty", "-dash dir", "it's $(touch pwned3)", "new\ndir"}
	for i, d := range dirs {
		testkit.Must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		if d == "empty" {
			continue
		}
		for j, n := range odd {
			p := filepath.Join(root, d, n)
			testkit.Must(t, os.WriteFile(p, make([]byte, i*10+j), 0o644))
			tm := time.Unix(1_700_000_000+int64(j), int64(i*1000+7)) // sub-second part
			testkit.Must(t, os.Chtimes(p, tm, tm))
		}
		testkit.Must(t, os.Mkdir(filepath.Join(root, d, "sub dir"), 0o755))
		testkit.Must(t, os.Symlink("plain", filepath.Join(root, d, "link")))
	}
	return root, dirs
}

// notRun fails t if a name below root was run as a command.
func notRun(t *testing.T, root string) {
	t.Helper()
	for _, n := range []string{"pwned", "pwned2", "pwned3"} {
		if _, err := os.Stat(filepath.Join(root, n)); err == nil {
			t.Fatalf("a name was run as a command (%s exists)", n)
		}
	}
}

// TestSFTPReadDirs: without the helper, the listings of one find through
// the shell equal the SFTP listings of the same directories (names, sizes,
// times in whole seconds, kinds), whatever the names hold; a missing
// directory says so (fs.ErrNotExist) and a file listed as a directory
// fails, the others listed. Where find cannot be run, each is
// listed over SFTP, with the same answers.
func TestSFTPReadDirs(t *testing.T) {
	s := testenv.SSHD(t)
	root, dirs := oddDirs(t)
	asked := append(slices.Clone(dirs), "missing", "objects/ab/plain", "objects/ab", "objects/none")
	ctx := context.Background()
	for _, find := range []string{"find", "/nonexistent/find"} {
		f := dialSFTP(t, s, root)
		f.viaSFTP.findCmd = find
		got, err := f.viaSFTP.ReadDirs(ctx, asked)
		if err != nil {
			t.Fatalf("find as %q: %v", find, err)
		}
		for i, d := range asked {
			want, werr := f.viaSFTP.ReadDir(ctx, d)
			_, lerr := os.Lstat(filepath.Join(root, d))
			switch {
			case os.IsNotExist(lerr):
				if !errors.Is(got[i].Err, fs.ErrNotExist) {
					t.Errorf("find as %q: %q missing: %v, want fs.ErrNotExist", find, d, got[i].Err)
				}
			case werr != nil: // a file (SFTP's opendir says "no such file")
				if got[i].Err == nil {
					t.Errorf("find as %q: %q (%v) listed", find, d, werr)
				}
			case got[i].Err != nil:
				t.Errorf("find as %q: %q: %v", find, d, got[i].Err)
			default:
				sortEntries(want)
				sortEntries(got[i].Entries)
				if !reflect.DeepEqual(want, got[i].Entries) {
					t.Errorf("find as %q: %q listed\n%v\nwant\n%v", find, d, got[i].Entries, want)
				}
			}
		}
		if want := map[string]int32{"find": syncWorks, "/nonexistent/find": syncUnavailable}[find]; f.viaSFTP.findState.Load() != want {
			t.Errorf("find as %q: find state %d, want %d", find, f.viaSFTP.findState.Load(), want)
		}
	}
	notRun(t, root)
}

func sortEntries(ents []remote.Entry) {
	slices.SortFunc(ents, func(a, b remote.Entry) int { return strings.Compare(a.Name, b.Name) })
	for i := range ents {
		ents[i].ModTime = ents[i].ModTime.UTC()
	}
}
