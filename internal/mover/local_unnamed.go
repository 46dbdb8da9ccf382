package mover

import (
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/manifest"
)

// unnamedMost is the most files a Local destination keeps open without a
// name (createUnnamed) at once: two batches of batchMost, one being
// finished while the next is written; the files beyond it get temporary
// names. A quarter of the process's descriptors at most
// (manifest.UnnamedMax).
const unnamedMost = 2 * batchMost

// unnamedFiles are the files a Local destination wrote without a name,
// by the temporary name the mover knows them by: Rename links one to its
// final name, Remove drops it. Without a name there is none to create
// and remove per file, and creating one does not hold its directory's
// lock: four writers in one objects/<aa> spent a fifth of a push's CPU
// spinning on that lock (rwsem_spin_on_owner) while each create
// allocated its inode.
type unnamedFiles struct {
	once sync.Once
	max  int // 0: none (no O_TMPFILE or no /proc)

	mu  sync.Mutex
	fds map[string]int // by temporary name
	off bool           // the file system has no O_TMPFILE
}

// createUnnamed creates the temporary name tmp as a file without a name
// in its directory (manifest.OpenUnnamed), to be linked by rename; ok
// false where it cannot (another file system, too many open, or tmp not
// a temporary name of the mover's), and the caller creates tmp itself.
func (l *Local) createUnnamed(tmp string) (f File, ok bool, err error) {
	u := &l.unnamed
	if !strings.HasPrefix(path.Base(tmp), manifest.MoverTempPrefix) {
		return nil, false, nil
	}
	u.once.Do(func() { u.max = manifest.UnnamedMax(unnamedMost, 4) })
	u.mu.Lock()
	if u.off || len(u.fds) >= u.max {
		u.mu.Unlock()
		return nil, false, nil
	}
	if _, taken := u.fds[tmp]; taken {
		u.mu.Unlock()
		return nil, false, nil
	}
	if u.fds == nil {
		u.fds = map[string]int{}
	}
	u.fds[tmp] = -1 // taken while it is opened
	u.mu.Unlock()

	dfd, dir := l.dirAt(tmp)
	fd, err := manifest.OpenUnnamed(dfd, dir, manifest.PermOf(tmp))
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		delete(u.fds, tmp)
		if errors.Is(err, errors.ErrUnsupported) {
			u.off = true
			return nil, false, nil
		}
		return nil, false, err
	}
	u.fds[tmp] = fd
	return &unnamedWriter{rawWriter{&rawFile{fd: fd, name: l.path(tmp)}}}, true, nil
}

// dirAt returns the directory holding name as openat(2) wants it: the
// pinned directory itself, or its path.
func (l *Local) dirAt(name string) (dirfd int, dir string) {
	dfd, rel := l.at(name)
	if dfd != unix.AT_FDCWD {
		return dfd, "."
	}
	return unix.AT_FDCWD, path.Dir(rel)
}

// unnamedWriter writes a file without a name. Its descriptor stays open
// until the file is linked (Rename) or dropped (Remove): Close closes
// nothing.
type unnamedWriter struct{ rawWriter }

func (f *unnamedWriter) Close() error { return nil }

// takeUnnamed takes tmp's descriptor out of the files without a name; ok
// false if tmp is not one of them.
func (l *Local) takeUnnamed(tmp string) (fd int, ok bool) {
	u := &l.unnamed
	u.mu.Lock()
	defer u.mu.Unlock()
	fd, ok = u.fds[tmp]
	if !ok || fd < 0 {
		return -1, false
	}
	delete(u.fds, tmp)
	return fd, true
}

// RenameStat renames from to to (Rename) and also says what the renamed
// file shows - its size and modification time, as a listing has them -
// where that costs no lookup: a file written without a name, asked with
// fstat(2) on its descriptor once linked. ok false: not known (a file
// with a name), and the caller lists its directory as before.
func (l *Local) RenameStat(ctx context.Context, from, to string) (e Entry, ok bool, err error) {
	fd, unnamed := l.takeUnnamed(from)
	if !unnamed {
		return Entry{}, false, l.rename(from, to)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := l.linkUnnamed(fd, from, to); err != nil {
		return Entry{}, false, err
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return Entry{}, false, nil // renamed; its stamp is left to a listing
	}
	return Entry{Name: path.Base(to), Size: st.Size, ModTime: time.Unix(st.Mtim.Unix())}, true, nil
}

// linkUnnamed names the file without a name fd, known as from, to,
// replacing what is there: linked to a spare temporary name first and
// renamed over to when to is taken, so that to is never missing. fd is
// left open.
func (l *Local) linkUnnamed(fd int, from, to string) error {
	tfd, trel := l.at(to)
	err := manifest.LinkUnnamed(fd, tfd, trel)
	if errors.Is(err, fs.ErrExist) {
		// A name of its own: no temporary name of another file can be
		// it. One left by a run that died is removed by the next prune.
		spare := path.Join(path.Dir(to), manifest.MoverTempPrefix+"link-"+strconv.FormatUint(rand.Uint64(), 36))
		sfd, srel := l.at(spare)
		if err = manifest.LinkUnnamed(fd, sfd, srel); err == nil {
			if err = l.rename(spare, to); err != nil {
				_ = unix.Unlinkat(sfd, srel, 0)
			}
			return err
		}
	}
	if err != nil {
		return &os.LinkError{Op: "link", Old: l.path(from) + " (without a name)", New: l.path(to), Err: errors.Unwrap(err)}
	}
	return nil
}

// closeUnnamed drops every file still without a name (a run that failed
// before renaming them): they vanish with their descriptors.
func (l *Local) closeUnnamed() {
	u := &l.unnamed
	u.mu.Lock()
	defer u.mu.Unlock()
	for tmp, fd := range u.fds {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		delete(u.fds, tmp)
	}
}
