package filetree

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// LocalTarget is a Target in a local directory. All access goes through
// os.Root, so no name (and no symlink in the tree) can reach outside it.
type LocalTarget struct {
	dir  string
	root *os.Root
}

var (
	_ Target      = (*LocalTarget)(nil)
	_ BatchSyncer = (*LocalTarget)(nil)
)

// NewLocalTarget opens dir (created 0750 if missing). Close it when done.
func NewLocalTarget(dir string) (*LocalTarget, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("target %s: %w", dir, err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", dir, err)
	}
	return &LocalTarget{dir: dir, root: r}, nil
}

// Close releases the directory.
func (l *LocalTarget) Close() error { return l.root.Close() }

func (l *LocalTarget) String() string { return l.dir }

func (l *LocalTarget) Lstat(name string) (fs.FileInfo, error) { return l.root.Lstat(name) }

func (l *LocalTarget) ReadDir(name string) ([]fs.FileInfo, error) {
	f, err := l.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(des))
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			continue // vanished meanwhile
		}
		out = append(out, fi)
	}
	return out, nil
}

func (l *LocalTarget) Readlink(name string) (string, error) { return l.root.Readlink(name) }

func (l *LocalTarget) Mkdir(name string, perm fs.FileMode) error {
	if name == "." {
		return nil
	}
	return l.root.Mkdir(name, perm)
}

func (l *LocalTarget) Create(name string, perm fs.FileMode) (io.WriteCloser, error) {
	f, err := l.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, err
	}
	return syncCloser{f}, nil
}

// CreateUnsynced creates a new file whose content SyncFS makes durable.
func (l *LocalTarget) CreateUnsynced(name string, perm fs.FileMode) (io.WriteCloser, error) {
	return l.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
}

// SyncFS makes everything written below the target durable (syncfs(2)).
func (l *LocalTarget) SyncFS() error { return manifest.SyncFSAt(l.root.Open, []string{"."}) }

// syncCloser syncs a file before closing it, so a rename publishes durable content.
type syncCloser struct{ *os.File }

func (s syncCloser) Close() error {
	if err := s.File.Sync(); err != nil {
		_ = s.File.Close()
		return err
	}
	return s.File.Close()
}

func (l *LocalTarget) Symlink(oldname, newname string) error  { return l.root.Symlink(oldname, newname) }
func (l *LocalTarget) Rename(oldname, newname string) error   { return l.root.Rename(oldname, newname) }
func (l *LocalTarget) Remove(name string) error               { return l.root.Remove(name) }
func (l *LocalTarget) RemoveAll(name string) error            { return l.root.RemoveAll(name) }
func (l *LocalTarget) Lchown(name string, uid, gid int) error { return l.root.Lchown(name, uid, gid) }

func (l *LocalTarget) Chmod(name string, mode fs.FileMode) error { return l.root.Chmod(name, mode) }

func (l *LocalTarget) Chtimes(name string, mtime time.Time) error {
	return l.root.Chtimes(name, mtime, mtime)
}

func (l *LocalTarget) Owner(fi fs.FileInfo) (int, int, bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid), true
	}
	return 0, 0, false
}

func (l *LocalTarget) TimeGranularity() time.Duration { return time.Nanosecond }

// Path is the local path of name.
func (l *LocalTarget) Path(name string) string { return filepath.Join(l.dir, filepath.FromSlash(name)) }
