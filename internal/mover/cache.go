package mover

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/squirro-bcp/bcp/manifest"
)

// Checked remembers which destination files were verified (hashed while
// written, or hashed afterwards): the SHA-256 they were found to have,
// with the size and modification time they had then. A file whose size and
// time are unchanged, wanted with that SHA-256, is not read again; one that
// differs - or is not in the cache - is hashed before it is trusted, so a
// damaged file at the destination is replaced, not kept, and a file that a
// newer set wants with other content under the same name (es/index.latest)
// is written again.
// It also keeps the setRecord of the last run. The cache lives on the
// machine that runs transfer, one file per destination: the record's lines
// ("@set", "@dir") first, then one line per file ("size mtime sha256 name").
type Checked struct {
	path   string
	rec    *setRecord
	rest   []byte    // the per-file lines, parsed on first use
	parsed sync.Once // parses rest into m
	mu     sync.Mutex
	m      map[string]stamp
	dirty  bool
}

type stamp struct {
	size  int64
	mtime int64  // UnixNano
	sum   string // hex SHA-256
}

// setRecord says that a set (its manifest's SHA-256) was complete and
// verified at the destination when the directories holding its files had
// the digests in digests (remote.Digest). While the source's newest set is
// still that one and every digest still matches, nothing in those
// directories was added, removed, resized or touched since, and a run has
// nothing to do: it need not read the set's file lists nor the
// destination's listings.
type setRecord struct {
	set      string
	manifest string // hex SHA-256 of manifest.json
	files    int64
	dirs     []string // sorted
	digests  [][32]byte
}

// OpenChecked reads the cache file at path; a missing file is an empty
// cache. An empty path is a cache that forgets everything (every present
// file is hashed). The per-file lines (100k take ~0.1 s) are parsed only when
// a run needs them: one whose set is unchanged does not.
func OpenChecked(path string) (*Checked, error) {
	c := &Checked{path: path, m: map[string]stamp{}}
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("verified-file cache %s: %w", path, err)
	}
	c.rest = c.loadRecord(data)
	return c, nil
}

// loadRecord reads the record's lines at the start of data and returns the
// rest. A record it cannot read whole is dropped (the run then checks
// everything), never trusted.
func (c *Checked) loadRecord(data []byte) []byte {
	rec := &setRecord{}
	ok := true
	for bytes.HasPrefix(data, []byte("@")) {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		f := strings.SplitN(string(line), " ", 3)
		switch {
		case len(f) != 3:
			ok = false
		case f[0] == "@set":
			sum, files, _ := strings.Cut(f[2], " ")
			n, err := strconv.ParseInt(files, 10, 64)
			rec.set, rec.manifest, rec.files = f[1], sum, n
			ok = ok && err == nil && manifest.ValidSHA256(sum)
		case f[0] == "@dir":
			var sum [32]byte
			n, err := hex.Decode(sum[:], []byte(f[1]))
			rec.dirs = append(rec.dirs, f[2])
			rec.digests = append(rec.digests, sum)
			ok = ok && err == nil && n == len(sum)
		default:
			ok = false
		}
	}
	if ok && rec.set != "" && len(rec.dirs) > 0 && slices.IsSorted(rec.dirs) {
		c.rec = rec
	}
	return data
}

// load parses the per-file lines once, when first needed.
func (c *Checked) load() {
	c.parsed.Do(func() {
		c.parse(c.rest)
		c.rest = nil
	})
}

// preload parses the per-file lines in the background, for a run that
// will need them.
func (c *Checked) preload() { go c.load() }

// parse reads the per-file lines; a line it cannot read is left out (that
// file is then hashed again), never trusted.
func (c *Checked) parse(data []byte) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		// size mtime sha256 name
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) != 4 || !manifest.ValidSHA256(parts[2]) {
			continue
		}
		size, err1 := strconv.ParseInt(parts[0], 10, 64)
		mt, err2 := strconv.ParseInt(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		c.m[parts[3]] = stamp{size, mt, parts[2]}
	}
}

// record returns the last run's setRecord, nil if there is none.
func (c *Checked) record() *setRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rec
}

// setRecord replaces the record (nil: none).
func (c *Checked) setRecord(rec *setRecord) {
	c.mu.Lock()
	c.rec = rec
	c.dirty = true
	c.mu.Unlock()
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
	c.load()
	c.mu.Lock()
}

func (c *Checked) unlock() { c.mu.Unlock() }

// okLocked says whether name was verified to have content sum with the
// size and time e shows. The caller holds lock.
func (c *Checked) okLocked(name string, e Entry, sum string) bool {
	s, ok := c.m[name]
	return ok && s.sum == sum && s.size == e.Size && sameTime(s.mtime, e.ModTime.UnixNano())
}

// supersededLocked says whether the file e at name is, unchanged, the
// version verified there before with another SHA-256 than sum, the one
// the set now wants: the set changed, not the file (es/index.latest, which
// Elasticsearch rewrites with every snapshot). The caller holds lock.
func (c *Checked) supersededLocked(name string, e Entry, sum string) bool {
	s, ok := c.m[name]
	return ok && s.sum != sum && s.size == e.Size && sameTime(s.mtime, e.ModTime.UnixNano())
}

// damagedLocked says whether a file at w's name that differs from what w
// wants is damage rather than an older version: the cache verified w's
// very content there, or, where it knows nothing of the name, the name is
// not one that a new set gives new content (only es/index.latest is). A
// name the cache verified with other content is an update. The caller
// holds lock.
func (c *Checked) damagedLocked(w *want) bool {
	if s, ok := c.m[w.name]; ok {
		return s.sum == w.content()
	}
	return w.name != indexLatest
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

// set remembers that name, as e shows it, was verified to have content sum.
func (c *Checked) set(name string, e Entry, sum string) {
	c.load()
	c.mu.Lock()
	if st := (stamp{e.Size, e.ModTime.UnixNano(), sum}); c.m[name] != st {
		c.m[name] = st
		c.dirty = true
	}
	c.mu.Unlock()
}

func (c *Checked) drop(name string) {
	c.load()
	c.mu.Lock()
	if _, ok := c.m[name]; ok {
		delete(c.m, name)
		c.dirty = true
	}
	c.mu.Unlock()
}

// Save writes the cache atomically if it changed.
func (c *Checked) Save() error {
	c.mu.Lock()
	dirty := c.dirty
	c.mu.Unlock()
	if c.path == "" || !dirty {
		return nil
	}
	c.load()
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := manifest.WriteAtomic(c.path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if r := c.rec; r != nil {
			fmt.Fprintf(bw, "@set %s %s %d\n", r.set, r.manifest, r.files)
			for i, d := range r.dirs {
				fmt.Fprintf(bw, "@dir %x %s\n", r.digests[i], d)
			}
		}
		for name, s := range c.m {
			fmt.Fprintf(bw, "%d %d %s %s\n", s.size, s.mtime, s.sum, name)
		}
		return bw.Flush()
	})
	if err == nil {
		c.dirty = false
	}
	return err
}
