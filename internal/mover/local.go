package mover

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// Local is a channel directory on a local or NFS-mounted file system.
type Local struct {
	Root string

	mu      sync.RWMutex
	pinned  map[string]*pinnedDir // directories held open (pinDirs), by name
	unnamed unnamedFiles          // files created without a name, by temporary name
}

// pinnedDir is a directory held open while a batch of files is read from
// or written into it; refs counts the pins.
type pinnedDir struct {
	fd, refs int
}

var (
	_ FS         = (*Local)(nil)
	_ DirSyncer  = (*Local)(nil)
	_ NameLister = (*Local)(nil)
	_ FSSyncer   = (*Local)(nil)
	_ Digester   = (*Local)(nil)
	_ dirPinner  = (*Local)(nil)
)

// NewLocal returns the FS rooted at dir.
func NewLocal(dir string) *Local { return &Local{Root: dir} }

func (l *Local) String() string { return l.Root }

func (l *Local) path(name string) string { return filepath.Join(l.Root, filepath.FromSlash(name)) }

// ReadDir lists dir with one getdents and one lstat per entry (local stats
// are cheap; the SFTP backend gets sizes with the listing).
func (l *Local) ReadDir(_ context.Context, dir string) ([]Entry, error) {
	f, err := os.Open(l.path(dir))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	infos, err := f.Readdir(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", l.path(dir), err)
	}
	out := make([]Entry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, Entry{Name: fi.Name(), Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// ReadDirNames lists dir without a stat per entry (getdents only): Size is
// -1. The mover uses it to check a local source for presence, where 100k
// lstat calls would cost more than the rest of a run with nothing to do.
func (l *Local) ReadDirNames(_ context.Context, dir string) ([]Entry, error) {
	ents, err := os.ReadDir(l.path(dir))
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(ents))
	for _, e := range ents {
		out = append(out, Entry{Name: e.Name(), Size: -1, Dir: e.IsDir()})
	}
	return out, nil
}

// DirDigests lists each directory (ReadDir) and returns the Digest of each.
func (l *Local) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	out := make([][32]byte, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, d := range dirs {
		g.Go(func() error {
			ents, err := l.ReadDir(gctx, d)
			if err != nil {
				return err
			}
			out[i] = remote.Digest(ents)
			return nil
		})
	}
	return out, g.Wait()
}

// Open opens a file for reading with plain open(2) and read(2): os.Open
// also stats every file it opens and sets up a finalizer, a tenth of a
// push's CPU when the source is 100k small files. In a pinned directory
// it is openat(2) relative to it. The caller must Close it.
func (l *Local) Open(_ context.Context, name string) (io.ReadCloser, error) {
	dfd, base := l.at(name)
	f, err := openRaw(dfd, base, l.path(name), unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// pinDirs holds dirs open until unpin is called: a file in one of them is
// then opened, created and renamed relative to the open directory (one
// lookup of its name) instead of through the whole path (a lookup per
// element: /, the channel, objects, its fan-out directory, twice for a
// rename). A directory that cannot be opened is not pinned; its files go
// by path, which reports the error. The mover pins the directories of a
// batch only while it reads, writes and renames the batch's files, so a
// directory replaced in between (by anything but this run, which only
// creates directories) is seen at the next batch.
func (l *Local) pinDirs(dirs []string) (unpin func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pinned == nil {
		l.pinned = map[string]*pinnedDir{}
	}
	var held []string
	for _, d := range dirs {
		if p := l.pinned[d]; p != nil {
			p.refs++
			held = append(held, d)
			continue
		}
		fd, err := openDir(l.path(d))
		if err != nil {
			continue
		}
		l.pinned[d] = &pinnedDir{fd: fd, refs: 1}
		held = append(held, d)
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, d := range held {
			p := l.pinned[d]
			if p.refs--; p.refs == 0 {
				_ = unix.Close(p.fd)
				delete(l.pinned, d)
			}
		}
	}
}

// at returns the pinned directory holding name and name's last element,
// or unix.AT_FDCWD and name's whole path when its directory is not pinned.
// A file whose directory is pinned is not unpinned while the caller uses
// the descriptor: the mover pins around the calls.
func (l *Local) at(name string) (dirfd int, rel string) {
	i := strings.LastIndexByte(name, '/')
	dir, base := ".", name
	if i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	if base != "" && base != "." && base != ".." {
		l.mu.RLock()
		p := l.pinned[dir]
		l.mu.RUnlock()
		if p != nil {
			return p.fd, base
		}
	}
	return unix.AT_FDCWD, l.path(name)
}

// rawFile is a file open for reading, without the os.File machinery.
type rawFile struct {
	fd   int
	name string
}

func (f *rawFile) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(f.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		case n == 0 && len(b) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// shortReadIsEOF: a read(2) of a regular file returns fewer bytes than
// asked only at its end (see readUpTo).
func (f *rawFile) shortReadIsEOF() {}

func (f *rawFile) Close() error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

// Create opens with plain open(2) (createRaw), relative to its directory
// where that is pinned.
// A temporary name of the mover's is created without a name where the
// file system allows (createUnnamed): Rename links it.
func (l *Local) Create(_ context.Context, name string) (File, error) {
	if f, ok, err := l.createUnnamed(name); ok || err != nil {
		return f, err
	}
	dfd, rel := l.at(name)
	return createRaw(dfd, rel, l.path(name), name)
}

func (l *Local) MkdirAll(_ context.Context, dir string) error {
	return os.MkdirAll(l.path(dir), manifest.DirPerm)
}

// Rename is rename(2), renameat(2) relative to pinned directories:
// os.Rename also lstats the new name first. A file created without a
// name (createUnnamed) is linked as to instead.
func (l *Local) Rename(ctx context.Context, from, to string) error {
	_, _, err := l.RenameStat(ctx, from, to)
	return err
}

func (l *Local) rename(from, to string) error {
	ffd, frel := l.at(from)
	tfd, trel := l.at(to)
	for {
		err := unix.Renameat(ffd, frel, tfd, trel)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "rename", Old: l.path(from), New: l.path(to), Err: err}
		}
		return nil
	}
}

// Remove removes name; a file without a name (createUnnamed) is closed,
// and vanishes.
func (l *Local) Remove(_ context.Context, name string) error {
	if fd, ok := l.takeUnnamed(name); ok {
		return unix.Close(fd)
	}
	return os.Remove(l.path(name))
}

// SyncDir fsyncs a directory so that a rename in it survives a crash.
func (l *Local) SyncDir(_ context.Context, dir string) error {
	d, err := os.Open(l.path(dir))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Close drops the files still without a name (a run that failed before
// renaming them); pinned directories are closed by their unpin.
func (l *Local) Close() error {
	l.closeUnnamed()
	return nil
}
