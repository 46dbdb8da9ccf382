package mover

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// TestLocalUnnamed: a Local destination creates the mover's temporary
// names as files without a name (O_TMPFILE here), so nothing of a file is
// visible before its rename, which links it - over a file already there
// too. Remove and Close drop such files, and past the limit on open ones
// the temporary name is created as before.
func TestLocalUnnamed(t *testing.T) {
	ctx := context.Background()
	l, dir := unnamedLocal(t, "objects/ab")
	names := func() []string {
		var got []string
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, p)
				got = append(got, filepath.ToSlash(rel))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	write := func(name, data string) File {
		t.Helper()
		return writeTemp(t, l, tmpName(name), data)
	}
	check := func(name, want string) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Fatalf("%s: %q, %v; want %q", name, got, err, want)
		}
	}

	if _, ok := write("objects/ab/one", "one").(*unnamedWriter); !ok {
		t.Fatal("a temporary name was not created without a name")
	}
	write("objects/ab/two", "two")
	write("objects/ab/three", "three")
	if got := names(); len(got) != 0 {
		t.Fatalf("before the renames the directory shows %v; want nothing", got)
	}
	if err := l.Rename(ctx, tmpName("objects/ab/one"), "objects/ab/one"); err != nil {
		t.Fatal(err)
	}
	check("objects/ab/one", "one")
	if st, err := os.Stat(filepath.Join(dir, "objects/ab/one")); err != nil || st.Mode().Perm()&^manifest.PermOf("objects/ab/one").Perm() != 0 || st.Mode().Perm()&0o600 != 0o600 {
		t.Fatalf("objects/ab/one: %v, %v; want mode %v (less the umask)", st, err, manifest.PermOf("objects/ab/one").Perm())
	}
	// a name already there is replaced, never missing
	if err := os.WriteFile(filepath.Join(dir, "objects/ab/two"), []byte("damaged"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := l.Rename(ctx, tmpName("objects/ab/two"), "objects/ab/two"); err != nil {
		t.Fatal(err)
	}
	check("objects/ab/two", "two")
	if err := l.Remove(ctx, tmpName("objects/ab/three")); err != nil {
		t.Fatal(err)
	}
	if err := l.Rename(ctx, tmpName("objects/ab/three"), "objects/ab/three"); err == nil {
		t.Fatal("a removed file without a name was renamed")
	}
	if got, want := names(), []string{"objects/ab/one", "objects/ab/two"}; !slices.Equal(got, want) {
		t.Fatalf("files %v; want %v", got, want)
	}

	// pinned directories: opened and linked relative to them
	unpin := l.pinDirs([]string{"objects/ab"})
	write("objects/ab/four", "four")
	if err := l.Rename(ctx, tmpName("objects/ab/four"), "objects/ab/four"); err != nil {
		t.Fatal(err)
	}
	unpin()
	check("objects/ab/four", "four")

	// past the limit: named temporary files, renamed as before
	l.unnamed.max = 1
	write("objects/ab/five", "five")
	if _, ok := write("objects/ab/six", "six").(*unnamedWriter); ok {
		t.Fatal("a file without a name beyond the limit")
	}
	if got := names(); !slices.Contains(got, tmpName("objects/ab/six")) || slices.Contains(got, tmpName("objects/ab/five")) {
		t.Fatalf("files %v; want only objects/ab/six's temporary name among them", got)
	}
	if err := l.Rename(ctx, tmpName("objects/ab/six"), "objects/ab/six"); err != nil {
		t.Fatal(err)
	}
	check("objects/ab/six", "six")
	// Close drops what was never renamed
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(l.unnamed.fds) != 0 {
		t.Fatalf("%d files without a name left open after Close", len(l.unnamed.fds))
	}
	if got, want := names(), []string{"objects/ab/four", "objects/ab/one", "objects/ab/six", "objects/ab/two"}; !slices.Equal(got, want) {
		t.Fatalf("files %v; want %v", got, want)
	}
}

// TestLocalRenameStat: RenameStat of a file written without a name says
// what a listing of its directory then shows (the stamp remember would
// take), and of a file with a name, that it does not know.
func TestLocalRenameStat(t *testing.T) {
	ctx := context.Background()
	l, dir := unnamedLocal(t, "objects/cd")
	const name = "objects/cd/cdef"
	writeTemp(t, l, tmpName(name), "twelve bytes")
	e, ok, err := l.RenameStat(ctx, tmpName(name), name)
	if err != nil || !ok {
		t.Fatalf("RenameStat of a file without a name: %v, known %v", err, ok)
	}
	ents, err := l.ReadDir(ctx, "objects/cd")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0] != e {
		t.Fatalf("RenameStat says %+v; the listing shows %+v", e, ents)
	}
	// A file with a name (as past the limit on unnamed ones): renamed,
	// not known.
	if err := os.WriteFile(filepath.Join(dir, tmpName("objects/cd/0123")), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := l.RenameStat(ctx, tmpName("objects/cd/0123"), "objects/cd/0123"); err != nil || ok {
		t.Fatalf("RenameStat of a named file: %v, known %v", err, ok)
	}
	if _, err := os.Stat(filepath.Join(dir, "objects/cd/0123")); err != nil {
		t.Fatal(err)
	}
}

// unnamedLocal is a Local destination at a new directory holding sub,
// where files can be written without a name (or the test fails).
func unnamedLocal(t *testing.T, sub string) (*Local, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
		t.Fatal(err)
	}
	l := NewLocal(dir)
	if l.unnamed.once.Do(func() { l.unnamed.max = manifest.UnnamedMax(unnamedMost, 4) }); l.unnamed.max == 0 {
		t.Fatal("no unnamed files on this machine (/proc/self/fd, RLIMIT_NOFILE): the test cannot show them")
	}
	return l, dir
}

// writeTemp writes data to tmp at l through Create, syncs and closes
// it, as a copy does, and returns the file it wrote through.
func writeTemp(t *testing.T, l *Local, tmp, data string) File {
	t.Helper()
	f, err := l.Create(context.Background(), tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}
