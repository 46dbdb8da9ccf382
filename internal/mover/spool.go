package mover

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// numBuckets is how many parts a set's files, the plan of a copy and the
// verified-file cache are split into on disk: one per objects/<aa>
// directory. A run works on one bucket at a time (a few at once), so its
// memory is that of a few object directories, not of every file.
const numBuckets = 256

// bucketOf is the bucket of a channel-relative file name: aa for
// objects/<aa>/..., and for any other name a hash of its directory, so that
// every file of one directory is in one bucket and a bucket's files can be
// compared with one listing of each of its directories.
func bucketOf(name string) int {
	if len(name) > 11 && name[10] == '/' && strings.HasPrefix(name, manifest.ObjectsDirName+"/") {
		var b [1]byte
		if _, err := hex.Decode(b[:], []byte(name[8:10])); err == nil && strings.ToLower(name[8:10]) == name[8:10] {
			return int(b[0])
		}
	}
	// FNV-1a of the directory.
	h := uint32(2166136261)
	for _, c := range []byte(dirOf(name)) {
		h ^= uint32(c)
		h *= 16777619
	}
	return int(h % numBuckets)
}

// spoolHeld is how many bytes a bucketFiles keeps in memory before it
// appends them to its files.
const spoolHeld = 4 << 20

// bucketFiles is a list of records split into numBuckets parts, each kept
// in memory until spoolHeld bytes are held in all, then appended to a file
// of its own in a temporary directory (newSpoolDir). Safe for concurrent
// use.
type bucketFiles struct {
	base string // where the temporary directory goes ("" is os.TempDir)
	mu   sync.Mutex
	dir  string   // created on the first spill
	lock *os.File // dir, open and locked while in use (newSpoolDir)
	buf  [numBuckets][]byte
	held int
	disk [numBuckets]bool // the bucket has a file
	n    [numBuckets]int  // records added
}

// add appends one record to bucket k.
func (b *bucketFiles) add(k int, rec []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf[k] = append(b.buf[k], rec...)
	b.n[k]++
	b.held += len(rec)
	if b.held > spoolHeld {
		return b.spillLocked()
	}
	return nil
}

func (b *bucketFiles) path(k int) string { return filepath.Join(b.dir, fmt.Sprintf("%02x", k)) }

// spillLocked appends what is held to the buckets' files.
func (b *bucketFiles) spillLocked() error {
	if err := b.mkdirLocked(); err != nil {
		return err
	}
	for k := range b.buf {
		if len(b.buf[k]) == 0 {
			continue
		}
		f, err := os.OpenFile(b.path(k), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("spool to disk: %w", err)
		}
		_, err = f.Write(b.buf[k])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("spool to disk: %w", err)
		}
		b.disk[k] = true
		b.buf[k] = nil // what is held stays under spoolHeld, not 256 buffers' capacity
	}
	b.held = 0
	return nil
}

func (b *bucketFiles) mkdirLocked() error {
	if b.dir == "" {
		dir, lock, err := newSpoolDir(b.base)
		if err != nil {
			return fmt.Errorf("spool to disk: %w", err)
		}
		b.dir, b.lock = dir, lock
	}
	return nil
}

// spoolPrefix begins the name of every spool directory.
const spoolPrefix = "transfer-spool-"

// newSpoolDir creates a spool directory under base (os.TempDir if ""),
// open and locked (lockSpool) for as long as it is in use, so that
// removeStaleSpools in another run leaves it alone.
func newSpoolDir(base string) (string, *os.File, error) {
	if base != "" {
		if err := os.MkdirAll(base, 0o700); err != nil {
			return "", nil, err
		}
	}
	for {
		dir, err := os.MkdirTemp(base, spoolPrefix)
		if err != nil {
			return "", nil, err
		}
		d, err := os.Open(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			_ = os.Remove(dir) // empty, not used
			return "", nil, err
		}
		lockSpool(d, true)
		// Another run may have found it unlocked, and so stale, between
		// MkdirTemp and the lock, and removed it: it is ours only if the
		// name still holds the directory we locked.
		di, err1 := d.Stat()
		ni, err2 := os.Stat(dir)
		if err1 == nil && err2 == nil && os.SameFile(di, ni) {
			return dir, d, nil
		}
		_ = d.Close() // only read
	}
}

// removeStaleSpools removes the spool directories under base (os.TempDir
// if "") that no run holds (lockSpool): those of a run that was killed.
// Only those last changed at least minAge ago are looked at (in the shared
// temporary directory, where an older version's running push keeps its
// spools without a lock).
func removeStaleSpools(base string, minAge time.Duration) {
	dir := base
	if dir == "" {
		dir = os.TempDir()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // none yet, or not ours to clean: each run still removes its own
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), spoolPrefix) {
			continue
		}
		if minAge > 0 {
			if info, err := e.Info(); err != nil || time.Since(info.ModTime()) < minAge {
				continue
			}
		}
		p := filepath.Join(dir, e.Name())
		d, err := os.Open(p)
		if err != nil {
			continue
		}
		if lockSpool(d, false) {
			_ = os.RemoveAll(p) // what is left is tried again by the next run
		}
		_ = d.Close() // only read
	}
}

// read returns every record of bucket k, in the order added.
func (b *bucketFiles) read(k int) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var data []byte
	if b.disk[k] {
		d, err := os.ReadFile(b.path(k))
		if err != nil {
			return nil, fmt.Errorf("read spool: %w", err)
		}
		data = d
	}
	return append(data, b.buf[k]...), nil
}

// replace makes data the whole of bucket k (n records): written to its
// file at once unless it is small.
func (b *bucketFiles) replace(k int, data []byte, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= len(b.buf[k])
	b.buf[k], b.n[k] = nil, n
	if len(data) <= 4<<10 {
		if b.disk[k] {
			if err := os.Remove(b.path(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("spool: %w", err)
			}
			b.disk[k] = false
		}
		b.buf[k] = append([]byte(nil), data...)
		b.held += len(data)
		if b.held > spoolHeld {
			return b.spillLocked()
		}
		return nil
	}
	if err := b.mkdirLocked(); err != nil {
		return err
	}
	if err := os.WriteFile(b.path(k), data, 0o600); err != nil {
		return fmt.Errorf("spool to disk: %w", err)
	}
	b.disk[k] = true
	return nil
}

// count is how many records bucket k holds.
func (b *bucketFiles) count(k int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n[k]
}

// close removes the files.
func (b *bucketFiles) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir) // what is left is removed by a later run (removeStaleSpools)
		_ = b.lock.Close()      // only read
		b.dir, b.lock = "", nil
	}
	b.buf, b.held, b.disk, b.n = [numBuckets][]byte{}, 0, [numBuckets]bool{}, [numBuckets]int{}
}

// Record classes of a bucketFiles holding wants.
const (
	classFile    = 'f' // a file the set needs (the set's spool)
	classTodo    = 'T' // to copy
	classCheck   = 'C' // present with its size, to hash; a difference is an update
	classDamaged = 'D' // present with its size, to hash; a difference is damage
	classOK      = 'K' // hashed at the destination and found intact
)

// appendWant encodes w (phase data, content not held) with its class: the
// class, a kind ('o' an object, whose name is its SHA-256's; 'n' named),
// the raw SHA-256, the size, and for 'n' the name.
func appendWant(b []byte, class byte, w *want) []byte {
	// A malformed sum decodes short, matches no content and fails the copy
	// as corrupt.
	sum := decodeSum(w.sum)
	kind := byte('n')
	if isObjectRel(w.name, w.sum) {
		kind = 'o'
	}
	b = append(b, class, kind)
	b = append(b, sum[:]...)
	b = binary.AppendUvarint(b, uint64(w.size))
	if kind == 'n' {
		b = binary.AppendUvarint(b, uint64(len(w.name)))
		b = append(b, w.name...)
	}
	return b
}

// decodeSum decodes a SHA-256 sum in hex as hex.Decode does, without
// allocating (a spool record is written for every file of a set): what
// does not decode, and what is missing, stays zero.
func decodeSum(s string) (sum [32]byte) {
	var buf [64]byte
	n := copy(buf[:], s)
	_, _ = hex.Decode(sum[:], buf[:n&^1])
	return sum
}

// isObjectRel says whether name is manifest.ObjectRel(sum), without
// building it.
func isObjectRel(name, sum string) bool {
	rest, ok := strings.CutPrefix(name, manifest.ObjectsDirName+"/")
	if !ok {
		return false
	}
	if len(sum) < 2 {
		return rest == sum
	}
	return len(rest) == 3+len(sum) && rest[:2] == sum[:2] && rest[2] == '/' && rest[3:] == sum
}

var errBadSpool = errors.New("spool record damaged")

// decodeWants calls fn with each record of data.
func decodeWants(data []byte, fn func(class byte, w *want) error) error {
	for len(data) > 0 {
		if len(data) < 34 {
			return errBadSpool
		}
		class, kind := data[0], data[1]
		w := &want{sum: hex.EncodeToString(data[2:34]), phase: phaseData}
		data = data[34:]
		size, n := binary.Uvarint(data)
		if n <= 0 {
			return errBadSpool
		}
		w.size, data = int64(size), data[n:]
		switch kind {
		case 'o':
			w.name = manifest.ObjectRel(w.sum)
		case 'n':
			l, n := binary.Uvarint(data)
			if n <= 0 || uint64(len(data)-n) < l {
				return errBadSpool
			}
			w.name, data = string(data[n:n+int(l)]), data[n+int(l):]
		default:
			return errBadSpool
		}
		if err := fn(class, w); err != nil {
			return err
		}
	}
	return nil
}

// classed is a want with its class in a plan.
type classed struct {
	class byte
	w     *want
}

// readBucket returns bucket k's records sorted by name; of records with
// the same name the last added is kept (what a map by name would keep).
func readBucket(b *bucketFiles, k int) ([]classed, error) {
	data, err := b.read(k)
	if err != nil {
		return nil, err
	}
	var out []classed
	if err := decodeWants(data, func(class byte, w *want) error {
		out = append(out, classed{class, w})
		return nil
	}); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b classed) int { return cmp.Compare(a.w.name, b.w.name) })
	j := 0
	for i := range out {
		if j > 0 && out[j-1].w.name == out[i].w.name {
			out[j-1] = out[i]
			continue
		}
		out[j] = out[i]
		j++
	}
	return out[:j], nil
}
