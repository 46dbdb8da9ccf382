package manifest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// DefaultCacheMax bounds the identity cache: 72 bytes of file per entry;
// in memory only one section at a time (cacheSections).
const DefaultCacheMax = 1 << 20

// cacheMagic starts a cache file; the version is part of it.
const cacheMagic = "bcp-verify-cache-2\n"

// cacheSections is how many sections of files a cache file has: section
// k holds the files whose SHA-256 starts with hex digit k, and Verify
// hashes the files of one section at a time, so that only that section's
// entries are in memory. They follow a first section for the lists
// Verify checks before the others.
const cacheSections = 16

// fileID is where a file lives: device and inode.
type fileID struct{ dev, ino uint64 }

// cacheEntry is what the file looked like when its content was verified.
// ctime cannot be set by a user and changes on every write, so a file with
// the same device, inode, size, mtime and ctime has the same content.
type cacheEntry struct {
	size, mtime, ctime int64
	sha                [32]byte
}

const cacheRecord = 8*5 + 32

// idCache remembers which content SHA-256 a file with a given identity was
// verified to have. The file holds cacheSections sections in order, each a
// count, its records and the SHA-256 of both; Verify reads the previous
// file one section at a time (begin) alongside its pass over that
// section's files, and writes the next one, section by section (end), to
// an unlinked temporary file that save copies into place atomically. A
// section that does not check out ends the use of the previous file (its
// files are hashed again), never trusted. Memory: one section's entries,
// at most max/cacheSections old and as many new.
type idCache struct {
	path string
	max  int // per section
	left int // entries the next file may still hold (the whole cache's bound)

	mu   sync.Mutex
	old  map[fileID]cacheEntry // the current section, from the file
	used map[fileID]cacheEntry // confirmed or added in this run, current section

	in      *os.File // the previous file (nil: none or unusable)
	inr     *bufio.Reader
	out     *os.File // the next file, unlinked
	outw    *bufio.Writer
	written int // sections written
	touched bool
	err     error
}

func openCache(path string, max int) *idCache {
	if max <= 0 {
		max = DefaultCacheMax
	}
	c := &idCache{path: path, max: (max + cacheSections - 1) / cacheSections, left: max, old: map[fileID]cacheEntry{}, used: map[fileID]cacheEntry{}}
	if f, err := os.Open(path); err == nil {
		c.in, c.inr = f, bufio.NewReaderSize(f, 256<<10)
		head := make([]byte, len(cacheMagic))
		if _, err := io.ReadFull(c.inr, head); err != nil || string(head) != cacheMagic {
			c.dropIn()
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		c.err = fmt.Errorf("cache: %w", err)
		return c
	}
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		c.err = fmt.Errorf("cache: %w", err)
		return c
	}
	_ = os.Remove(f.Name()) // unlinked: gone when closed, even after a crash
	c.out, c.outw = f, bufio.NewWriterSize(f, 256<<10)
	c.outw.WriteString(cacheMagic)
	return c
}

func (c *idCache) dropIn() {
	if c.in != nil {
		_ = c.in.Close()
		c.in, c.inr = nil, nil
	}
}

func (c *idCache) close() {
	c.dropIn()
	if c.out != nil {
		_ = c.out.Close()
		c.out = nil
	}
}

// sectionOf is the section of a file with content sha (hex).
func sectionOf(sha string) int {
	if sha == "" {
		return 0
	}
	switch c := sha[0]; {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return 0
}

// begin loads the next section of the previous file.
func (c *idCache) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.old, c.used = map[fileID]cacheEntry{}, map[fileID]cacheEntry{}
	if c.in == nil {
		return
	}
	if err := c.readSection(); err != nil {
		c.old = map[fileID]cacheEntry{}
		c.dropIn()
	}
}

func (c *idCache) readSection() error {
	head := make([]byte, 8)
	if _, err := io.ReadFull(c.inr, head); err != nil {
		return err
	}
	sum := sha256.New()
	sum.Write(head)
	n := binary.LittleEndian.Uint64(head)
	rec := make([]byte, cacheRecord)
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(c.inr, rec); err != nil {
			return err
		}
		sum.Write(rec)
		id := fileID{binary.LittleEndian.Uint64(rec[0:]), binary.LittleEndian.Uint64(rec[8:])}
		e := cacheEntry{
			size:  int64(binary.LittleEndian.Uint64(rec[16:])),
			mtime: int64(binary.LittleEndian.Uint64(rec[24:])),
			ctime: int64(binary.LittleEndian.Uint64(rec[32:])),
		}
		copy(e.sha[:], rec[40:])
		if len(c.old) < c.max {
			c.old[id] = e
		}
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(c.inr, want); err != nil {
		return err
	}
	if !bytes.Equal(want, sum.Sum(nil)) {
		return errors.New("cache checksum mismatch")
	}
	return nil
}

// end writes the current section to the next file: the entries used or
// added in this run, then older ones up to max.
func (c *idCache) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out == nil || c.err != nil {
		return
	}
	limit := min(c.max, c.left)
	total := min(len(c.used), limit)
	for id := range c.old {
		if total >= limit {
			break
		}
		if _, dup := c.used[id]; !dup {
			total++
		}
	}
	c.left -= total
	sum := sha256.New()
	out := io.MultiWriter(c.outw, sum)
	head := make([]byte, 8)
	binary.LittleEndian.PutUint64(head, uint64(total))
	_, _ = out.Write(head)
	rec := make([]byte, cacheRecord)
	written := 0
	put := func(id fileID, e cacheEntry) {
		binary.LittleEndian.PutUint64(rec[0:], id.dev)
		binary.LittleEndian.PutUint64(rec[8:], id.ino)
		binary.LittleEndian.PutUint64(rec[16:], uint64(e.size))
		binary.LittleEndian.PutUint64(rec[24:], uint64(e.mtime))
		binary.LittleEndian.PutUint64(rec[32:], uint64(e.ctime))
		copy(rec[40:], e.sha[:])
		_, _ = out.Write(rec)
		written++
	}
	for id, e := range c.used {
		if written >= total {
			break
		}
		put(id, e)
	}
	for id, e := range c.old {
		if written >= total {
			break
		}
		if _, dup := c.used[id]; !dup {
			put(id, e)
		}
	}
	if _, err := c.outw.Write(sum.Sum(nil)); err != nil {
		c.err = fmt.Errorf("cache: %w", err)
	}
	c.written++
	c.old, c.used = map[fileID]cacheEntry{}, map[fileID]cacheEntry{}
}

func identity(fi fs.FileInfo) (fileID, cacheEntry, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, cacheEntry{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, cacheEntry{
		size:  st.Size,
		mtime: st.Mtim.Nano(),
		ctime: st.Ctim.Nano(),
	}, true
}

// sameIdentity reports whether two stats of a file show no change.
func sameIdentity(a, b fs.FileInfo) bool {
	ia, ea, ok1 := identity(a)
	ib, eb, ok2 := identity(b)
	return ok1 && ok2 && ia == ib && ea == eb
}

// lookup reports whether the file described by fi was verified before to
// have content sha, and has not changed since.
func (c *idCache) lookup(fi fs.FileInfo, sha string) bool {
	id, now, ok := identity(fi)
	if !ok {
		return false
	}
	var want [32]byte
	if _, err := hex.Decode(want[:], []byte(sha)); err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.used[id]
	if !ok {
		e, ok = c.old[id]
	}
	if !ok || e.size != now.size || e.mtime != now.mtime || e.ctime != now.ctime || e.sha != want {
		return false
	}
	c.touched = true
	if len(c.used) < c.max {
		c.used[id] = e
	}
	return true
}

// add records that the file described by fi has content sha.
func (c *idCache) add(fi fs.FileInfo, sha string) {
	id, e, ok := identity(fi)
	if !ok {
		return
	}
	if _, err := hex.Decode(e.sha[:], []byte(sha)); err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touched = true
	if len(c.used) < c.max {
		c.used[id] = e
	}
}

// finish saves the next file if this run used or added an entry and went
// through every section, and closes the files.
func (c *idCache) finish() error {
	defer c.close()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.touched:
		return nil
	case c.err != nil:
		return c.err
	case c.written != 1+cacheSections:
		return nil
	}
	if err := c.outw.Flush(); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	if _, err := c.out.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return WriteAtomic(c.path, 0o600, func(w io.Writer) error {
		_, err := io.Copy(w, c.out)
		return err
	})
}
