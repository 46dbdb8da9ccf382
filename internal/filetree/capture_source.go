package filetree

import (
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/pkg/sftp"
)

// LocalSource is a local directory.
type LocalSource struct {
	Dir   string
	mu    sync.Mutex
	users map[int]string
	grps  map[int]string
}

var _ Source = (*LocalSource)(nil)

func (l *LocalSource) p(name string) string { return filepath.Join(l.Dir, filepath.FromSlash(name)) }

func (l *LocalSource) String() string                         { return l.Dir }
func (l *LocalSource) Lstat(name string) (fs.FileInfo, error) { return os.Lstat(l.p(name)) }
func (l *LocalSource) Open(name string) (io.ReadCloser, error) {
	return openRead(l.p(name))
}
func (l *LocalSource) Readlink(name string) (string, error) { return os.Readlink(l.p(name)) }

func (l *LocalSource) ReadDir(name string) ([]fs.FileInfo, error) { return readDir(l.p(name)) }

func (l *LocalSource) Meta(fi fs.FileInfo) Meta {
	uid, gid, ino, ok := ownerOf(fi)
	if !ok {
		return Meta{}
	}
	m := Meta{UID: int(uid), GID: int(gid), Inode: ino}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.users == nil {
		l.users, l.grps = map[int]string{}, map[int]string{}
	}
	u, ok := l.users[m.UID]
	if !ok {
		if x, err := user.LookupId(strconv.Itoa(m.UID)); err == nil {
			u = x.Username
		}
		l.users[m.UID] = u
	}
	g, ok := l.grps[m.GID]
	if !ok {
		if x, err := user.LookupGroupId(strconv.Itoa(m.GID)); err == nil {
			g = x.Name
		}
		l.grps[m.GID] = g
	}
	m.User, m.Group = u, g
	return m
}

// SFTPSource is a directory on a remote host over SFTP.
type SFTPSource struct {
	Client *sftp.Client
	Dir    string
}

var _ Source = (*SFTPSource)(nil)

func (s *SFTPSource) p(name string) string                   { return path.Join(s.Dir, name) }
func (s *SFTPSource) String() string                         { return "sftp:" + s.Dir }
func (s *SFTPSource) Lstat(name string) (fs.FileInfo, error) { return s.Client.Lstat(s.p(name)) }
func (s *SFTPSource) ReadDir(name string) ([]fs.FileInfo, error) {
	return s.Client.ReadDir(s.p(name))
}
func (s *SFTPSource) Open(name string) (io.ReadCloser, error) {
	f, err := s.Client.Open(s.p(name))
	if err != nil {
		return nil, err
	}
	return f, nil
}
func (s *SFTPSource) Readlink(name string) (string, error) { return s.Client.ReadLink(s.p(name)) }
func (s *SFTPSource) Meta(fi fs.FileInfo) Meta {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return Meta{UID: int(st.UID), GID: int(st.GID)}
	}
	return Meta{}
}
