package remote

import (
	"errors"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/manifest"
)

// Creating, renaming and removing go through directories the helper keeps
// open: os.Root opens every component of a path on every call (a rename
// opened four directories and stat'ed the target), which was a third of
// the helper's time when copying 100k small files. A directory is opened
// once through the root, so it cannot be outside it, and the name below it
// is a single component: nothing can lead outside the root.

// maxOpenDirs bounds the directories kept open; past it, all are closed.
const maxOpenDirs = 4096

// splitName splits a relative name into its directory and last component.
func splitName(name string) (dir, base string, err error) {
	dir, base = path.Split(name)
	if path.IsAbs(name) || base == "" || base == "." || base == ".." {
		return "", "", &os.PathError{Op: "open", Path: name, Err: unix.EINVAL}
	}
	return path.Clean("./" + dir), base, nil
}

// dir returns dir below the root, open, from the cache or opened now.
func (s *server) dir(dir string) (f *os.File, cached bool, err error) {
	s.mu.Lock()
	f = s.dirs[dir]
	s.mu.Unlock()
	if f != nil {
		return f, true, nil
	}
	err = s.withRoot(func(r *os.Root) error {
		f, err = r.Open(dir)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.dirs[dir]; g != nil { // opened meanwhile
		_ = f.Close()
		return g, true, nil
	}
	if len(s.dirs) >= maxOpenDirs {
		for k, d := range s.dirs {
			_ = d.Close() // safe while in use: Control holds a reference
			delete(s.dirs, k)
		}
	}
	s.dirs[dir] = f
	return f, false, nil
}

// forgetDir closes dir if it is open (it was removed, or is stale).
func (s *server) forgetDir(dir string) {
	s.mu.Lock()
	if f := s.dirs[dir]; f != nil {
		_ = f.Close()
		delete(s.dirs, dir)
	}
	s.mu.Unlock()
}

// at calls fn with the open directory of name and name's last component.
// A directory that was replaced since it was opened (fn fails with ENOENT
// on a cached one) is opened again once.
func (s *server) at(name string, fn func(dirfd int, base string) error) error {
	dir, base, err := splitName(name)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		f, cached, err := s.dir(dir)
		if err != nil {
			return err
		}
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd), base) }); err != nil {
			ferr = err // closed meanwhile (the cache was full)
		}
		if cached && try == 0 && (errors.Is(ferr, unix.ENOENT) || errors.Is(ferr, os.ErrClosed)) {
			s.forgetDir(dir)
			continue
		}
		return ferr
	}
}

// create creates or truncates name for writing, without following a
// symlink in its place.
func (s *server) create(name string) (*os.File, error) {
	var f *os.File
	err := s.at(name, func(dirfd int, base string) error {
		fd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(manifest.PermOf(name)))
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), name)
		return nil
	})
	if err != nil {
		return nil, &os.PathError{Op: "create", Path: name, Err: err}
	}
	return f, nil
}

// lstat is what a listing of name's directory shows of name.
func (s *server) lstat(name string) (Entry, error) {
	var e Entry
	err := s.at(name, func(dirfd int, base string) error {
		e.Name = base
		return statAt(dirfd, &e)
	})
	if err != nil {
		return Entry{}, &os.PathError{Op: "lstat", Path: name, Err: err}
	}
	return e, nil
}

// rename renames from to to, replacing to atomically.
func (s *server) rename(from, to string) error {
	err := s.at(from, func(fromfd int, fromBase string) error {
		return s.at(to, func(tofd int, toBase string) error {
			return unix.Renameat(fromfd, fromBase, tofd, toBase)
		})
	})
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// remove removes a file or an empty directory.
func (s *server) remove(name string) error {
	err := s.at(name, func(dirfd int, base string) error {
		err := unix.Unlinkat(dirfd, base, 0)
		if errors.Is(err, unix.EISDIR) {
			if err = unix.Unlinkat(dirfd, base, unix.AT_REMOVEDIR); err == nil {
				s.forgetDir(path.Clean(name))
			}
		}
		return err
	})
	if err != nil {
		return &os.PathError{Op: "remove", Path: name, Err: err}
	}
	return nil
}
