package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/squirro-bcp/bcp/manifest"
)

// Batch stores many objects with one syncfs(2) per batch instead of two
// fsyncs per object (write-order rule 1 for a batch, as the mover copies
// small files): each Put writes its object where it has no name yet (an
// unnamed file, Linux's O_TMPFILE, or a temporary name where the file
// system has none), not synced; once a batch of objects (or BatchBytes
// bytes) waits, one syncfs makes them all durable, and only then are
// they given their names (linked or renamed). The Put that fills a batch
// does that while the other goroutines go on writing the next one.
// Flush does it for the rest and syncs the names: call it before
// publishing anything that references the objects (rule 2). Until then
// an object may have no name, so a Batch is for a producer that writes
// and does not read back (backup's capture). Where syncfs is not
// available each file is fsynced instead, and the directories after the
// renames. Put may be called from several goroutines.
type Batch struct {
	s *Store

	mu      sync.Mutex // guards the batch being filled
	pending []pendingObject
	bytes   int64
	max     int  // objects per batch
	named   bool // the file system has no unnamed files

	naming   sync.Mutex      // one batch named at a time; guards the rest
	dirs     map[string]bool // fan-out directories named into since the last Flush
	noSyncFS bool
	failed   []pendingObject // left by a batch whose naming failed (Discard)
}

// pendingObject is an object written, waiting for its name.
type pendingObject struct {
	tmp   temp
	final string
	size  int64
}

// Batch limits: what the mover uses for small files, and a bound on the
// bytes the kernel holds dirty for one syncfs.
const (
	BatchObjects       = 2048
	BatchBytes   int64 = 256 << 20
)

// NewBatch returns a batch storing into s.
func (s *Store) NewBatch() *Batch {
	b := &Batch{s: s, dirs: map[string]bool{}, max: unnamedMax()}
	if b.max < 64 {
		b.max, b.named = BatchObjects, true
	}
	return b
}

// Put stores the content of r; it is durable under its name after Flush.
func (b *Batch) Put(ctx context.Context, r io.Reader) (manifest.Ref, error) {
	b.mu.Lock()
	mode := batchUnnamed
	if b.named {
		mode = batchNamed
	}
	b.mu.Unlock()
	t, ref, _, err := b.s.writeTemp(ctx, r, mode)
	if err != nil || t.stored() {
		return ref, err
	}
	b.mu.Lock()
	if t.fd < 0 && !b.named {
		b.named, b.max = true, BatchObjects // no O_TMPFILE here
	}
	b.pending = append(b.pending, pendingObject{tmp: t, final: b.s.Path(ref.SHA256), size: ref.Size})
	b.bytes += ref.Size
	var full []pendingObject
	if len(b.pending) >= b.max || b.bytes >= BatchBytes {
		full = b.pending
		b.pending, b.bytes = nil, 0
	}
	b.mu.Unlock()
	if full != nil {
		b.naming.Lock()
		defer b.naming.Unlock()
		return ref, b.name(full)
	}
	return ref, nil
}

// name makes the objects ps durable and gives them their names; what it
// could not name is left for Discard. The caller holds b.naming.
func (b *Batch) name(ps []pendingObject) error {
	if len(ps) == 0 {
		return nil
	}
	if err := b.sync(ps); err != nil {
		b.failed = append(b.failed, ps...)
		return err
	}
	for i, p := range ps {
		dir := filepath.Dir(p.final)
		if !b.dirs[dir] {
			if _, err := b.s.fanOut(dir); err != nil {
				b.failed = append(b.failed, ps[i:]...)
				return err
			}
			b.dirs[dir] = true
		}
		if err := place(p); err != nil {
			b.failed = append(b.failed, ps[i+1:]...)
			return fmt.Errorf("object store: %w", err)
		}
	}
	return nil
}

// place gives a durable object its name, and closes or removes what held
// it in any case. An unnamed one finding its name taken leaves an intact
// object there (same size: the same content, by its name) and replaces a
// damaged one.
func place(p pendingObject) error {
	if p.tmp.fd < 0 {
		err := os.Rename(p.tmp.name, p.final)
		if err != nil {
			_ = os.Remove(p.tmp.name)
		}
		return err
	}
	defer func() { _ = syscall.Close(p.tmp.fd) }()
	err := linkUnnamed(p.tmp.fd, p.final)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	if intact(p.final, p.size) {
		return nil
	}
	tmp := tempName(filepath.Dir(p.final))
	if err = linkUnnamed(p.tmp.fd, tmp); err != nil {
		return err
	}
	if err = os.Rename(tmp, p.final); err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// sync makes the objects ps durable: one syncfs, or an fsync of each
// where syncfs is not available.
func (b *Batch) sync(ps []pendingObject) error {
	if !b.noSyncFS {
		err := manifest.SyncFS(b.s.root)
		if !errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		b.noSyncFS = true
	}
	for _, p := range ps {
		if err := p.tmp.sync(); err != nil {
			return fmt.Errorf("object store: sync %s: %w", p.final, err)
		}
	}
	return nil
}

// Flush makes every object put so far durable under its name.
func (b *Batch) Flush(context.Context) error {
	b.naming.Lock()
	defer b.naming.Unlock()
	b.mu.Lock()
	ps := b.pending
	b.pending, b.bytes = nil, 0
	b.mu.Unlock()
	if err := b.name(ps); err != nil {
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

// Discard removes what holds objects not named yet (after a failed
// capture; prune would remove temporary names later otherwise, and an
// unnamed file vanishes when it is closed).
func (b *Batch) Discard() {
	b.naming.Lock()
	defer b.naming.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range append(b.failed, b.pending...) {
		p.tmp.discard()
	}
	b.pending, b.bytes, b.failed = nil, 0, nil
}
