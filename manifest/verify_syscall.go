package manifest

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Objects are read with plain system calls, below their fan-out
// directory's descriptor: an os.File costs an epoll registration attempt
// (refused for a regular file) and an allocation per object, and Verify
// opens every object of a set.

// rawFile is an object opened with openat(2).
type rawFile struct {
	fd   int
	name string
}

// openAt opens name below directory dirfd without following a symbolic
// link and without blocking on a FIFO, and stats it; anything but a
// regular file is an error wrapping ErrInvalid (the caller reports it
// corrupt), a missing file one wrapping fs.ErrNotExist.
func openAt(dirfd int, name string) (readStatCloser, fs.FileInfo, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = syscall.Openat(dirfd, name, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		return err
	})
	if errors.Is(err, syscall.ELOOP) {
		return nil, nil, fmt.Errorf("%s is a symbolic link, not a regular file: %w", name, ErrInvalid)
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := &rawFile{fd: fd, name: name}
	fi, err := statRegular(f, name)
	if err != nil {
		return nil, nil, err
	}
	return f, fi, nil
}

func (f *rawFile) Read(p []byte) (int, error) {
	var n int
	err := retryEINTR(func() (err error) {
		n, err = syscall.Read(f.fd, p)
		return err
	})
	switch {
	case err != nil:
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (f *rawFile) Close() error { return syscall.Close(f.fd) }

func (f *rawFile) Stat() (fs.FileInfo, error) {
	fi := &StatInfo{name: f.name}
	if err := retryEINTR(func() error { return syscall.Fstat(f.fd, &fi.st) }); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: f.name, Err: err}
	}
	return fi, nil
}

// LstatAt stats name below the open directory dirfd without following a
// symbolic link (fstatat(2) with AT_SYMLINK_NOFOLLOW): the kernel resolves
// one name, not a path.
func LstatAt(dirfd int, name string) (fs.FileInfo, error) {
	fi := &StatInfo{}
	if err := fi.LstatAt(dirfd, name); err != nil {
		return nil, err
	}
	return fi, nil
}

// LstatAt fills s as the function LstatAt does (a caller stats many
// files into one slice of StatInfo, one allocation).
func (s *StatInfo) LstatAt(dirfd int, name string) error {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	*s = StatInfo{name: name}
	s.st.Dev, s.st.Ino, s.st.Mode, s.st.Uid, s.st.Gid, s.st.Size = st.Dev, st.Ino, st.Mode, st.Uid, st.Gid, st.Size
	s.st.Mtim = syscall.Timespec{Sec: st.Mtim.Sec, Nsec: st.Mtim.Nsec}
	s.st.Ctim = syscall.Timespec{Sec: st.Ctim.Sec, Nsec: st.Ctim.Nsec}
	return nil
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// StatInfo is a FileInfo of a stat; Sys is the *syscall.Stat_t (device,
// inode, mode, owner, size, mtime and ctime: what the identity cache and
// a capture read).
type StatInfo struct {
	name string
	st   syscall.Stat_t
}

func (s *StatInfo) Name() string       { return s.name }
func (s *StatInfo) Size() int64        { return s.st.Size }
func (s *StatInfo) ModTime() time.Time { return time.Unix(s.st.Mtim.Unix()) }
func (s *StatInfo) IsDir() bool        { return s.Mode().IsDir() }
func (s *StatInfo) Sys() any           { return &s.st }

// Mode gives the type bits, permissions and setuid, setgid and sticky
// bits, as os.Lstat does.
func (s *StatInfo) Mode() fs.FileMode {
	m := fs.FileMode(s.st.Mode & 0o777)
	if s.st.Mode&syscall.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if s.st.Mode&syscall.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if s.st.Mode&syscall.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	switch s.st.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		m |= fs.ModeDir
	case syscall.S_IFLNK:
		m |= fs.ModeSymlink
	case syscall.S_IFIFO:
		m |= fs.ModeNamedPipe
	case syscall.S_IFSOCK:
		m |= fs.ModeSocket
	case syscall.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFBLK:
		m |= fs.ModeDevice
	}
	return m
}
