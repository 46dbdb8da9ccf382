package filetree

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	"github.com/pkg/sftp"
)

// SFTPTarget is a Target in a directory on an SFTP server (OpenSSH). Names
// are joined below the directory after manifest.CleanPath validated them.
type SFTPTarget struct {
	c   *sftp.Client
	dir string
}

var _ Target = (*SFTPTarget)(nil)

// NewSFTPTarget returns a Target at dir (absolute on the server).
func NewSFTPTarget(c *sftp.Client, dir string) *SFTPTarget { return &SFTPTarget{c: c, dir: dir} }

func (s *SFTPTarget) p(name string) string { return path.Join(s.dir, name) }

func (s *SFTPTarget) String() string { return "sftp:" + s.dir }

func (s *SFTPTarget) Lstat(name string) (fs.FileInfo, error) { return s.c.Lstat(s.p(name)) }

func (s *SFTPTarget) ReadDir(name string) ([]fs.FileInfo, error) { return s.c.ReadDir(s.p(name)) }

func (s *SFTPTarget) Readlink(name string) (string, error) { return s.c.ReadLink(s.p(name)) }

func (s *SFTPTarget) Mkdir(name string, perm fs.FileMode) error {
	if name == "." {
		return s.c.MkdirAll(s.dir)
	}
	if err := s.c.Mkdir(s.p(name)); err != nil {
		if fi, serr := s.c.Lstat(s.p(name)); serr == nil && fi.IsDir() {
			return fs.ErrExist
		}
		return err
	}
	return s.c.Chmod(s.p(name), perm)
}

func (s *SFTPTarget) Create(name string, perm fs.FileMode) (io.WriteCloser, error) {
	f, err := s.c.OpenFile(s.p(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func (s *SFTPTarget) Symlink(oldname, newname string) error {
	return s.c.Symlink(oldname, s.p(newname))
}

// Rename uses OpenSSH's posix-rename extension, which replaces newname atomically.
func (s *SFTPTarget) Rename(oldname, newname string) error {
	return s.c.PosixRename(s.p(oldname), s.p(newname))
}

func (s *SFTPTarget) Remove(name string) error {
	err := s.c.Remove(s.p(name))
	var se *sftp.StatusError
	if errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxNoSuchFile {
		return fs.ErrNotExist
	}
	return err
}

func (s *SFTPTarget) RemoveAll(name string) error { return s.c.RemoveAll(s.p(name)) }

// Lchown: SFTP has no lchown; on a symlink OpenSSH's setstat changes the
// link's target, so symlinks keep the owner of whoever created them.
func (s *SFTPTarget) Lchown(name string, uid, gid int) error {
	fi, err := s.c.Lstat(s.p(name))
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	return s.c.Chown(s.p(name), uid, gid)
}

func (s *SFTPTarget) Chmod(name string, mode fs.FileMode) error { return s.c.Chmod(s.p(name), mode) }

func (s *SFTPTarget) Chtimes(name string, mtime time.Time) error {
	return s.c.Chtimes(s.p(name), mtime, mtime)
}

func (s *SFTPTarget) Owner(fi fs.FileInfo) (int, int, bool) {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return int(st.UID), int(st.GID), true
	}
	return 0, 0, false
}

func (s *SFTPTarget) TimeGranularity() time.Duration { return time.Second }
