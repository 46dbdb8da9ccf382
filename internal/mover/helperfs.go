package mover

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"

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
	raw     atomic.Bool // compression of the stream turned off (SetCompress)
}

// SetCompress turns compression on, the default, or off: of the stream to
// the helpers (zstd where it gains, package remote), for the helpers
// started and to come, and over SFTP alone of the tar streams of batches
// (gzip where the server has it). Call it before the copy starts.
func (s *SFTP) SetCompress(on bool) {
	s.viaHelper.raw.Store(!on)
}

var _ access = (*helperFS)(nil)

// Compression returns the bytes of file data sent through the helpers and
// the bytes they took on the stream (less where compression gained).
func (s *SFTP) Compression() (raw, sent int64) {
	for _, c := range *s.helpers.Load() {
		r, n := c.Compression()
		raw, sent = raw+r, sent+n
	}
	return raw, sent
}

// helper returns a helper to send a request to (round robin). Helpers are
// only ever added, so once the first has started there is always one.
func (h *helperFS) helper() *remote.Client {
	hs := *h.s.helpers.Load()
	c := hs[h.s.nextH.Add(1)%uint64(len(hs))]
	if h.raw.Load() {
		c.SetCompress(false)
	}
	return c
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

// RenameStampLater queues a rename; l.Wait reports it, and stamp gets what
// the renamed file shows (remote.ErrNotOffered from an older helper).
func (h *helperFS) RenameStampLater(ctx context.Context, from, to string, l *remote.Later, stamp func(Entry)) error {
	return h.helper().RenameStampLater(ctx, rel(from), rel(to), l, stamp)
}

var _ StampRenamer = (*SFTP)(nil)

// RenameStampLater renames through the helpers once they have started
// (helperFS); SFTP alone returns remote.ErrNotOffered (the copy renames
// with RenameLater and lists after it).
func (s *SFTP) RenameStampLater(ctx context.Context, from, to string, l *remote.Later, stamp func(Entry)) error {
	if h, ok := s.way(ctx).(*helperFS); ok {
		return h.RenameStampLater(ctx, from, to, l, stamp)
	}
	return remote.ErrNotOffered
}

// makesParents says whether MkdirAll goes through the helpers, which
// make a directory and its missing parents in one request (mkdirs).
func (s *SFTP) makesParents(ctx context.Context) bool {
	_, ok := s.way(ctx).(*helperFS)
	return ok
}

// helperSyncs says whether the copy goes through the helpers, which make
// what was written durable with syncfs(2): transfer serve runs on Linux
// only (it needs fstatat and syncfs), so it always has it.
func (s *SFTP) helperSyncs(ctx context.Context) bool {
	_, ok := s.way(ctx).(*helperFS)
	return ok
}

var _ StepPublisher = (*SFTP)(nil)

// PublishSteps syncs the file systems of sync and publishes each step in
// turn, in one request through the helper (helperFS, which then lists
// list too) or one tar session over SFTP alone (sftpFS);
// remote.ErrNotOffered where the way cannot (the phases then go one by
// one).
func (s *SFTP) PublishSteps(ctx context.Context, sync []string, steps [][]remote.Published, list []string) ([]remote.DirList, error) {
	if sp, ok := s.way(ctx).(StepPublisher); ok {
		return sp.PublishSteps(ctx, sync, steps, list)
	}
	return nil, remote.ErrNotOffered
}

// PublishSteps has a helper sync the file systems of sync, then publish
// each step's files as Publish does, one step after the other, then list
// list where it can (remote.ErrNotOffered from an older helper).
func (h *helperFS) PublishSteps(ctx context.Context, sync []string, steps [][]remote.Published, list []string) ([]remote.DirList, error) {
	return h.helper().PublishSteps(ctx, rels(sync), steps, rels(list))
}

// Publish has a helper write, fsync and rename files and fsync their
// directories in one request (remote.ErrNotOffered from an older helper).
func (h *helperFS) Publish(ctx context.Context, files []remote.Published) error {
	if err := h.helper().Publish(ctx, files); err != nil {
		return fmt.Errorf("write %d files at %s: %w", len(files), h.s, err)
	}
	return nil
}

// ReadDirs has the helpers list dirs, a share of them per request with
// digestRequests requests at once (remote.ErrNotOffered from an older
// helper).
func (h *helperFS) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	return dirsInShares(ctx, dirs, func(ctx context.Context, part []string) ([]remote.DirList, error) {
		res, err := h.helper().ListMany(ctx, rels(part))
		if err != nil {
			return nil, fmt.Errorf("list at %s: %w", h.s, err)
		}
		return res, nil
	})
}

var _ StatManyer = (*SFTP)(nil)

// StatMany looks the names up through the helpers once they have started
// (helperFS), else over SFTP alone where that way can (a StatManyer),
// else it returns remote.ErrNotOffered (each directory is then listed).
func (s *SFTP) StatMany(ctx context.Context, dirs []remote.DirNames) ([]remote.DirList, error) {
	if sm, ok := s.way(ctx).(StatManyer); ok {
		return sm.StatMany(ctx, dirs)
	}
	return nil, remote.ErrNotOffered
}

// StatMany has the helpers look up the names of dirs: in one request up
// to statShare names, else a share of the directories per request with
// digestRequests requests at once (remote.ErrNotOffered from an older
// helper).
func (h *helperFS) StatMany(ctx context.Context, dirs []remote.DirNames) ([]remote.DirList, error) {
	one := func(ctx context.Context, part []remote.DirNames) ([]remote.DirList, error) {
		rp := make([]remote.DirNames, len(part))
		for i, d := range part {
			rp[i] = remote.DirNames{Dir: rel(d.Dir), Names: d.Names}
		}
		res, err := h.helper().StatMany(ctx, rp)
		if err != nil {
			return nil, fmt.Errorf("look up at %s: %w", h.s, err)
		}
		return res, nil
	}
	n := 0
	for _, d := range dirs {
		n += len(d.Names)
	}
	if n <= statShare {
		return one(ctx, dirs)
	}
	return dirsInShares(ctx, dirs, one)
}

// statShare is the most names StatMany looks up in one request: the
// helper looks them up one after the other, and fstatat of a name whose
// directory block is not cached waits for the disk, so a push of a 1%
// change of a million files (10,000 names) has them looked up in
// digestRequests requests at once.
const statShare = 1024

// dirsInShares calls fn with digestRequests shares of dirs at once
// (inShares) and returns fn's results in the order of dirs.
func dirsInShares[D any](ctx context.Context, dirs []D, fn func(ctx context.Context, part []D) ([]remote.DirList, error)) ([]remote.DirList, error) {
	out := make([]remote.DirList, len(dirs))
	err := inShares(ctx, len(dirs), func(ctx context.Context, lo, hi int) error {
		res, err := fn(ctx, dirs[lo:hi])
		copy(out[lo:], res)
		return err
	})
	return out, err
}

// inShares calls fn for digestRequests shares [lo, hi) of n items at once
// (each share at most one request's 65535): a few requests keep the
// server's cores busy without many threads contending for them.
func inShares(ctx context.Context, n int, fn func(ctx context.Context, lo, hi int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	per := min(max((n+digestRequests-1)/digestRequests, 1), 1<<16-1)
	for lo := 0; lo < n; lo += per {
		g.Go(func() error { return fn(gctx, lo, min(lo+per, n)) })
	}
	return g.Wait()
}

// DirDigests has the helpers fingerprint each directory next to the data.
func (h *helperFS) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	out := make([][32]byte, len(dirs))
	err := inShares(ctx, len(dirs), func(ctx context.Context, lo, hi int) error {
		part := dirs[lo:hi]
		res, err := h.helper().Digests(ctx, rels(part))
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
	return out, err
}

// digestRequests is how many shares of the directories DirDigests and
// ReadDirs send to the helpers at once.
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
