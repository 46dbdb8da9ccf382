//go:build unix

package objects

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/squirro-bcp/bcp/manifest"
)

// createSmall writes b to a new temporary file (".tmp-put-*", FilePerm)
// in dir, fsynced when sync is set, and returns its path. It uses the
// descriptor directly: os.OpenFile's poller registration and its
// non-blocking mode (five system calls that fail or change nothing for a
// regular file) are a fifth of a small object's system calls.
func createSmall(dir string, b []byte, sync bool) (string, error) {
	var name string
	fd := -1
	for range 100 {
		name = tempName(dir)
		var err error
		fd, err = syscall.Open(name, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, uint32(FilePerm))
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EEXIST) && !errors.Is(err, syscall.EINTR) {
			return "", &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	if fd < 0 {
		return "", &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	}
	err := writeFD(fd, b)
	if err == nil {
		err = retry(func() error { return syscall.Fchmod(fd, uint32(FilePerm)) })
	}
	if err == nil && sync {
		err = retry(func() error { return syscall.Fsync(fd) })
	}
	if cerr := syscall.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		_ = syscall.Unlink(name)
		return "", &fs.PathError{Op: "write", Path: name, Err: err}
	}
	return name, nil
}

// tempName is a new temporary name for an object in dir (".tmp-put-*").
func tempName(dir string) string {
	return filepath.Join(dir, manifest.TempPrefix+"put-"+strconv.FormatUint(rand.Uint64(), 36))
}

func writeFD(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func retry(f func() error) error {
	for {
		if err := f(); !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
