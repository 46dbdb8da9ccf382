//go:build linux

package filetree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/squirro-bcp/bcp/manifest"
)

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
	infos := make([]manifest.StatInfo, len(names))
	out := make([]fs.FileInfo, 0, len(names))
	var serr error
	cerr := rc.Control(func(fd uintptr) {
		for i, n := range names {
			fi := &infos[i]
			if err := fi.LstatAt(int(fd), n); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // vanished between readdir and lstat
				}
				serr = fmt.Errorf("%s: %w", dir, err)
				return
			}
			out = append(out, fi)
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
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid, st.Ino, true
	}
	return 0, 0, 0, false
}

// openRead opens a file to read by its descriptor alone (rawFile): an
// os.File's poller registration and non-blocking mode cost five system
// calls that fail or change nothing for a regular file.
func openRead(name string) (io.ReadCloser, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return rawFile(fd), nil
	}
}
