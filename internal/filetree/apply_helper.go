package filetree

import (
	"context"
	"io"
	"io/fs"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
)

// HelperTarget is a Target in a directory of another host, changed by the
// transfer helper (`transfer serve DIR`, started over SSH) rather than by
// SFTP: every request is carried out next to the data through an os.Root,
// so nothing outside DIR can be created, replaced or removed, whatever
// symlinks the tree holds or anyone puts there meanwhile. Names are
// relative to DIR.
type HelperTarget struct {
	c    *remote.Client
	desc string
}

var (
	_ Target      = (*HelperTarget)(nil)
	_ BatchSyncer = (*HelperTarget)(nil)
)

// NewHelperTarget returns a Target served by c; desc names it in messages
// (e.g. "ssh:bcp-2:/var/lib/squirro/storage").
func NewHelperTarget(c *remote.Client, desc string) *HelperTarget {
	return &HelperTarget{c: c, desc: desc}
}

func (h *HelperTarget) String() string { return h.desc }

func (h *HelperTarget) Lstat(name string) (fs.FileInfo, error) { return h.c.Stat(name) }

func (h *HelperTarget) ReadDir(name string) ([]fs.FileInfo, error) { return h.c.ReadDir(name) }

func (h *HelperTarget) Readlink(name string) (string, error) { return h.c.Readlink(name) }

func (h *HelperTarget) Mkdir(name string, perm fs.FileMode) error {
	if name == "." {
		return h.c.MkdirAll(context.Background(), ".")
	}
	return h.c.Mkdir(name, perm)
}

// Create writes name through the helper (its mode is set by Apply before
// the file is renamed into place).
func (h *HelperTarget) Create(name string, _ fs.FileMode) (io.WriteCloser, error) {
	return syncingFile{h.c.Create(name)}, nil
}

// CreateUnsynced writes name through the helper without an fsync; SyncFS
// makes it durable.
func (h *HelperTarget) CreateUnsynced(name string, _ fs.FileMode) (io.WriteCloser, error) {
	return h.c.Create(name), nil
}

// SyncFS makes everything written below the helper's directory durable
// (syncfs(2) next to the data).
func (h *HelperTarget) SyncFS() error { return h.c.SyncFS(context.Background(), []string{"."}) }

// syncingFile makes the content durable before Close returns, as
// LocalTarget does, so a rename publishes durable content.
type syncingFile struct{ f *remote.File }

func (s syncingFile) Write(p []byte) (int, error) { return s.f.Write(p) }

func (s syncingFile) Close() error {
	if err := s.f.Sync(); err != nil {
		_ = s.f.Close()
		return err
	}
	return s.f.Close()
}

func (h *HelperTarget) Symlink(oldname, newname string) error { return h.c.Symlink(oldname, newname) }

func (h *HelperTarget) Rename(oldname, newname string) error {
	return h.c.Rename(context.Background(), oldname, newname)
}

func (h *HelperTarget) Remove(name string) error { return h.c.Remove(context.Background(), name) }

func (h *HelperTarget) RemoveAll(name string) error { return h.c.RemoveAll(name) }

func (h *HelperTarget) Chmod(name string, mode fs.FileMode) error { return h.c.Chmod(name, mode) }

func (h *HelperTarget) Lchown(name string, uid, gid int) error { return h.c.Lchown(name, uid, gid) }

func (h *HelperTarget) Chtimes(name string, mtime time.Time) error { return h.c.Chtimes(name, mtime) }

func (h *HelperTarget) Owner(fi fs.FileInfo) (int, int, bool) {
	if i, ok := fi.Sys().(*remote.Info); ok {
		return i.UID, i.GID, true
	}
	return 0, 0, false
}

func (h *HelperTarget) TimeGranularity() time.Duration { return time.Nanosecond }

// FreeSpace asks the helper (statfs next to the data).
func (h *HelperTarget) FreeSpace() (int64, error) { return h.c.FreeSpace(".") }
