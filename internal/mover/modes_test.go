package mover

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestDestinationModes: whatever the path (a local or NFS directory, the
// helper, SFTP alone, a pull), what a mover writes has the modes
// manifest/DESIGN.md documents: objects 0600 (they hold database dumps),
// every other file 0640, directories 0750 - also where the server's umask
// is the usual 022.
func TestDestinationModes(t *testing.T) {
	old := syscall.Umask(0o022) // the test's sshd inherits it, like a stock one
	t.Cleanup(func() { syscall.Umask(old) })
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), filepath.Join(t.TempDir(), "prod-to-bcp")
			c := movertest.New(t, srcDir)
			c.Publish(movertest.Small("a", 5))
			src, dst := d.ends(t, srcDir, dstDir)
			run(t, opts(c, src, dst))
			if err := dst.Close(); err != nil { // as push does: SFTP alone removes its staging directory
				t.Fatal(err)
			}
			var files, objects, dirs int
			err := filepath.WalkDir(dstDir, func(p string, e fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dstDir, p)
				rel = filepath.ToSlash(rel)
				fi, err := os.Lstat(p)
				if err != nil {
					return err
				}
				want := manifest.PermOf(rel)
				switch {
				case e.IsDir():
					want = manifest.DirPerm
					dirs++
				case strings.HasPrefix(rel, manifest.ObjectsDirName+"/"):
					objects++
				default:
					files++
				}
				if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s: mode %#o, want %#o", rel, got, want)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if files == 0 || objects == 0 || dirs == 0 {
				t.Fatalf("walked %d files, %d objects, %d directories: the copy is missing something", files, objects, dirs)
			}
		})
	}
}
