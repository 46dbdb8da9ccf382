package mover

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/squirro-bcp/bcp/manifest"
)

// Checked remembers which destination files were verified (hashed while
// written, or hashed afterwards) together with the size and modification
// time they had then. A file whose size and time are unchanged is not read
// again; one that differs - or is not in the cache - is hashed before it is
// trusted, so a damaged file at the destination is replaced, not kept.
// The cache lives on the machine that runs transfer, one file per
// destination.
type Checked struct {
	path   string
	loaded chan struct{} // closed when m holds the file's content
	mu     sync.Mutex
	m      map[string]stamp
	dirty  bool
}

type stamp struct {
	size  int64
	mtime int64 // UnixNano
}

// OpenChecked loads the cache file at path; a missing file is an empty
// cache. An empty path is a cache that forgets everything (every present
// file is hashed).
// The file is read in the background (100k entries take ~0.1 s, which a
// run with nothing to do spends listing instead).
func OpenChecked(path string) (*Checked, error) {
	c := &Checked{path: path, m: map[string]stamp{}, loaded: make(chan struct{})}
	if path == "" {
		close(c.loaded)
		return c, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		close(c.loaded)
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("verified-file cache %s: %w", path, err)
	}
	go func() {
		defer close(c.loaded)
		defer f.Close()
		c.load(f)
	}()
	return c, nil
}

// load reads the cache file; a line it cannot read is left out (that file
// is then hashed again), never trusted.
func (c *Checked) load(f io.Reader) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// size mtime name; a malformed line is dropped (the file is then
		// hashed again), never trusted.
		parts := strings.SplitN(sc.Text(), " ", 3)
		if len(parts) != 3 {
			continue
		}
		size, err1 := strconv.ParseInt(parts[0], 10, 64)
		mt, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		c.m[parts[2]] = stamp{size, mt}
	}
}

// DefaultCachePath is the cache file for a destination under the user's
// cache directory.
func DefaultCachePath(dst string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sumString(dst)
	return filepath.Join(dir, "squirro-bcp", "transfer", sum[:24]+".checked"), nil
}

// lock waits until the cache is loaded and locks it, for a caller that
// looks up many names (okLocked).
func (c *Checked) lock() {
	<-c.loaded
	c.mu.Lock()
}

func (c *Checked) unlock() { c.mu.Unlock() }

// okLocked says whether name was verified with the size and time e shows.
// The caller holds lock.
func (c *Checked) okLocked(name string, e Entry) bool {
	s, ok := c.m[name]
	return ok && s.size == e.Size && sameTime(s.mtime, e.ModTime.UnixNano())
}

// sameTime compares modification times in nanoseconds. SFTP reports whole
// seconds and the helper nanoseconds, so a time without a fraction is
// compared to the second: a switch between the two does not make every
// file look changed.
func sameTime(a, b int64) bool {
	if a == b {
		return true
	}
	return (a%1e9 == 0 || b%1e9 == 0) && a/1e9 == b/1e9
}

func (c *Checked) set(name string, e Entry) {
	<-c.loaded
	c.mu.Lock()
	if st := (stamp{e.Size, e.ModTime.UnixNano()}); c.m[name] != st {
		c.m[name] = st
		c.dirty = true
	}
	c.mu.Unlock()
}

func (c *Checked) drop(name string) {
	<-c.loaded
	c.mu.Lock()
	if _, ok := c.m[name]; ok {
		delete(c.m, name)
		c.dirty = true
	}
	c.mu.Unlock()
}

// Save writes the cache atomically if it changed.
func (c *Checked) Save() error {
	<-c.loaded
	if c.path == "" || !c.dirty {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := manifest.WriteAtomic(c.path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for name, s := range c.m {
			fmt.Fprintf(bw, "%d %d %s\n", s.size, s.mtime, name)
		}
		return bw.Flush()
	})
	if err == nil {
		c.dirty = false
	}
	return err
}
