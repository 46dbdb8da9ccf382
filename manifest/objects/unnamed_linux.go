package objects

import (
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/manifest"
)

// createUnnamed writes b to a new file in dir that has no name yet
// (manifest.OpenUnnamed, FilePerm), not synced, and returns its
// descriptor: linkUnnamed gives it its name once it is durable. A capture
// that dies leaves nothing behind, and no temporary name is made and
// removed per object (a fifth of a small object's time in the kernel).
// errors.ErrUnsupported where the file system has no O_TMPFILE.
func createUnnamed(dir string, b []byte) (int, error) {
	fd, err := manifest.OpenUnnamed(unix.AT_FDCWD, dir, FilePerm)
	if err != nil {
		return -1, err
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
// final is there.
func linkUnnamed(fd int, final string) error {
	return manifest.LinkUnnamed(fd, unix.AT_FDCWD, final)
}

// unnamedMax is the most unnamed files a Batch keeps open per batch: a
// few batches may be open at once (one being named while workers fill
// the next), within a sixteenth of the descriptors the process may open.
func unnamedMax() int { return manifest.UnnamedMax(BatchObjects, 16) }
