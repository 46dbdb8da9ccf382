package mover

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	for _, n := range []string{"pwned", "pwned2", "pwned3"} {
		if _, err := os.Stat(filepath.Join(root, n)); err == nil {
			t.Fatalf("a name was run as a command (%s exists)", n)
		}
	}
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
