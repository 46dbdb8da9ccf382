package mover

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/manifest"
)

// openRaw opens rel relative to dirfd (unix.AT_FDCWD: rel is a path) with
// plain openat(2) (flags and O_CLOEXEC); p is its path for messages.
func openRaw(dirfd int, rel, p string, flags int, perm uint32) (*rawFile, error) {
	for {
		fd, err := unix.Openat(dirfd, rel, flags|unix.O_CLOEXEC, perm)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return &rawFile{fd: fd, name: p}, nil
	}
}

// openDir opens the directory p for use as the dirfd of openat(2) and
// renameat(2).
func openDir(p string) (int, error) {
	for {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return fd, nil
	}
}

// createRaw creates or truncates p for writing with plain open(2): no
// os.File, which registers every file with the poller (four fcntl and a
// failing epoll_ctl per file, a tenth of the system calls of a push of
// 100k small files) and sets up a finalizer.
// The file is rel relative to dirfd (see openRaw), p its path, name its
// name in the channel (which gives its mode).
func createRaw(dirfd int, rel, p, name string) (File, error) {
	f, err := openRaw(dirfd, rel, p, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, uint32(manifest.PermOf(name).Perm()))
	if err != nil {
		return nil, err
	}
	return &rawWriter{f}, nil
}

// rawWriter is a file open for writing, without the os.File machinery.
type rawWriter struct{ *rawFile }

func (f *rawWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n, err := unix.Write(f.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return written, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

func (f *rawWriter) Sync() error {
	if err := unix.Fsync(f.fd); err != nil {
		return &os.PathError{Op: "fsync", Path: f.name, Err: err}
	}
	return nil
}
