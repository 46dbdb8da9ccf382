package manifest

import (
	"errors"
	"io/fs"
	"os"
	"strconv"

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
// fs.ErrExist if name is taken. It goes through /proc/self/fd, which needs
// no privilege (linkat's AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
func LinkUnnamed(fd, dirfd int, name string) error {
	for {
		err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "link", Old: "unnamed file", New: name, Err: err}
		}
		return nil
	}
}

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
