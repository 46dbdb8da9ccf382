package mover

import (
	"context"
	"fmt"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
)

// helperFS is the channel directory on the server reached through the
// helpers (transfer serve, package remote) on the connections of s: writes,
// renames, listings, syncs and fingerprints are the helper's requests,
// spread over the connections' helpers round robin. Reading is over SFTP
// (viaSFTP), which streams a file with many reads in flight.
type helperFS struct {
	s       *SFTP
	viaSFTP *sftpFS
}

var _ access = (*helperFS)(nil)

// helper returns a helper to send a request to (round robin). Helpers are
// only ever added, so once the first has started there is always one.
func (h *helperFS) helper() *remote.Client {
	hs := *h.s.helpers.Load()
	return hs[h.s.nextH.Add(1)%uint64(len(hs))]
}

// ReadDir has the helper list the directory (names, sizes, kinds, times).
func (h *helperFS) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	ents, err := h.helper().List(ctx, rel(dir))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", h.s.path(dir), err)
	}
	return ents, nil
}

// Open reads over SFTP.
func (h *helperFS) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return h.viaSFTP.Open(ctx, name)
}

// Create streams the file through a helper; an error creating or writing
// it may show only from Sync or Close.
func (h *helperFS) Create(_ context.Context, name string) (File, error) {
	return h.helper().Create(rel(name)), nil
}

func (h *helperFS) MkdirAll(ctx context.Context, dir string) error {
	if err := h.helper().MkdirAll(ctx, rel(dir)); err != nil {
		return fmt.Errorf("mkdir %s: %w", h.s.path(dir), err)
	}
	return nil
}

// Rename replaces to atomically (rename(2) on the server).
func (h *helperFS) Rename(ctx context.Context, from, to string) error {
	if err := h.helper().Rename(ctx, rel(from), rel(to)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", h.s.path(from), h.s.path(to), err)
	}
	return nil
}

func (h *helperFS) Remove(ctx context.Context, name string) error {
	if err := h.helper().Remove(ctx, rel(name)); err != nil {
		return fmt.Errorf("remove %s: %w", h.s.path(name), err)
	}
	return nil
}

// SyncFS has a helper call syncfs(2) on each directory's file system.
func (h *helperFS) SyncFS(ctx context.Context, dirs []string) error {
	if err := h.helper().SyncFS(ctx, rels(dirs)); err != nil {
		return fmt.Errorf("syncfs at %s: %w", h.s, err)
	}
	return nil
}

// WriteFile writes a whole file in one helper request (batched with other
// callers').
func (h *helperFS) WriteFile(ctx context.Context, name string, data []byte, fsync bool) error {
	if err := h.helper().Put(ctx, rel(name), data, fsync); err != nil {
		return fmt.Errorf("write %s: %w", h.s.path(name), err)
	}
	return nil
}

// WriteFileLater queues a whole-file write (no fsync); l.Wait reports it.
func (h *helperFS) WriteFileLater(ctx context.Context, name string, data []byte, l *remote.Later) error {
	return h.helper().PutLater(ctx, rel(name), data, l)
}

// RenameLater queues a rename; l.Wait reports it.
func (h *helperFS) RenameLater(ctx context.Context, from, to string, l *remote.Later) error {
	return h.helper().RenameLater(ctx, rel(from), rel(to), l)
}

// DirDigests has the helpers fingerprint each directory next to the data.
func (h *helperFS) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	out := make([][32]byte, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	// A few requests, each a share of the directories, keep the server's
	// cores busy without many threads contending for them.
	per := min(max((len(dirs)+digestRequests-1)/digestRequests, 1), 1<<16-1)
	for lo := 0; lo < len(dirs); lo += per {
		part := dirs[lo:min(lo+per, len(dirs))]
		g.Go(func() error {
			res, err := h.helper().Digests(gctx, rels(part))
			if err != nil {
				return fmt.Errorf("%s: %w", h.s, err)
			}
			for i, r := range res {
				if r.Err != nil {
					return fmt.Errorf("fingerprint %s: %w", h.s.path(part[i]), r.Err)
				}
				out[lo+i] = r.Sum
			}
			return nil
		})
	}
	return out, g.Wait()
}

// digestRequests is how many shares of the directories DirDigests sends to
// the helper at once.
const digestRequests = 4

// rel is name as the helper takes it: relative to the root, "." for the
// root itself.
func rel(name string) string {
	if name == "" {
		return "."
	}
	return name
}

func rels(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = rel(n)
	}
	return out
}
