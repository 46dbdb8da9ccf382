package filetree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
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

// CaptureProgress receives progress (ui.Reporter fits).
type CaptureProgress interface {
	Begin(what string, total int64, unit string)
	Add(n int64)
	End()
}

type noCaptureProgress struct{}

func (noCaptureProgress) Begin(string, int64, string) {}
func (noCaptureProgress) Add(int64)                   {}
func (noCaptureProgress) End()                        {}

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
	Progress CaptureProgress
}

// CaptureStats count what Capture did.
type CaptureStats struct {
	Files, Dirs, Symlinks, Skipped int64
	Bytes                          int64 // of all files
	ReadFiles, ReadBytes           int64 // files opened and bytes read
	Reused                         int64 // files whose object came from the cache
	Lists, ListBytes               int64 // directory lists stored (new or already there) and their size
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
		o.Progress = noCaptureProgress{}
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
	if s, ok := o.Store.(*objects.Store); ok {
		batch = s.NewBatch()
		o.Store = batch
	}
	c := &capturer{o: o, old: old, next: next, sem: make(chan struct{}, o.Workers)}
	o.Progress.Begin("files "+o.Name, 0, "files")
	defer o.Progress.End()
	// The tree is listed per directory (format 2.0): each directory's
	// list is stored as soon as the walk leaves it, so only the lists of
	// the directories enclosing the walk are held.
	tw := manifest.NewTreeWriter(ctx, o.Store)
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
	if err != nil {
		if batch != nil {
			batch.Discard()
		}
		cache.Remove()
		return manifest.Tree{}, nil, c.st, fmt.Errorf("capture %s (%s): %w", o.Name, o.Source, err)
	}
	c.st.Lists, c.st.ListBytes = tw.Lists, tw.ListBytes
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
	st   CaptureStats
}

// pending is an entry waiting for its content to be stored.
type pending struct {
	e    manifest.Entry
	done chan error // nil: nothing to read
	id   CacheEntry
}

func (c *capturer) fill(ctx context.Context) func(*manifest.TreeWriter) error {
	return func(lw *manifest.TreeWriter) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		jobs := make(chan *pending, c.o.Workers*4)
		ordered := make(chan *pending, 4096)
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
			err := c.walk(ctx, "", c.list(ctx, ""), jobs, ordered)
			close(jobs)
			close(ordered)
			walkErr <- err
		}()
		var first error
		for p := range ordered {
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
			if err := lw.WriteEntry(p.e); err != nil {
				first = err
				cancel()
				continue
			}
			if p.e.Type == manifest.TypeFile {
				if err := c.next.add(p.e.Path, CacheEntry{Size: p.e.Size, MTimeNs: p.id.MTimeNs, Inode: p.id.Inode, Object: p.e.Object}); err != nil {
					first = err
					cancel()
					continue
				}
			}
			c.o.Progress.Add(1)
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

// readAhead is how many sibling directories are listed ahead of the walk.
const readAhead = 8

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
		sort.Slice(d.infos, func(i, j int) bool { return d.infos[i].Name() < d.infos[j].Name() })
	}()
	return d
}

func (c *capturer) walk(ctx context.Context, dir string, d *dirList, jobs, ordered chan<- *pending) error {
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
	relOf := func(fi fs.FileInfo) string {
		if dir == "" {
			return fi.Name()
		}
		return path.Join(dir, fi.Name())
	}
	// Subdirectories, listed up to readAhead ahead of the one walked.
	var subs []int
	for i, fi := range infos {
		if fi.IsDir() && !Excluded(relOf(fi), c.o.Exclude) {
			subs = append(subs, i)
		}
	}
	ahead := map[int]*dirList{}
	started := 0
	readUpTo := func(n int) {
		for ; started < len(subs) && started < n; started++ {
			ahead[subs[started]] = c.list(ctx, relOf(infos[subs[started]]))
		}
	}
	readUpTo(readAhead)
	walked := 0
	for i, fi := range infos {
		rel := relOf(fi)
		if Excluded(rel, c.o.Exclude) {
			continue
		}
		m := c.o.Source.Meta(fi)
		e := manifest.Entry{
			Path: rel, UID: m.UID, GID: m.GID, User: m.User, Group: m.Group,
			Mode:  uint32(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)),
			MTime: fi.ModTime(),
		}
		p := &pending{e: e}
		switch {
		case fi.IsDir():
			p.e.Type = manifest.TypeDir
			c.count(func(s *CaptureStats) { s.Dirs++ })
			if err := send(ctx, ordered, p); err != nil {
				return err
			}
			walked++
			readUpTo(walked + readAhead)
			sub := ahead[i]
			delete(ahead, i)
			if err := c.walk(ctx, rel, sub, jobs, ordered); err != nil {
				return err
			}
			continue
		case fi.Mode()&fs.ModeSymlink != 0:
			if len(c.o.Include) > 0 && !Excluded(rel, c.o.Include) {
				continue
			}
			t, err := c.o.Source.Readlink(rel)
			if err != nil {
				return fmt.Errorf("read link %s: %w", rel, err)
			}
			p.e.Type, p.e.Target = manifest.TypeSymlink, t
			c.count(func(s *CaptureStats) { s.Symlinks++ })
		case fi.Mode().IsRegular():
			if len(c.o.Include) > 0 && !Excluded(rel, c.o.Include) {
				continue
			}
			p.e.Type, p.e.Size = manifest.TypeFile, fi.Size()
			p.id = CacheEntry{Size: fi.Size(), MTimeNs: fi.ModTime().UnixNano(), Inode: m.Inode}
			if prev, ok := c.old.lookup(rel); ok && prev.Size == p.id.Size && prev.MTimeNs == p.id.MTimeNs && prev.Inode == p.id.Inode && prev.Object != "" {
				p.e.Object = prev.Object
				c.count(func(s *CaptureStats) { s.Reused++ })
			} else {
				p.done = make(chan error, 1)
				if err := send(ctx, jobs, p); err != nil {
					return err
				}
			}
			c.count(func(s *CaptureStats) { s.Files++; s.Bytes += fi.Size() })
		default:
			c.count(func(s *CaptureStats) { s.Skipped++ })
			continue
		}
		if err := send(ctx, ordered, p); err != nil {
			return err
		}
	}
	return nil
}

func (c *capturer) count(f func(*CaptureStats)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

func send(ctx context.Context, ch chan<- *pending, p *pending) error {
	select {
	case ch <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
