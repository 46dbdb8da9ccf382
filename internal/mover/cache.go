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
	"time"

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
// ("@set", "@full", "@dir") first, then one line per file ("size mtime sha256
// name"), sorted by bucket (bucketOf) and by name within a bucket.
//
// Memory: the record only. A run reads the stamps of one bucket at a time
// (view), from its section of the file as found at open plus what this run
// changed (a journal of lines per bucket, spooled to a temporary file when
// large); Save writes the merge, bucket by bucket. A file whose lines are
// not in that order (written by an older version) is read once into the
// journal, and written sorted by the next Save.
type Checked struct {
	path string

	mu    sync.Mutex
	rec   *setRecord
	dirty bool

	file    *os.File // the cache file as found at open; nil if none
	body    int64    // offset of its first per-file line
	indexed sync.Once
	idxErr  error
	off     [numBuckets + 1]int64 // bucket k's lines are at off[k]:off[k+1]
	journal bucketFiles           // lines of this run's changes ("-"+name drops)
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
//
// The record also says when the destination's files were last compared in
// full (fullAt: every file of a set listed there, the plan of planSet
// without a base set). A run whose set is not unchanged, within
// Options.FullCompareEvery of that, plans only the directories whose
// list changed since the recorded set (baseSet); it then records its own
// set without dirs (the digests would cost a listing of every directory),
// keeping fullAt.
type setRecord struct {
	set      string
	manifest string // hex SHA-256 of manifest.json
	files    int64
	dirs     []string // sorted; none after a run that skipped unchanged directories
	digests  [][32]byte
	fullAt   time.Time // the last full comparison; zero: unknown
}

// OpenChecked opens the cache file at path and reads its record; a missing
// file is an empty cache. An empty path is a cache that forgets everything
// (every present file is hashed). The per-file lines are read only when a
// run needs them (one whose set is unchanged does not), a bucket at a time.
//
// Its spools (this run's journal, and the plan's of a Run given it) go
// under spoolBase, beside the cache file; what a killed run left there is
// removed now.
func OpenChecked(path string) (*Checked, error) {
	c := &Checked{path: path}
	c.journal.base = c.spoolBase()
	if path == "" {
		removeStaleSpools("", time.Hour)
		return c, nil
	}
	removeStaleSpools(c.spoolBase(), 0)
	if err := c.open(); err != nil {
		return nil, fmt.Errorf("verified-file cache %s: %w", path, err)
	}
	return c, nil
}

func (c *Checked) open() error {
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	c.file = f
	br := bufio.NewReader(f)
	var head []byte
	for {
		b, err := br.Peek(1)
		if err != nil || b[0] != '@' {
			break
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			break // not a record line; the record is dropped below
		}
		head = append(head, line...)
		if err != nil {
			break
		}
	}
	c.body = int64(len(head))
	c.loadRecord(head)
	return nil
}

// loadRecord reads the record's lines in data. A record it cannot read
// whole is dropped (the run then checks everything), never trusted.
func (c *Checked) loadRecord(data []byte) {
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
		case f[0] == "@full":
			ns, err := strconv.ParseInt(f[1], 10, 64)
			rec.fullAt = time.Unix(0, ns)
			ok = ok && err == nil && f[2] == "-"
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
	if ok && rec.set != "" && (len(rec.dirs) > 0 || !rec.fullAt.IsZero()) && slices.IsSorted(rec.dirs) {
		c.rec = rec
	}
}

// spoolBase is the directory of a run's spools (bucketFiles): the cache
// file's name with ".spool", on the disk that already holds the cache
// (not a temporary file system that may be small), one per cache, so
// that a run removes what a killed run of its own left; os.TempDir ("")
// for a cache that forgets everything.
func (c *Checked) spoolBase() string {
	if c.path == "" {
		return ""
	}
	return c.path + ".spool"
}

// Close removes this run's journal without saving it (a dry run's, or
// after Save) and closes the cache file. The Checked is not used after.
func (c *Checked) Close() {
	c.journal.close()
	if c.file != nil {
		_ = c.file.Close() // only read
		c.file = nil
	}
}

// lineName is the name on a per-file line, "" if it has none.
func lineName(line []byte) string {
	return string(lineNameBytes(line))
}

// lineNameBytes is lineName pointing into line; nil for none.
func lineNameBytes(line []byte) []byte {
	for range 3 {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil
		}
		line = line[i+1:]
	}
	if len(line) == 0 {
		return nil
	}
	return line
}

// index finds each bucket's section of the file, once. A file out of
// order goes whole into the journal.
func (c *Checked) index() error {
	c.indexed.Do(func() {
		if c.file == nil {
			return
		}
		sr := io.NewSectionReader(c.file, c.body, 1<<62)
		br := bufio.NewReaderSize(sr, 256<<10)
		pos, prev, sorted := c.body, 0, true
		c.off[0] = c.body
		for {
			line, err := br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				c.idxErr = fmt.Errorf("verified-file cache %s: a line longer than %d bytes", c.path, br.Size())
				return
			}
			if len(line) > 0 && err == nil {
				if name := lineName(line[:len(line)-1]); name != "" {
					k := bucketOf(name)
					if k < prev {
						sorted = false
						break
					}
					for ; prev < k; prev++ {
						c.off[prev+1] = pos
					}
				}
				pos += int64(len(line))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				c.idxErr = fmt.Errorf("verified-file cache %s: %w", c.path, err)
				return
			}
		}
		if sorted {
			for k := prev + 1; k <= numBuckets; k++ {
				c.off[k] = pos
			}
			return
		}
		// An older version's file, in no order: every line to the journal.
		for k := range c.off {
			c.off[k] = c.body
		}
		br.Reset(io.NewSectionReader(c.file, c.body, 1<<62))
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 && err == nil {
				if name := lineName(line[:len(line)-1]); name != "" {
					if c.idxErr = c.journal.add(bucketOf(name), line); c.idxErr != nil {
						return
					}
				}
			}
			if err != nil {
				if err != io.EOF {
					c.idxErr = fmt.Errorf("verified-file cache %s: %w", c.path, err)
				}
				return
			}
		}
	})
	return c.idxErr
}

// preload finds the buckets in the background, for a run that will need
// them; an error stays in idxErr, for view.
func (c *Checked) preload() { go func() { _ = c.index() }() }

// view returns the stamps of bucket k: the file's section and this run's
// changes. A line it cannot read is left out (that file is then hashed
// again), never trusted.
func (c *Checked) view(k int) (map[string]stamp, error) { return c.viewNames(k, nil) }

// parseStamps reads per-file lines into m, later lines winning; "-name"
// removes name.
func parseStamps(data []byte, m map[string]stamp) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if name, ok := bytes.CutPrefix(line, []byte("-")); ok {
			delete(m, string(name))
			continue
		}
		if name, st, ok := parseStamp(line); ok {
			m[name] = st
		}
	}
}

// parseStamp reads one per-file line ("size mtime sha256 name"); ok false
// if it is not one.
func parseStamp(line []byte) (name string, st stamp, ok bool) {
	size, mtime, sum, n, ok := stampFields(line)
	if !ok {
		return "", stamp{}, false
	}
	return string(n), stamp{size, mtime, string(sum)}, true
}

// stampFields splits a per-file line ("size mtime sha256 name") into its
// fields, the sum and the name pointing into line, without allocating
// (Save keeps the lines as they are and only needs to know their names);
// ok false if it is not one.
func stampFields(line []byte) (size, mtime int64, sum, name []byte, ok bool) {
	var num [2]int64
	for i := range num {
		j := bytes.IndexByte(line, ' ')
		if j < 0 {
			return 0, 0, nil, nil, false
		}
		if num[i], ok = parseInt(line[:j]); !ok {
			return 0, 0, nil, nil, false
		}
		line = line[j+1:]
	}
	j := bytes.IndexByte(line, ' ')
	if j < 0 || j+1 == len(line) || !manifest.ValidSHA256(line[:j]) {
		return 0, 0, nil, nil, false
	}
	return num[0], num[1], line[:j], line[j+1:], true
}

// parseInt is strconv.ParseInt(string(b), 10, 64) without the conversion.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	const most = uint64(1) << 63 // the magnitude of math.MinInt64
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' || u > most/10 {
			return 0, false
		}
		if u = u*10 + uint64(c-'0'); u > most {
			return 0, false
		}
	}
	if neg {
		return -int64(u), true // (most wraps to math.MinInt64)
	}
	if u == most {
		return 0, false
	}
	return int64(u), true
}

// lookup returns the stamp of one name (loading its bucket).
func (c *Checked) lookup(name string) (stamp, bool, error) {
	m, err := c.view(bucketOf(name))
	if err != nil {
		return stamp{}, false, err
	}
	s, ok := m[name]
	return s, ok, nil
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
// cache directory (CacheFile(dst, ".checked")).
func DefaultCachePath(dst string) (string, error) { return CacheFile(dst, ".checked") }

// CacheFile is the file, ending in ext, that transfer keeps for key (a
// destination, a directory it verifies or waits for) under the user's cache
// directory: one per key and ext, named by a digest of key.
func CacheFile(key, ext string) (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sumString(key)
	return filepath.Join(dir, "squirro-bcp", "transfer", sum[:24]+ext), nil
}

// okStamp says whether s (found: ok) records name verified to have content
// sum with the size and time e shows.
func okStamp(s stamp, ok bool, e Entry, sum string) bool {
	return ok && s.sum == sum && s.size == e.Size && sameTime(s.mtime, e.ModTime.UnixNano())
}

// supersededStamp says whether the file e is, unchanged, the version
// verified there before (s, found: ok) with another SHA-256 than sum, the
// one the set now wants: the set changed, not the file (es/index.latest,
// which Elasticsearch rewrites with every snapshot).
func supersededStamp(s stamp, ok bool, e Entry, sum string) bool {
	return ok && s.sum != sum && s.size == e.Size && sameTime(s.mtime, e.ModTime.UnixNano())
}

// damagedStamp says whether a file at w's name that differs from what w
// wants is damage rather than an older version: the cache (s, found: ok)
// verified w's very content there, or, where it knows nothing of the name,
// the name is not one that a new set gives new content (only
// es/index.latest is). A name the cache verified with other content is an
// update.
func damagedStamp(s stamp, ok bool, w *want) bool {
	if ok {
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

func stampLine(b []byte, name string, s stamp) []byte {
	b = strconv.AppendInt(b, s.size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, s.mtime, 10)
	b = append(b, ' ')
	b = append(b, s.sum...)
	b = append(b, ' ')
	b = append(b, name...)
	return append(b, '\n')
}

// set remembers that name, as e shows it, was verified to have content sum.
// The caller compares with what the cache holds (view) first: set always
// marks the cache changed.
func (c *Checked) set(name string, e Entry, sum string) error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
	return c.journal.add(bucketOf(name), stampLine(nil, name, stamp{e.Size, e.ModTime.UnixNano(), sum}))
}

// drop forgets name.
func (c *Checked) drop(name string) error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	c.dirty = true
	c.mu.Unlock()
	return c.journal.add(bucketOf(name), []byte("-"+name+"\n"))
}

// Save writes the cache atomically if it changed: the record, then each
// bucket's stamps sorted by name.
func (c *Checked) Save() error {
	c.mu.Lock()
	dirty := c.dirty
	c.mu.Unlock()
	if c.path == "" || !dirty {
		return nil
	}
	if err := c.index(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	err := manifest.WriteAtomic(c.path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if r := rec; r != nil {
			fmt.Fprintf(bw, "@set %s %s %d\n", r.set, r.manifest, r.files)
			if !r.fullAt.IsZero() {
				fmt.Fprintf(bw, "@full %d -\n", r.fullAt.UnixNano())
			}
			for i, d := range r.dirs {
				fmt.Fprintf(bw, "@dir %x %s\n", r.digests[i], d)
			}
		}
		var line, out []byte
		for k := range numBuckets {
			var err error
			out, err = c.saveBucket(out[:0], k)
			if err == nil {
				bw.Write(out)
				continue
			}
			if !errors.Is(err, errUnsorted) {
				return err
			}
			m, err := c.view(k)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(m))
			for name := range m {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				line = stampLine(line[:0], name, m[name])
				bw.Write(line)
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	// What was written is now the file a further run reads.
	if c.file != nil {
		_ = c.file.Close() // only read
	}
	c.journal.close()
	c.file, c.body, c.off, c.idxErr, c.indexed = nil, 0, [numBuckets + 1]int64{}, nil, sync.Once{}
	rec = c.rec
	if err := c.open(); err != nil {
		return err
	}
	c.mu.Lock()
	c.rec, c.dirty = rec, false
	c.mu.Unlock()
	return nil
}
