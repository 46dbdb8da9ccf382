package filetree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// Source is a tree to capture. Names are slash-separated and relative to
// the source's root ("" is the root).
type Source interface {
	Lstat(name string) (fs.FileInfo, error)
	// ReadDir lists a directory without following symlinks, in any order.
	ReadDir(name string) ([]fs.FileInfo, error)
	Open(name string) (io.ReadCloser, error)
	Readlink(name string) (string, error)
	// Meta returns the owner, names if known, and identity of fi.
	Meta(fi fs.FileInfo) Meta
	String() string
}

// Meta is what Capture needs from a FileInfo beyond the standard fields.
type Meta struct {
	UID, GID    int
	User, Group string
	Inode       uint64 // 0 when unknown (SFTP)
}

// Putter stores content as an object; *objects.Store implements it.
type Putter interface {
	Put(ctx context.Context, r io.Reader) (manifest.Ref, error)
}

// CaptureOptions say what to capture and where to.
type CaptureOptions struct {
	Name    string // tree name in the manifest ("storage", "config")
	Root    string // informational: where the source is
	Source  Source
	Store   Putter
	Include []string // if set, only files matching one (see Excluded) are captured
	Exclude []string // paths matching one are skipped (with their subtree)
	// Cache is the previous run's cache (nil: read every file); it is
	// read alongside the walk.
	Cache *CaptureCache
	// CacheDir is where the next run's cache is written during the walk:
	// the directory its file is saved in, so that Save is a rename (the
	// system's temporary directory when empty).
	CacheDir string
	Workers  int // parallel readers; 4 when zero
	Progress manifest.Progress
}

// CaptureStats count what Capture did.
type CaptureStats struct {
	Files, Dirs, Symlinks, Skipped int64
	Bytes                          int64 // of all files
	ReadFiles, ReadBytes           int64 // files opened and bytes read
	Reused                         int64 // files whose object came from the cache
	Lists, ListBytes               int64 // directory lists stored (new or already there) and their size
	ReusedLists                    int64 // lists named by the cache, not encoded again
	// CacheErr: the previous cache could not be read to its end (the
	// files after the damage were read again).
	CacheErr error
}

// Capture captures o.Source into objects and returns the tree (its list
// stored as an object), the cache for the next run, and statistics.
func Capture(ctx context.Context, o CaptureOptions) (manifest.Tree, *CaptureCache, CaptureStats, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Progress == nil {
		o.Progress = manifest.NoProgress{}
	}
	old, err := openCacheReader(o.Cache)
	if err != nil {
		return manifest.Tree{}, nil, CaptureStats{}, fmt.Errorf("capture %s: %w", o.Name, err)
	}
	defer old.close()
	next, err := newCacheWriter(o.CacheDir)
	if err != nil {
		return manifest.Tree{}, nil, CaptureStats{}, fmt.Errorf("capture %s: %w", o.Name, err)
	}
	defer next.abort()
	// A store is written in batches: one syncfs per batch instead of two
	// fsyncs per file; everything is durable when Capture returns.
	var batch *objects.Batch
	var reusable func(manifest.Ref) bool
	if s, ok := o.Store.(*objects.Store); ok {
		batch = s.NewBatch()
		o.Store = batch
		// A list named in the cache is reused only if it is still there
		// (prune, or a damaged channel, may have removed it) with its size.
		reusable = func(ref manifest.Ref) bool {
			fi, err := s.Stat(ref.SHA256)
			return err == nil && fi.Size() == ref.Size
		}
	}
	c := &capturer{o: o, old: old, next: next, sem: make(chan struct{}, o.Workers)}
	o.Progress.Begin("files "+o.Name, 0, "files")
	defer o.Progress.End()
	// The tree is listed per directory (format 2.0): each directory's
	// list is stored as soon as the walk leaves it, so only the lists of
	// the directories enclosing the walk are held.
	tw := manifest.NewTreeWriter(ctx, o.Store)
	tw.Reusable, tw.OnList = reusable, next.setMemo
	tw.SetRootMemo(old.rootMemo())
	err = c.fill(ctx)(tw)
	var t manifest.Tree
	if err == nil {
		t, err = tw.Tree(o.Name, o.Root)
	}
	var cache *CaptureCache
	if err == nil {
		cache, err = next.finish()
	}
	if err == nil && batch != nil {
		err = batch.Flush(ctx)
	}
	c.st.Files, c.st.Dirs, c.st.Symlinks, c.st.Skipped, c.st.Reused = c.ws.Files, c.ws.Dirs, c.ws.Symlinks, c.ws.Skipped, c.ws.Reused
	c.st.Bytes += c.ws.Bytes
	if err != nil {
		if batch != nil {
			batch.Discard()
		}
		cache.Remove()
		return manifest.Tree{}, nil, c.st, fmt.Errorf("capture %s (%s): %w", o.Name, o.Source, err)
	}
	c.st.Lists, c.st.ListBytes, c.st.ReusedLists = tw.Lists, tw.ListBytes, tw.Reused
	c.st.CacheErr = old.err
	t.Files, t.Bytes = c.st.Files, c.st.Bytes
	return t, cache, c.st, nil
}

type capturer struct {
	o    CaptureOptions
	old  *cacheReader  // looked up in walk order, by the walking goroutine
	next *cacheWriter  // written in walk order, by the ordering goroutine
	sem  chan struct{} // bounds directory listings in flight
	mu   sync.Mutex
	st   CaptureStats // what the readers count, under mu
	ws   CaptureStats // what the walk counts (its goroutine only)
}

// pending is an entry waiting for its content to be stored.
type pending struct {
	e    manifest.Entry
	done chan error // nil: nothing to read
	id   CacheEntry
	memo *manifest.ListMemo // a directory's list in the previous capture
}

// chunkLen is how many entries the walk hands to the ordering goroutine
// at a time: one allocation and one channel hop per chunk, not per entry.
const chunkLen = 256

// chunker collects the walk's entries into chunks. Entries live in an
// array of chunkLen that is never grown, so a worker may hold a pointer
// to one while the walk fills the rest.
type chunker struct {
	ctx     context.Context
	ordered chan<- []pending
	buf     []pending
	sent    int
}

// add returns the next entry to fill in; send hands it over later.
func (k *chunker) add(e manifest.Entry) *pending {
	if len(k.buf) == cap(k.buf) {
		k.buf, k.sent = make([]pending, 0, chunkLen), 0
	}
	k.buf = append(k.buf, pending{e: e})
	return &k.buf[len(k.buf)-1]
}

// drop takes back the last entry added (not to be captured).
func (k *chunker) drop() { k.buf = k.buf[:len(k.buf)-1] }

// flush hands over the entries added since the last flush, at once if
// the chunk is full or force is set.
func (k *chunker) flush(force bool) error {
	if len(k.buf) == k.sent || (!force && len(k.buf) < cap(k.buf)) {
		return nil
	}
	select {
	case k.ordered <- k.buf[k.sent:len(k.buf):len(k.buf)]:
		k.sent = len(k.buf)
		return nil
	case <-k.ctx.Done():
		return k.ctx.Err()
	}
}

func (c *capturer) fill(ctx context.Context) func(*manifest.TreeWriter) error {
	return func(lw *manifest.TreeWriter) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		jobs := make(chan *pending, c.o.Workers*4)
		ordered := make(chan []pending, 16)
		var wg sync.WaitGroup
		for i := 0; i < c.o.Workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for p := range jobs {
					p.done <- c.read(ctx, p)
				}
			}()
		}
		walkErr := make(chan error, 1)
		go func() {
			k := &chunker{ctx: ctx, ordered: ordered}
			err := c.walk(ctx, "", c.list(ctx, ""), jobs, k)
			if err == nil {
				err = k.flush(true)
			}
			close(jobs)
			close(ordered)
			walkErr <- err
		}()
		var first error
		for chunk := range ordered {
			for i := range chunk {
				p := &chunk[i]
				if first != nil {
					if p.done != nil {
						<-p.done
					}
					continue
				}
				if p.done != nil {
					if err := <-p.done; err != nil {
						first = err
						cancel()
						continue
					}
				}
				// WriteEntry may end directories, whose memos go into
				// records written before; a directory's record comes after.
				err := lw.WriteEntryMemo(p.e, p.memo)
				if err == nil {
					switch p.e.Type {
					case manifest.TypeFile:
						err = c.next.add(p.e.Path, CacheEntry{Size: p.e.Size, MTimeNs: p.id.MTimeNs, Inode: p.id.Inode, Object: p.e.Object})
					case manifest.TypeDir:
						err = c.next.addDir(p.e.Path)
					}
				}
				if err != nil {
					first = err
					cancel()
					continue
				}
			}
			c.o.Progress.Add(int64(len(chunk)))
		}
		wg.Wait()
		if err := <-walkErr; first == nil {
			first = err
		}
		return first
	}
}

// read stores a file's content and fills in its object and size.
func (c *capturer) read(ctx context.Context, p *pending) error {
	f, err := c.o.Source.Open(p.e.Path)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.e.Path, err)
	}
	defer f.Close()
	ref, err := c.o.Store.Put(ctx, f)
	if err != nil {
		return fmt.Errorf("store %s: %w", p.e.Path, err)
	}
	p.e.Object, p.e.Size = ref.SHA256, ref.Size
	c.mu.Lock()
	c.st.ReadFiles++
	c.st.ReadBytes += ref.Size
	c.st.Bytes += ref.Size - p.id.Size // the size read wins over the size seen
	c.mu.Unlock()
	return nil
}

// dirList is a directory listing being read ahead of the walk.
type dirList struct {
	infos []fs.FileInfo
	err   error
	done  chan struct{}
}

// readAhead is how many sibling directories are listed ahead of the walk
// at most, while their sizes (st_size: the bytes of their entries on
// ext4, XFS and most others) add up to at most aheadBytes: 32 small
// directories hide the listings' latency on NFS and keep both CPUs busy
// locally (a capture with nothing changed at 300k files: 10% less time
// than with 8), and big ones are listed one ahead, so that what is held
// does not grow with the size of the directories (a listing holds a
// FileInfo per entry, a few times its directory entry's bytes).
const (
	readAhead  = 32
	aheadBytes = 2 << 20
)

// aheadWindow chooses which of a directory's n subdirectories (in walk
// order, k's size by size) to list ahead of the walk: up to readAhead
// beyond the next one to walk, while their sizes add up to at most
// aheadBytes.
type aheadWindow struct {
	size    func(k int) int64
	n       int
	started int   // subdirectories 0..started-1 are listed
	held    int64 // the sizes of those listed and not walked yet
}

func (w *aheadWindow) sizeOf(k int) int64 { return max(w.size(k), 4096) }

// next returns the subdirectories to list now that next is the next to
// walk: next itself always, if not listed yet.
func (w *aheadWindow) next(next int) []int {
	var start []int
	for ; w.started < w.n && w.started <= next+readAhead; w.started++ {
		if w.started > next && w.held+w.sizeOf(w.started) > aheadBytes {
			break
		}
		w.held += w.sizeOf(w.started)
		start = append(start, w.started)
	}
	return start
}

// walked says that subdirectory k, listed, is walked: its listing is no
// longer held ahead.
func (w *aheadWindow) walked(k int) { w.held -= w.sizeOf(k) }

// list starts reading directory dir in the background, at most
// cap(c.sem) at a time: on NFS and over SFTP the listing and the lstat of
// each entry are round trips, so a few in flight hide the latency.
func (c *capturer) list(ctx context.Context, dir string) *dirList {
	d := &dirList{done: make(chan struct{})}
	go func() {
		defer close(d.done)
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			d.err = ctx.Err()
			return
		}
		d.infos, d.err = c.o.Source.ReadDir(dir)
		<-c.sem
		byName := func(a, b fs.FileInfo) int { return strings.Compare(a.Name(), b.Name()) }
		if !slices.IsSortedFunc(d.infos, byName) {
			slices.SortFunc(d.infos, byName)
		}
	}()
	return d
}

func (c *capturer) walk(ctx context.Context, dir string, d *dirList, jobs chan<- *pending, k *chunker) error {
	select {
	case <-d.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if d.err != nil {
		if dir != "" && errors.Is(d.err, fs.ErrNotExist) {
			return nil // vanished
		}
		return fmt.Errorf("read directory %q of %s: %w", dir, c.o.Source, d.err)
	}
	infos := d.infos
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	excluded := func(rel string) bool { return len(c.o.Exclude) > 0 && Excluded(rel, c.o.Exclude) }
	// Subdirectories, listed up to readAhead ahead of the one walked.
	var subs []int
	for i, fi := range infos {
		if fi.IsDir() && !excluded(prefix+fi.Name()) {
			subs = append(subs, i)
		}
	}
	ahead := map[int]*dirList{}
	win := aheadWindow{size: func(k int) int64 { return infos[subs[k]].Size() }, n: len(subs)}
	readAheadOf := func(next int) {
		for _, k := range win.next(next) {
			ahead[subs[k]] = c.list(ctx, prefix+infos[subs[k]].Name())
		}
	}
	readAheadOf(0)
	walked := 0
	for i, fi := range infos {
		rel := prefix + fi.Name()
		if excluded(rel) {
			continue
		}
		m := c.o.Source.Meta(fi)
		p := k.add(manifest.Entry{
			Path: rel, UID: m.UID, GID: m.GID, User: m.User, Group: m.Group,
			Mode:  uint32(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)),
			MTime: fi.ModTime(),
		})
		switch {
		case fi.IsDir():
			p.e.Type = manifest.TypeDir
			p.memo = c.old.lookupDir(rel)
			c.ws.Dirs++
			if err := k.flush(false); err != nil {
				return err
			}
			readAheadOf(walked)
			sub := ahead[i]
			delete(ahead, i)
			win.walked(walked)
			walked++
			if err := c.walk(ctx, rel, sub, jobs, k); err != nil {
				return err
			}
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			if len(c.o.Include) > 0 && !Excluded(rel, c.o.Include) {
				k.drop()
				continue
			}
			t, err := c.o.Source.Readlink(rel)
			if err != nil {
				return fmt.Errorf("read link %s: %w", rel, err)
			}
			p.e.Type, p.e.Target = manifest.TypeSymlink, t
			c.ws.Symlinks++
		case fi.Mode().IsRegular():
			if len(c.o.Include) > 0 && !Excluded(rel, c.o.Include) {
				k.drop()
				continue
			}
			p.e.Type, p.e.Size = manifest.TypeFile, fi.Size()
			p.id = CacheEntry{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano(), Inode: m.Inode}
			if prev, ok := c.old.lookup(rel); ok && prev.Size == p.id.Size && prev.MTimeNs == p.id.MTimeNs && prev.Inode == p.id.Inode && prev.Object != "" {
				p.e.Object = prev.Object
				c.ws.Reused++
			} else {
				p.done = make(chan error, 1)
				select {
				case jobs <- p:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			c.ws.Files++
			c.ws.Bytes += fi.Size()
		default:
			k.drop()
			c.ws.Skipped++
			continue
		}
		if err := k.flush(false); err != nil {
			return err
		}
	}
	return nil
}
