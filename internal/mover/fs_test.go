package mover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestMain also plays `transfer serve` when the helper tests start this
// test binary over SSH as "mover.test serve ROOT".
func TestMain(m *testing.M) {
	remote.ServeIfAsked()
	os.Exit(testenv.Main(m))
}

// backend makes an FS rooted at a fresh local directory and returns both.
type backend struct {
	name string
	open func(t *testing.T, dir string) FS
}

func backends() []backend {
	return []backend{
		{"local", func(t *testing.T, dir string) FS { return NewLocal(dir) }},
		{"sftp", func(t *testing.T, dir string) FS { return dialSFTP(t, testenv.SSHD(t), dir) }},
		{"sftp+helper", func(t *testing.T, dir string) FS { return dialHelper(t, testenv.SSHD(t), dir) }},
	}
}

func dialSFTP(t *testing.T, s *testenv.SSHServer, dir string) *SFTP {
	t.Helper()
	return dialWith(t, s, dir, SFTPOptions{Conns: 2, Sessions: 2})
}

// dialHelper connects with this test binary as the helper (see TestMain);
// the test fails if the helper does not start.
func dialHelper(t *testing.T, s *testenv.SSHServer, dir string) *SFTP {
	t.Helper()
	f := dialWith(t, s, dir, helperOptions(t))
	if f.remote(context.Background()) == nil {
		t.Fatal("the helper did not start")
	}
	return f
}

// helperOptions are dialHelper's: two connections of two sessions, this
// test binary as the helper, the test failed if it is not used.
func helperOptions(t *testing.T) SFTPOptions {
	return SFTPOptions{Conns: 2, Sessions: 2, Helper: helperBin(t),
		Notice: func(msg string) { t.Errorf("helper not used: %s", msg) }}
}

func helperBin(t *testing.T) string {
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func dialWith(t *testing.T, s *testenv.SSHServer, dir string, o SFTPOptions) *SFTP {
	t.Helper()
	f, err := DialSFTP(context.Background(), s.Config(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func write(t *testing.T, f FS, name string, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := f.Create(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, f FS, name string) []byte {
	t.Helper()
	r, err := f.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// immutable makes dir refuse new entries even for root (chattr +i), so
// that "permission denied" can be tested as root; as another user a
// read-only mode does it.
func immutable(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o750) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		testenv.RequireCI(t, "chattr +i (as root, for a permission-denied destination)", string(out))
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
}

// TestFS is the suite every backend passes.
func TestFS(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			dir := t.TempDir()
			f := b.open(t, dir)
			t.Run("write rename read", func(t *testing.T) {
				if err := f.MkdirAll(ctx, "a/b"); err != nil {
					t.Fatal(err)
				}
				big := movertest.Content("big", 2<<20+5)
				write(t, f, "a/b/.tmp-transfer-x", big)
				if err := f.Rename(ctx, "a/b/.tmp-transfer-x", "a/b/x"); err != nil {
					t.Fatal(err)
				}
				if got := read(t, f, "a/b/x"); !bytes.Equal(got, big) {
					t.Fatalf("read back %d bytes, differ from the %d written", len(got), len(big))
				}
				// rename replaces an existing file atomically
				write(t, f, "a/b/.tmp-transfer-x", []byte("new"))
				if err := f.Rename(ctx, "a/b/.tmp-transfer-x", "a/b/x"); err != nil {
					t.Fatal(err)
				}
				if got := read(t, f, "a/b/x"); string(got) != "new" {
					t.Fatalf("after replacing rename: %q", got)
				}
			})
			t.Run("read dir", func(t *testing.T) {
				ents, err := f.ReadDir(ctx, "a/b")
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != 1 || ents[0].Name != "x" || ents[0].Size != 3 || ents[0].Dir {
					t.Fatalf("ReadDir a/b = %+v, want x of 3 bytes", ents)
				}
				ents, err = f.ReadDir(ctx, "a")
				if err != nil || len(ents) != 1 || !ents[0].Dir {
					t.Fatalf("ReadDir a = %+v, %v; want directory b", ents, err)
				}
				// SFTP alone keeps its staging directory (a mover
				// temporary name, which every reader ignores) in the
				// root while it is open.
				root, err := f.ReadDir(ctx, "")
				root = slices.DeleteFunc(root, func(e Entry) bool { return strings.HasPrefix(e.Name, manifest.MoverTempPrefix) })
				if err != nil || len(root) != 1 {
					t.Fatalf("ReadDir root = %+v, %v", root, err)
				}
			})
			t.Run("missing", func(t *testing.T) {
				if _, err := f.ReadDir(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("ReadDir missing: %v, want fs.ErrNotExist", err)
				}
				if _, err := f.Open(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Open missing: %v, want fs.ErrNotExist", err)
				}
				if err := f.Remove(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Remove missing: %v, want fs.ErrNotExist", err)
				}
			})
			t.Run("remove", func(t *testing.T) {
				if err := f.Remove(ctx, "a/b/x"); err != nil {
					t.Fatal(err)
				}
				if err := f.Remove(ctx, "a/b"); err != nil {
					t.Fatal(err)
				}
				ents, _ := f.ReadDir(ctx, "a")
				if len(ents) != 0 {
					t.Fatalf("after remove: %+v", ents)
				}
			})
			t.Run("permission denied", func(t *testing.T) {
				if err := f.MkdirAll(ctx, "ro"); err != nil {
					t.Fatal(err)
				}
				immutable(t, filepath.Join(dir, "ro"))
				// A backend may report it when the file is created or,
				// streaming, when it is synced or closed.
				w, err := f.Create(ctx, "ro/x")
				if err == nil {
					_, err = w.Write([]byte("x"))
					if err == nil {
						err = w.Sync()
					}
					if err == nil {
						err = w.Close()
					}
				}
				if !errors.Is(err, fs.ErrPermission) {
					t.Fatalf("writing in a read-only directory: %v, want fs.ErrPermission", err)
				}
			})
		})
	}
}

// TestCopyFile copies small and large files in both directions between a
// local directory and each backend and checks the content and the hash
// check.
func TestCopyFile(t *testing.T) {
	ctx := context.Background()
	sizes := map[string]int{"empty": 0, "small": 4096, "packet": 255 * 1024, "large": 5<<20 + 3}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			localDir, remoteDir := t.TempDir(), t.TempDir()
			local, remote := NewLocal(localDir), b.open(t, remoteDir)
			names := make([]string, 0, len(sizes))
			for n := range sizes {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, dir := range []struct {
				name     string
				src, dst FS
				srcDir   string
			}{{"push", local, remote, localDir}, {"pull", remote, local, remoteDir}} {
				t.Run(dir.name, func(t *testing.T) {
					c := &copier{src: dir.src, dst: dir.dst, progress: manifest.NoProgress{}}
					for _, n := range names {
						data := movertest.Content(n, sizes[n])
						name := dir.name + "-" + n
						if err := os.WriteFile(filepath.Join(dir.srcDir, name), data, 0o640); err != nil {
							t.Fatal(err)
						}
						if _, err := c.copyFile(ctx, name, int64(len(data)), movertest.Sum(data), nil, nil); err != nil {
							t.Fatalf("%s: %v", n, err)
						}
						if got := read(t, dir.dst, name); !bytes.Equal(got, data) {
							t.Fatalf("%s: copy differs", n)
						}
						// A wrong hash is refused and nothing appears.
						bad := dir.name + "-bad-" + n
						testkit.Must(t, os.WriteFile(filepath.Join(dir.srcDir, bad), data, 0o640))
						_, err := c.copyFile(ctx, bad, int64(len(data)), movertest.Sum([]byte("other")), nil, nil)
						if !errors.Is(err, ErrCorrupt) {
							t.Fatalf("%s with a wrong hash: %v, want ErrCorrupt", n, err)
						}
						if r, err := dir.dst.Open(ctx, bad); err == nil {
							_ = r.Close()
							t.Fatalf("%s: a file with a wrong hash appeared under its final name", n)
						}
						if r, err := dir.dst.Open(ctx, tmpName(bad)); err == nil {
							_ = r.Close()
							t.Fatalf("%s: the temporary file was left behind", n)
						}
					}
				})
			}
		})
	}
}
