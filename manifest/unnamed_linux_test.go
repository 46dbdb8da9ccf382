package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// An unnamed file gets its name whole, by linking its descriptor or
// through /proc/self/fd where that is refused; a name taken is
// fs.ErrExist; a missing directory is fs.ErrNotExist and does not make
// LinkUnnamed give up linking the descriptor.
func TestLinkUnnamed(t *testing.T) {
	defer emptyPathRefused.Store(emptyPathRefused.Load())
	for _, viaProc := range []bool{false, true} {
		emptyPathRefused.Store(viaProc)
		dir := t.TempDir()
		fd, err := OpenUnnamed(unix.AT_FDCWD, dir, 0o640)
		if errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("no O_TMPFILE in %s", dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = unix.Close(fd) }()
		if _, err := unix.Write(fd, []byte("data")); err != nil {
			t.Fatal(err)
		}
		if err := LinkUnnamed(fd, unix.AT_FDCWD, filepath.Join(dir, "missing", "f")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("via /proc %v: link into a missing directory: %v, want ErrNotExist", viaProc, err)
		}
		if emptyPathRefused.Load() != viaProc {
			t.Errorf("via /proc %v: a missing directory changed how files are linked", viaProc)
		}
		if err := LinkUnnamed(fd, unix.AT_FDCWD, filepath.Join(dir, "f")); err != nil {
			t.Fatalf("via /proc %v: %v", viaProc, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "data" {
			t.Errorf("via /proc %v: linked file holds %q, %v", viaProc, b, err)
		}
		if err := LinkUnnamed(fd, unix.AT_FDCWD, filepath.Join(dir, "f")); !errors.Is(err, fs.ErrExist) {
			t.Errorf("via /proc %v: link onto a taken name: %v, want ErrExist", viaProc, err)
		}
	}
}
