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
// It also keeps, for every directory, the memo of its list
// (manifest.ListMemo: the digest of its lines and the list object), so
// that a directory whose lines did not change reuses its list object
// without encoding, hashing or storing it again. A memo is used only if
// its object is still in the store with its size (Capture checks), and
// backup uses a cache only while its set is published: that set holds the
// lists and files named in the cache, so prune has not removed them.
//
// File format (version 3): the line "bcp-capture-cache 3", a slot of
// cacheIDSlot bytes holding the set id padded with spaces and a newline
// (filled in by Save once the set is published), the root directory's
// memo slot (cacheMemoSlot bytes, written when the capture ends), then a
// record per file and per directory in walk order: the path length and
// path, a kind byte, and for a file ('f') its size, mtime in ns, inode
// (varints) and the 32-byte SHA-256; for a directory ('d') its memo slot,
// written once the directory's list is stored. A zero path length ends
// the file. A memo slot is a flag byte (1: set), the 32-byte digest of
// the lines, the list's 32-byte SHA-256 and its size (8 bytes, little
// endian). Version 2 (files only, no kind byte, no root slot) is still
// read: its files are reused, every list is encoded again.
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
	cacheMagic    = "bcp-capture-cache 3\n"
	cacheMagicV2  = "bcp-capture-cache 2\n"
	cacheIDSlot   = 64
	cacheMemoSlot = 1 + 2*sha256.Size + 8
	cacheHeaderV2 = len(cacheMagic) + cacheIDSlot + 1
	cacheHeader   = cacheHeaderV2 + cacheMemoSlot
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
	h, err := readCacheHeader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("capture cache %s: %w (delete it; the next run reads every file once)", file, err)
	}
	return &CaptureCache{SetID: h.id, file: file}, nil
}

// cacheHead is what a cache file starts with.
type cacheHead struct {
	id   string
	v2   bool               // version 2: file records only
	root *manifest.ListMemo // nil: none
}

func readCacheHeader(r *bufio.Reader) (cacheHead, error) {
	h := make([]byte, cacheHeaderV2)
	if _, err := io.ReadFull(r, h); err != nil || h[cacheHeaderV2-1] != '\n' {
		return cacheHead{}, errors.New("not a capture cache")
	}
	var c cacheHead
	switch string(h[:len(cacheMagic)]) {
	case cacheMagic:
		slot := make([]byte, cacheMemoSlot)
		if _, err := io.ReadFull(r, slot); err != nil {
			return cacheHead{}, errors.New("not a capture cache: truncated header")
		}
		c.root = decodeMemo(slot)
	case cacheMagicV2:
		c.v2 = true
	default:
		return cacheHead{}, errors.New("not a capture cache of a version this program reads")
	}
	c.id = strings.TrimRight(string(h[len(cacheMagic):cacheHeaderV2-1]), " ")
	return c, nil
}

// cacheIDBytes is the header's first part: magic, set id slot, newline.
func cacheIDBytes(id string) ([]byte, error) {
	if len(id) > cacheIDSlot || strings.ContainsAny(id, " \n") {
		return nil, fmt.Errorf("capture cache: set id %q does not fit", id)
	}
	h := []byte(cacheMagic + id + strings.Repeat(" ", cacheIDSlot-len(id)) + "\n")
	return h, nil
}

// encodeMemo fills a memo slot (m nil: an empty slot).
func encodeMemo(slot []byte, m *manifest.ListMemo) error {
	clear(slot)
	if m == nil {
		return nil
	}
	sum, err := hex.DecodeString(m.List.SHA256)
	if err != nil || len(sum) != sha256.Size || m.List.Size < 0 {
		return fmt.Errorf("capture cache: list %q is not a valid object", m.List.SHA256)
	}
	slot[0] = 1
	copy(slot[1:], m.Lines[:])
	copy(slot[1+sha256.Size:], sum)
	binary.LittleEndian.PutUint64(slot[1+2*sha256.Size:], uint64(m.List.Size))
	return nil
}

// decodeMemo reads a memo slot (nil: empty or not valid).
func decodeMemo(slot []byte) *manifest.ListMemo {
	if slot[0] != 1 {
		return nil
	}
	m := &manifest.ListMemo{List: manifest.Ref{
		SHA256: hex.EncodeToString(slot[1+sha256.Size : 1+2*sha256.Size]),
		Size:   int64(binary.LittleEndian.Uint64(slot[1+2*sha256.Size:])),
	}}
	copy(m.Lines[:], slot[1:1+sha256.Size])
	if m.List.Size < 0 || m.List.Size > manifest.MaxDirList {
		return nil
	}
	return m
}

// Save puts the cache at file (0600) with its SetID, atomically: the file
// Capture wrote is completed and renamed there when it can be, otherwise
// copied.
func (c *CaptureCache) Save(file string) error {
	h, err := cacheIDBytes(c.SetID)
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
	head := make([]byte, len(cacheMagic))
	if _, err := io.ReadFull(src, head); err != nil {
		return fmt.Errorf("capture cache: %w", err)
	}
	if string(head) == cacheMagicV2 { // a loaded version 2 cache keeps its version
		copy(h, cacheMagicV2)
	}
	if _, err := src.Seek(int64(len(h)), io.SeekStart); err != nil {
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
		_ = os.Remove(c.file)
	}
}

// cacheReader reads a cache's records for lookups in walk order. A
// damaged cache stops matching where the damage starts (err says why).
type cacheReader struct {
	f    *os.File
	r    *bufio.Reader
	head cacheHead
	done bool
	cur  string
	dir  bool               // cur is a directory
	e    CacheEntry         // cur's entry, a file
	memo *manifest.ListMemo // cur's memo, a directory (nil: none)
	buf  []byte
	sum  [sha256.Size]byte
	slot [cacheMemoSlot]byte
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
	if r.head, err = readCacheHeader(r.r); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("capture cache %s: %w", c.file, err)
	}
	r.next()
	return r, nil
}

func (r *cacheReader) close() {
	if r.f != nil {
		_ = r.f.Close()
	}
}

// rootMemo is the root directory's memo (nil: none).
func (r *cacheReader) rootMemo() *manifest.ListMemo { return r.head.root }

// next reads the next record.
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
	if uint64(cap(r.buf)) < l {
		r.buf = make([]byte, l, max(l, 256))
	}
	buf := r.buf[:l]
	if _, err = io.ReadFull(r.r, buf); err != nil {
		fail(err)
		return
	}
	kind := byte('f')
	if !r.head.v2 {
		if kind, err = r.r.ReadByte(); err != nil {
			fail(err)
			return
		}
	}
	switch kind {
	case 'f':
		if r.e.Size, err = binary.ReadVarint(r.r); err == nil {
			if r.e.MTimeNs, err = binary.ReadVarint(r.r); err == nil {
				if r.e.Inode, err = binary.ReadUvarint(r.r); err == nil {
					_, err = io.ReadFull(r.r, r.sum[:])
				}
			}
		}
		if err != nil {
			fail(err)
			return
		}
		r.dir, r.e.Object, r.memo = false, hex.EncodeToString(r.sum[:]), nil
	case 'd':
		if _, err := io.ReadFull(r.r, r.slot[:]); err != nil {
			fail(err)
			return
		}
		r.dir, r.e, r.memo = true, CacheEntry{}, decodeMemo(r.slot[:])
	default:
		fail(fmt.Errorf("unknown record kind %q", kind))
		return
	}
	if r.cur != string(buf) {
		r.cur = string(buf)
	}
}

// seek moves to the record of path p or past it; calls come in walk
// order. It reports whether the current record is p's.
func (r *cacheReader) seek(p string) bool {
	for !r.done && manifest.ComparePaths(r.cur, p) < 0 {
		r.next()
	}
	return !r.done && r.cur == p
}

// lookup returns the entry of file p; calls come in walk order.
func (r *cacheReader) lookup(p string) (CacheEntry, bool) {
	if r.seek(p) && !r.dir {
		return r.e, true
	}
	return CacheEntry{}, false
}

// lookupDir returns the memo of directory p's list (nil: none).
func (r *cacheReader) lookupDir(p string) *manifest.ListMemo {
	if r.seek(p) && r.dir {
		return r.memo
	}
	return nil
}

// cacheWriter writes the next cache during the walk, in walk order. A
// directory's record gets its memo when its list is known, after the
// records below it: the writer keeps its own buffer so that the slot can
// be filled in there or, once written out, in the file.
type cacheWriter struct {
	f    *os.File
	buf  []byte
	off  int64 // file offset of buf[0]
	err  error
	open []openSlot // directories written whose memo is not known yet
	root *manifest.ListMemo
	slot [cacheMemoSlot]byte
}

type openSlot struct {
	path string
	at   int64
}

const cacheWriteBuf = 256 << 10

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
	w := &cacheWriter{f: f, buf: make([]byte, 0, cacheWriteBuf+4096)}
	h, _ := cacheIDBytes("")
	w.buf = append(w.buf, h...)
	w.buf = append(w.buf, make([]byte, cacheMemoSlot)...)
	return w, nil
}

func (w *cacheWriter) flushIfFull() {
	if len(w.buf) < cacheWriteBuf || w.err != nil {
		return
	}
	w.flush()
}

func (w *cacheWriter) flush() {
	if w.err != nil {
		return
	}
	if _, err := w.f.Write(w.buf); err != nil {
		w.err = err
	}
	w.off += int64(len(w.buf))
	w.buf = w.buf[:0]
}

func (w *cacheWriter) path(p string) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(p)))
	w.buf = append(w.buf, p...)
}

func (w *cacheWriter) add(p string, e CacheEntry) error {
	sum, err := hex.DecodeString(e.Object)
	if err != nil || len(sum) != sha256.Size || p == "" {
		return fmt.Errorf("capture cache: entry %q has no valid object name", p)
	}
	w.path(p)
	w.buf = append(w.buf, 'f')
	w.buf = binary.AppendVarint(w.buf, e.Size)
	w.buf = binary.AppendVarint(w.buf, e.MTimeNs)
	w.buf = binary.AppendUvarint(w.buf, e.Inode)
	w.buf = append(w.buf, sum...)
	w.flushIfFull()
	return w.err
}

// addDir writes directory p's record; its memo follows with setMemo.
func (w *cacheWriter) addDir(p string) error {
	if p == "" {
		return errors.New("capture cache: a directory without a name")
	}
	w.path(p)
	w.buf = append(w.buf, 'd')
	w.open = append(w.open, openSlot{path: p, at: w.off + int64(len(w.buf))})
	w.buf = append(w.buf, make([]byte, cacheMemoSlot)...)
	w.flushIfFull()
	return w.err
}

// setMemo fills in directory dir's memo ("" is the root). Directories end
// innermost first, so dir is the last one added and still open.
func (w *cacheWriter) setMemo(dir string, m manifest.ListMemo) error {
	if w.err != nil {
		return w.err
	}
	if dir == "" {
		w.root = &m
		return nil
	}
	n := len(w.open)
	if n == 0 || w.open[n-1].path != dir {
		return fmt.Errorf("capture cache: the list of %q ends out of walk order", dir)
	}
	at := w.open[n-1].at
	w.open = w.open[:n-1]
	if err := encodeMemo(w.slot[:], &m); err != nil {
		return err
	}
	if at >= w.off {
		copy(w.buf[at-w.off:], w.slot[:])
		return nil
	}
	if _, err := w.f.WriteAt(w.slot[:], at); err != nil {
		w.err = err
	}
	return w.err
}

// finish ends the file and returns it as a cache to Save (or to give the
// next Capture as it is).
func (w *cacheWriter) finish() (*CaptureCache, error) {
	w.buf = binary.AppendUvarint(w.buf, 0)
	w.flush()
	err := w.err
	if err == nil && w.root != nil {
		if err = encodeMemo(w.slot[:], w.root); err == nil {
			_, err = w.f.WriteAt(w.slot[:], int64(cacheHeaderV2))
		}
	}
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
		_ = w.f.Close()
		_ = os.Remove(w.f.Name())
	}
}
