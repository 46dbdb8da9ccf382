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

// DefaultCacheMax bounds the identity cache: about 80 bytes of file and
// ~150 bytes of memory per entry.
const DefaultCacheMax = 1 << 20

// cacheMagic starts a cache file; the version is part of it.
const cacheMagic = "bcp-verify-cache-1\n"

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
// verified to have. It is loaded whole, bounded by max entries, and written
// back atomically next to its path; a damaged or foreign cache file is
// ignored (everything is hashed again), never trusted.
type idCache struct {
	path string
	max  int

	mu   sync.Mutex
	old  map[fileID]cacheEntry // from the file
	used map[fileID]cacheEntry // confirmed or added in this run
}

func openCache(path string, max int) *idCache {
	if max <= 0 {
		max = DefaultCacheMax
	}
	c := &idCache{path: path, max: max, old: map[fileID]cacheEntry{}, used: map[fileID]cacheEntry{}}
	if err := c.load(); err != nil {
		c.old = map[fileID]cacheEntry{}
	}
	return c
}

func (c *idCache) load() error {
	f, err := os.Open(c.path)
	if err != nil {
		return err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(cacheMagic)+8)
	if _, err := io.ReadFull(br, head); err != nil {
		return err
	}
	if string(head[:len(cacheMagic)]) != cacheMagic {
		return errors.New("not a cache file")
	}
	n := binary.LittleEndian.Uint64(head[len(cacheMagic):])
	if n > uint64(c.max) {
		n = uint64(c.max)
	}
	sum := sha256.New()
	sum.Write(head)
	rec := make([]byte, cacheRecord)
	for i := uint64(0); i < n; i++ {
		if _, err := io.ReadFull(br, rec); err != nil {
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
		c.old[id] = e
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, want); err != nil {
		return err
	}
	if !bytes.Equal(want, sum.Sum(nil)) {
		return errors.New("cache checksum mismatch")
	}
	return nil
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
	if len(c.used) < c.max {
		c.used[id] = e
	}
}

// touched reports whether this run used or added any entry.
func (c *idCache) touched() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.used) > 0
}

// save writes the entries used in this run, then older ones up to max,
// atomically.
func (c *idCache) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(c.path), 0o750); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	n := min(len(c.used)+len(c.old), c.max)
	return WriteAtomic(c.path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 1<<20)
		sum := sha256.New()
		out := io.MultiWriter(bw, sum)
		head := make([]byte, len(cacheMagic)+8)
		copy(head, cacheMagic)
		written := 0
		// The count is fixed up front: count what will be written.
		total := len(c.used)
		for id := range c.old {
			if total >= n {
				break
			}
			if _, dup := c.used[id]; !dup {
				total++
			}
		}
		binary.LittleEndian.PutUint64(head[len(cacheMagic):], uint64(total))
		out.Write(head)
		rec := make([]byte, cacheRecord)
		put := func(id fileID, e cacheEntry) {
			binary.LittleEndian.PutUint64(rec[0:], id.dev)
			binary.LittleEndian.PutUint64(rec[8:], id.ino)
			binary.LittleEndian.PutUint64(rec[16:], uint64(e.size))
			binary.LittleEndian.PutUint64(rec[24:], uint64(e.mtime))
			binary.LittleEndian.PutUint64(rec[32:], uint64(e.ctime))
			copy(rec[40:], e.sha[:])
			out.Write(rec)
			written++
		}
		for id, e := range c.used {
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
		if written != total {
			return fmt.Errorf("cache: wrote %d entries, announced %d", written, total)
		}
		bw.Write(sum.Sum(nil))
		return bw.Flush()
	})
}
