package manifest

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// OpenUnnamed opens a new file with no name yet in the directory dir
// (relative to dirfd; unix.AT_FDCWD for a path) for writing, with mode
// perm (less the umask), and returns its descriptor: Linux's O_TMPFILE.
// LinkUnnamed gives it its name once it is whole and durable; a file that
// is never linked vanishes with its descriptor, so a writer that dies
// leaves nothing behind, and no temporary name is made and removed per
// file. Unlike a create, it does not hold dir's lock while the inode is
// allocated, so writers in one directory do not wait on each other. It
// returns errors.ErrUnsupported where the file system has no O_TMPFILE
// (NFS, older kernels).
func OpenUnnamed(dirfd int, dir string, perm fs.FileMode) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, dir, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, uint32(perm.Perm()))
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EOPNOTSUPP || err == unix.EISDIR || err == unix.EINVAL:
			return -1, errors.ErrUnsupported
		case err != nil:
			return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
		}
		return fd, nil
	}
}

// LinkUnnamed gives the unnamed file fd (OpenUnnamed) the name name
// (relative to dirfd; unix.AT_FDCWD for a path); an error matching
// fs.ErrExist if name is taken. It links the descriptor itself
// (linkat's AT_EMPTY_PATH: Linux 6.10 allows it for a file its caller
// opened, older kernels only with CAP_DAC_READ_SEARCH) and, where that is
// refused, goes through /proc/self/fd, which needs no privilege but costs
// a lookup of four names in /proc (9% of a local push's samples at 100k
// small files).
func LinkUnnamed(fd, dirfd int, name string) error {
	var err error
	if emptyPathRefused.Load() {
		err = linkProc(fd, dirfd, name)
	} else if err = retryEINTR(func() error { return unix.Linkat(fd, "", dirfd, name, unix.AT_EMPTY_PATH) }); err == unix.ENOENT || err == unix.EPERM || err == unix.EINVAL {
		// Refused (ENOENT without the privilege, EINVAL on a kernel
		// without AT_EMPTY_PATH for linkat) or name's directory is
		// missing: through /proc, which tells which.
		if err = linkProc(fd, dirfd, name); err == nil {
			emptyPathRefused.Store(true)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: "unnamed file", New: name, Err: err}
	}
	return nil
}

func linkProc(fd, dirfd int, name string) error {
	return retryEINTR(func() error {
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	})
}

// emptyPathRefused: linkat refused AT_EMPTY_PATH once; LinkUnnamed goes
// through /proc from then on.
var emptyPathRefused atomic.Bool

// UnnamedMax is how many unnamed files a writer may keep open at once:
// at most most, and at most a share-th of the descriptors the process may
// open (each is open until it is linked). None (0) without /proc, through
// which LinkUnnamed names them.
func UnnamedMax(most, share int) int {
	if fi, err := os.Stat("/proc/self/fd"); err != nil || !fi.IsDir() {
		return 0
	}
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(uint64(most), l.Cur/uint64(share)))
}
