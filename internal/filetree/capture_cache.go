package filetree

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// CaptureCache is the identity and object of every file a capture saw,
// kept in a file in walk order (manifest.ComparePaths), so that the next
// capture reads it alongside its walk, as a merge, and writes its own
// beside it as it goes: neither is held in memory.
//
// File format (version 2): the line "bcp-capture-cache 2", a slot of
// cacheIDSlot bytes holding the set id padded with spaces and a newline
// (filled in by Save once the set is published), then per file the path
// length and path, size, mtime in ns, inode (varints) and the 32-byte
// SHA-256, in walk order, then a zero path length that ends the file.
type CaptureCache struct {
	SetID string // the set the cache was made for ("" until published)
	file  string
	temp  bool // file is the one Capture wrote, not saved yet
}

// CacheEntry is one file's identity and object.
type CacheEntry struct {
	Size    int64
	MTimeNs int64
	Inode   uint64
	Object  string
}

const (
	cacheMagic  = "bcp-capture-cache 2\n"
	cacheIDSlot = 64
	cacheHeader = len(cacheMagic) + cacheIDSlot + 1
)

// cacheTempPattern names the next cache while a capture writes it.
const cacheTempPattern = manifest.TempPrefix + "capture-cache-*"

// RemoveStaleCacheTemps removes, in dir (a backup's state dir), the caches
// that captures left half-written when they were killed: those not
// modified for olderThan. A capture running meanwhile writes its own
// continuously, so it is never taken for stale. It returns what it removed.
func RemoveStaleCacheTemps(dir string, olderThan time.Duration) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, cacheTempPattern))
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		fi, err := os.Lstat(n)
		if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove stale capture cache %s: %w", n, err)
		}
		removed = append(removed, n)
	}
	return removed, nil
}

// LoadCaptureCache opens a cache file and reads its set id; a missing file
// gives (nil, nil). Its entries are read by the next Capture.
func LoadCaptureCache(file string) (*CaptureCache, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	id, err := readCacheHeader(f)
	if err != nil {
		return nil, fmt.Errorf("capture cache %s: %w (delete it; the next run reads every file once)", file, err)
	}
	return &CaptureCache{SetID: id, file: file}, nil
}

func readCacheHeader(r io.Reader) (string, error) {
	h := make([]byte, cacheHeader)
	if _, err := io.ReadFull(r, h); err != nil || string(h[:len(cacheMagic)]) != cacheMagic || h[cacheHeader-1] != '\n' {
		return "", errors.New("not a capture cache of this version")
	}
	return strings.TrimRight(string(h[len(cacheMagic):cacheHeader-1]), " "), nil
}

func cacheHeaderBytes(id string) ([]byte, error) {
	if len(id) > cacheIDSlot || strings.ContainsAny(id, " \n") {
		return nil, fmt.Errorf("capture cache: set id %q does not fit", id)
	}
	h := []byte(cacheMagic + id + strings.Repeat(" ", cacheIDSlot-len(id)) + "\n")
	return h, nil
}

// Save puts the cache at file (0600) with its SetID, atomically: the file
// Capture wrote is completed and renamed there when it can be, otherwise
// copied.
func (c *CaptureCache) Save(file string) error {
	h, err := cacheHeaderBytes(c.SetID)
	if err != nil {
		return err
	}
	if c.temp && filepath.Dir(c.file) == filepath.Dir(file) {
		f, err := os.OpenFile(c.file, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("capture cache: %w", err)
		}
		_, err = f.WriteAt(h, 0)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(c.file, file)
		}
		if err != nil {
			return fmt.Errorf("capture cache: save %s: %w", file, err)
		}
		c.file, c.temp = file, false
		return manifest.SyncDir(filepath.Dir(file))
	}
	src, err := os.Open(c.file)
	if err != nil {
		return fmt.Errorf("capture cache: %w", err)
	}
	defer src.Close()
	if _, err := src.Seek(int64(cacheHeader), io.SeekStart); err != nil {
		return fmt.Errorf("capture cache: %w", err)
	}
	return manifest.WriteAtomic(file, 0o600, func(w io.Writer) error {
		if _, err := w.Write(h); err != nil {
			return err
		}
		_, err := io.Copy(w, src)
		return err
	})
}

// Remove deletes a cache that Capture wrote and that will not be saved
// (the set was not published). A saved or loaded cache is left alone.
func (c *CaptureCache) Remove() {
	if c != nil && c.temp {
		os.Remove(c.file)
	}
}

// cacheReader reads a cache's entries for lookups in walk order. A
// damaged cache stops matching where the damage starts (err says why).
type cacheReader struct {
	f    *os.File
	r    *bufio.Reader
	done bool
	cur  string
	e    CacheEntry
	err  error
}

// openCacheReader opens c (nil: a reader that matches nothing).
func openCacheReader(c *CaptureCache) (*cacheReader, error) {
	if c == nil {
		return &cacheReader{done: true}, nil
	}
	f, err := os.Open(c.file)
	if err != nil {
		return nil, fmt.Errorf("capture cache: %w", err)
	}
	r := &cacheReader{f: f, r: bufio.NewReaderSize(f, 256<<10)}
	if _, err := readCacheHeader(r.r); err != nil {
		f.Close()
		return nil, fmt.Errorf("capture cache %s: %w", c.file, err)
	}
	r.next()
	return r, nil
}

func (r *cacheReader) close() {
	if r.f != nil {
		r.f.Close()
	}
}

// next reads the next entry into cur and e.
func (r *cacheReader) next() {
	if r.done {
		return
	}
	fail := func(err error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.err, r.done = fmt.Errorf("capture cache %s after %q: %w", r.f.Name(), r.cur, err), true
	}
	l, err := binary.ReadUvarint(r.r)
	if err != nil || l > manifest.MaxPathLen {
		fail(errors.Join(err, errors.New("bad path length")))
		return
	}
	if l == 0 {
		r.done = true
		return
	}
	buf := make([]byte, l)
	var sum [sha256.Size]byte
	if _, err = io.ReadFull(r.r, buf); err == nil {
		if r.e.Size, err = binary.ReadVarint(r.r); err == nil {
			if r.e.MTimeNs, err = binary.ReadVarint(r.r); err == nil {
				if r.e.Inode, err = binary.ReadUvarint(r.r); err == nil {
					_, err = io.ReadFull(r.r, sum[:])
				}
			}
		}
	}
	if err != nil {
		fail(err)
		return
	}
	r.cur, r.e.Object = string(buf), hex.EncodeToString(sum[:])
}

// lookup returns the entry of path p; calls come in walk order.
func (r *cacheReader) lookup(p string) (CacheEntry, bool) {
	for !r.done && manifest.ComparePaths(r.cur, p) < 0 {
		r.next()
	}
	if !r.done && r.cur == p {
		return r.e, true
	}
	return CacheEntry{}, false
}

// cacheWriter writes the next cache during the walk, in walk order.
type cacheWriter struct {
	f   *os.File
	w   *bufio.Writer
	tmp [binary.MaxVarintLen64]byte
}

func newCacheWriter(dir string) (*cacheWriter, error) {
	if dir == "" {
		dir = os.TempDir()
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture cache: %w", err)
	}
	f, err := os.CreateTemp(dir, cacheTempPattern)
	if err != nil {
		return nil, fmt.Errorf("capture cache: %w", err)
	}
	w := &cacheWriter{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	h, _ := cacheHeaderBytes("")
	w.w.Write(h)
	return w, nil
}

func (w *cacheWriter) varint(v int64)   { w.w.Write(w.tmp[:binary.PutVarint(w.tmp[:], v)]) }
func (w *cacheWriter) uvarint(v uint64) { w.w.Write(w.tmp[:binary.PutUvarint(w.tmp[:], v)]) }

func (w *cacheWriter) add(p string, e CacheEntry) error {
	sum, err := hex.DecodeString(e.Object)
	if err != nil || len(sum) != sha256.Size || p == "" {
		return fmt.Errorf("capture cache: entry %q has no valid object name", p)
	}
	w.uvarint(uint64(len(p)))
	w.w.WriteString(p)
	w.varint(e.Size)
	w.varint(e.MTimeNs)
	w.uvarint(e.Inode)
	_, err = w.w.Write(sum)
	return err
}

// finish ends the file and returns it as a cache to Save (or to give the
// next Capture as it is).
func (w *cacheWriter) finish() (*CaptureCache, error) {
	w.uvarint(0)
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("capture cache: write %s: %w", w.f.Name(), err)
	}
	c := &CaptureCache{file: w.f.Name(), temp: true}
	w.f = nil
	return c, nil
}

// abort removes the file unless finish returned it.
func (w *cacheWriter) abort() {
	if w.f != nil {
		w.f.Close()
		os.Remove(w.f.Name())
	}
}
