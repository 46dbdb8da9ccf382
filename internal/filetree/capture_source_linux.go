//go:build linux

package filetree

import (
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// statInfo is a FileInfo from fstatat(2); Sys returns *unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (s *statInfo) Name() string       { return s.name }
func (s *statInfo) Size() int64        { return s.st.Size }
func (s *statInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *statInfo) IsDir() bool        { return s.st.Mode&syscall.S_IFMT == syscall.S_IFDIR }
func (s *statInfo) Sys() any           { return &s.st }
func (s *statInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// readDir lists directory dir and lstats each entry relative to the open
// directory (fstatat with AT_SYMLINK_NOFOLLOW): the kernel resolves one
// name per entry, not the whole path, and the infos of a directory are
// one allocation.
func readDir(dir string) ([]fs.FileInfo, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // the walk's order; stat in it too

	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	infos := make([]statInfo, len(names))
	out := make([]fs.FileInfo, 0, len(names))
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for i, n := range names {
			s := &infos[i]
			s.name = n
			if err := ignoringEINTR(func() error { return unix.Fstatat(int(fd), n, &s.st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
				if err == unix.ENOENT {
					continue // vanished between readdir and lstat
				}
				serr = &fs.PathError{Op: "lstat", Path: dir + "/" + n, Err: err}
				return
			}
			out = append(out, s)
		}
	})
	if cerr != nil {
		return nil, cerr
	}
	if serr != nil {
		return nil, serr
	}
	return out, nil
}

// ownerOf returns the owner and inode of fi from its stat.
func ownerOf(fi fs.FileInfo) (uid, gid uint32, ino uint64, ok bool) {
	switch st := fi.Sys().(type) {
	case *unix.Stat_t:
		return st.Uid, st.Gid, st.Ino, true
	case *syscall.Stat_t:
		return st.Uid, st.Gid, st.Ino, true
	}
	return 0, 0, 0, false
}

func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != unix.EINTR {
			return err
		}
	}
}
