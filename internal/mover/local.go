package mover

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
)

// Local is a channel directory on a local or NFS-mounted file system.
type Local struct {
	Root string
}

var (
	_ FS         = (*Local)(nil)
	_ DirSyncer  = (*Local)(nil)
	_ NameLister = (*Local)(nil)
	_ FSSyncer   = (*Local)(nil)
	_ Digester   = (*Local)(nil)
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

func (l *Local) Open(_ context.Context, name string) (io.ReadCloser, error) {
	return os.Open(l.path(name))
}

func (l *Local) Create(_ context.Context, name string) (File, error) {
	return os.OpenFile(l.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
}

func (l *Local) MkdirAll(_ context.Context, dir string) error {
	return os.MkdirAll(l.path(dir), 0o750)
}

func (l *Local) Rename(_ context.Context, from, to string) error {
	return os.Rename(l.path(from), l.path(to))
}

func (l *Local) Remove(_ context.Context, name string) error {
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

func (l *Local) Close() error { return nil }
