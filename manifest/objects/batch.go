package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/squirro-bcp/bcp/manifest"
)

// Batch stores many objects with one syncfs(2) per batch instead of two
// fsyncs per object (write-order rule 1 for a batch, as the mover copies
// small files): each Put writes its object to a temporary name, not
// synced; once BatchObjects objects (or BatchBytes bytes) wait, one
// syncfs makes them all durable, and only then are they renamed to their
// names. Flush does that for the rest and syncs the renames: call it
// before publishing anything that references the objects (rule 2). Until
// then an object may exist only under its temporary name, so a Batch is
// for a producer that writes and does not read back (backup's capture).
// Where syncfs is not available each temporary file is fsynced instead,
// and the directories after the renames. Put may be called from several
// goroutines.
type Batch struct {
	s        *Store
	mu       sync.Mutex
	pending  []pendingObject
	bytes    int64
	dirs     map[string]bool // fan-out directories renamed into since the last Flush
	noSyncFS bool
}

type pendingObject struct{ tmp, final string }

// Batch limits: what the mover uses for small files, and a bound on the
// bytes the kernel holds dirty for one syncfs.
const (
	BatchObjects       = 2048
	BatchBytes   int64 = 256 << 20
)

// NewBatch returns a batch storing into s.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, dirs: map[string]bool{}} }

// Put stores the content of r; it is durable under its name after Flush.
func (b *Batch) Put(ctx context.Context, r io.Reader) (manifest.Ref, error) {
	tmp, ref, _, err := b.s.writeTemp(ctx, r, false, true)
	if err != nil || tmp == "" {
		return ref, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pending = append(b.pending, pendingObject{tmp: tmp, final: b.s.Path(ref.SHA256)})
	b.bytes += ref.Size
	if len(b.pending) >= BatchObjects || b.bytes >= BatchBytes {
		if err := b.rename(); err != nil {
			return ref, err
		}
	}
	return ref, nil
}

// rename makes the pending temporary files durable and renames them.
func (b *Batch) rename() error {
	if len(b.pending) == 0 {
		return nil
	}
	if err := b.sync(); err != nil {
		return err
	}
	for i, p := range b.pending {
		dir := filepath.Dir(p.final)
		if !b.dirs[dir] {
			if _, err := b.s.fanOut(dir); err != nil {
				return err
			}
			b.dirs[dir] = true
		}
		if err := os.Rename(p.tmp, p.final); err != nil {
			b.pending = b.pending[i:]
			return fmt.Errorf("object store: %w", err)
		}
	}
	b.pending, b.bytes = b.pending[:0], 0
	return nil
}

// sync makes what was written durable: one syncfs, or an fsync per
// pending file where syncfs is not available.
func (b *Batch) sync() error {
	if !b.noSyncFS {
		err := manifest.SyncFS(b.s.root)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		b.noSyncFS = true
	}
	for _, p := range b.pending {
		f, err := os.Open(p.tmp)
		if err != nil {
			return fmt.Errorf("object store: %w", err)
		}
		err = f.Sync()
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("object store: sync %s: %w", p.tmp, err)
		}
	}
	return nil
}

// Flush makes every object put so far durable under its name.
func (b *Batch) Flush(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.rename(); err != nil {
		return err
	}
	if len(b.dirs) == 0 {
		return nil
	}
	if !b.noSyncFS {
		if err := manifest.SyncFS(b.s.root); err != nil {
			return err
		}
	} else {
		for dir := range b.dirs {
			if err := manifest.SyncDir(dir); err != nil {
				return err
			}
		}
		if err := manifest.SyncDir(b.s.root); err != nil {
			return err
		}
	}
	clear(b.dirs)
	return nil
}

// Discard removes the temporary files of objects not renamed yet (after a
// failed capture; prune would remove them later otherwise).
func (b *Batch) Discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.pending {
		_ = os.Remove(p.tmp)
	}
	b.pending, b.bytes = b.pending[:0], 0
}
