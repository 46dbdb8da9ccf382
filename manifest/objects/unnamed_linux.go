package objects

import (
	"errors"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// createUnnamed writes b to a new file in dir that has no name yet
// (O_TMPFILE, FilePerm), not synced, and returns its descriptor: linkUnnamed
// gives it its name once it is durable. A file that is never linked
// vanishes with its descriptor, so a capture that dies leaves nothing
// behind, and no temporary name is made and removed per object (a fifth
// of a small object's time in the kernel). errors.ErrUnsupported where
// the file system has no O_TMPFILE (NFS, older kernels).
func createUnnamed(dir string, b []byte) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(dir, unix.O_WRONLY|unix.O_TMPFILE|unix.O_CLOEXEC, uint32(FilePerm))
		return err
	})
	switch {
	case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL):
		return -1, errors.ErrUnsupported
	case err != nil:
		return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	err = writeFD(fd, b)
	if err == nil {
		err = retry(func() error { return unix.Fchmod(fd, uint32(FilePerm)) })
	}
	if err != nil {
		_ = unix.Close(fd)
		return -1, &fs.PathError{Op: "write", Path: dir, Err: err}
	}
	return fd, nil
}

// linkUnnamed gives the unnamed file fd the name final; fs.ErrExist if
// final is there. It goes through /proc/self/fd, which needs no
// privilege (linkat's AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH).
func linkUnnamed(fd int, final string) error {
	err := retry(func() error {
		return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, final, unix.AT_SYMLINK_FOLLOW)
	})
	if err != nil {
		return &os.LinkError{Op: "link", Old: "unnamed object", New: final, Err: err}
	}
	return nil
}

// unnamedMax is the most unnamed files a Batch keeps open per batch: a
// few batches may be open at once (one being named while workers fill
// the next), within a sixteenth of the descriptors the process may open.
// None (0) without /proc, through which linkUnnamed names them.
func unnamedMax() int {
	if fi, err := os.Stat("/proc/self/fd"); err != nil || !fi.IsDir() {
		return 0
	}
	var l unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(uint64(BatchObjects), l.Cur/16))
}
