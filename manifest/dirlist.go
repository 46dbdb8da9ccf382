package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Format 2.0 lists a file tree per directory (DESIGN.md, "Trees listed per
// directory"): every directory, the root included, has one list object, a
// zstd frame of JSON Lines of DirEntry sorted by name, and each
// subdirectory's line names that subdirectory's list (Tree). Objects are
// addressed by their compressed bytes, so `sha256sum` checks them; a
// directory whose content did not change gives the same bytes, hence the
// same object, and a set adds only the lists of the directories on changed
// paths.

// MaxDirList bounds one directory list, compressed and uncompressed: a
// reader holds one directory's list at a time per level of depth.
const MaxDirList = 256 << 20

// DirEntry is one line of a directory list (format 2.0): an Entry of the
// directory, named by its last path element, and for a subdirectory the
// reference of its own list.
type DirEntry struct {
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Mode   uint32    `json:"mode"`
	UID    int       `json:"uid"`
	GID    int       `json:"gid"`
	User   string    `json:"user,omitempty"`
	Group  string    `json:"group,omitempty"`
	MTime  time.Time `json:"mtime"`
	Size   int64     `json:"size,omitempty"`
	Object string    `json:"object,omitempty"`
	Target string    `json:"target,omitempty"`
	// Tree is, for a dir, the reference of its list object.
	Tree *Ref `json:"tree,omitempty"`
}

func (d *DirEntry) entry(dir string) Entry {
	p := d.Name
	if dir != "" {
		p = dir + "/" + d.Name
	}
	return Entry{Path: p, Type: d.Type, Mode: d.Mode, UID: d.UID, GID: d.GID, User: d.User, Group: d.Group,
		MTime: d.MTime, Size: d.Size, Object: d.Object, Target: d.Target}
}

func dirEntryOf(e Entry) DirEntry {
	return DirEntry{Name: path.Base(e.Path), Type: e.Type, Mode: e.Mode, UID: e.UID, GID: e.GID, User: e.User, Group: e.Group,
		MTime: e.MTime.UTC(), Size: e.Size, Object: e.Object, Target: e.Target}
}

// validate checks a line read from a list of directory dir.
func (d *DirEntry) validate(dir string) error {
	if d.Name == "" || strings.Contains(d.Name, "/") {
		return fmt.Errorf("directory %q: name %q: want one path element: %w", dir, d.Name, ErrInvalid)
	}
	e := d.entry(dir)
	if err := e.Validate(); err != nil {
		return err
	}
	if (d.Type == TypeDir) != (d.Tree != nil) {
		return fmt.Errorf("entry %q: a dir, and only a dir, names its list (tree): %w", e.Path, ErrInvalid)
	}
	if d.Tree != nil {
		if err := d.Tree.Validate(); err != nil {
			return fmt.Errorf("entry %q: tree: %w", e.Path, err)
		}
	}
	return nil
}

var (
	// One encoder and decoder for everything (EncodeAll and DecodeAll are
	// safe for concurrent use). The encoder's output depends only on its
	// input and these settings, so an unchanged directory gives the same
	// object.
	dirEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	dirDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(MaxDirList), zstd.WithDecoderMaxWindow(8<<20))
)

// TreeWriter builds a 2.0 tree from entries given in walk order, as
// ListWriter takes them: it keeps the lines of the directories enclosing the
// last entry (one list per level of depth, never the whole tree), and when a
// directory ends, stores its list (compressed) through the Putter and puts
// the reference into the parent's line.
type TreeWriter struct {
	ctx   context.Context
	p     Putter
	shape TreeShape
	last  string
	n     int64
	stack []*openDir // root first
	enc   []byte     // a directory's lines, encoded for LinesDigest

	// Reusable, if set, says whether the list object of a memo given to
	// WriteEntryMemo or SetRootMemo may be used as it is (it must still be
	// there, with its size). Without it no memo is used.
	Reusable func(Ref) bool
	// OnList, if set, is called when a directory's list is known (stored
	// or reused), innermost first, with the memo to give the next writer.
	OnList func(dir string, m ListMemo) error

	files, bytes, dirs int64
	// Lists counts the directory lists stored or reused, ListBytes their
	// size; Reused counts those taken from a memo (not encoded, not stored).
	Lists, ListBytes, Reused int64
}

type openDir struct {
	path  string
	lines []DirEntry
	memo  *ListMemo
	buf   bytes.Buffer
}

// ListMemo remembers a directory list: the digest of its lines
// (LinesDigest) and the reference of its list object. A directory whose
// lines have the same digest has the same list, so a writer given the memo
// reuses the object without encoding, hashing or storing the list again.
type ListMemo struct {
	Lines [sha256.Size]byte
	List  Ref
}

// linesVersion starts the encoding LinesDigest hashes. Change it whenever
// DirEntry or the list's encoding (JSON, zstd settings) changes in a way
// that lines with the same digest could give another list.
const linesVersion = "bcp-dir-lines 1\n"

// LinesDigest is the SHA-256 of an unambiguous binary encoding of a
// directory's lines (every field of DirEntry, each length-prefixed, the
// mtime as UTC seconds and nanoseconds, which is what its JSON says).
func LinesDigest(lines []DirEntry) [sha256.Size]byte {
	return sha256.Sum256(appendLines(nil, lines))
}

func appendLines(b []byte, lines []DirEntry) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, linesVersion...)
	for i := range lines {
		d := &lines[i]
		str(d.Name)
		str(d.Type)
		b = binary.AppendUvarint(b, uint64(d.Mode))
		b = binary.AppendVarint(b, int64(d.UID))
		b = binary.AppendVarint(b, int64(d.GID))
		str(d.User)
		str(d.Group)
		t := d.MTime.UTC()
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
		b = binary.AppendVarint(b, d.Size)
		str(d.Object)
		str(d.Target)
		if d.Tree == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			str(d.Tree.SHA256)
			b = binary.AppendVarint(b, d.Tree.Size)
		}
	}
	return b
}

// NewTreeWriter returns a writer storing lists in p.
func NewTreeWriter(ctx context.Context, p Putter) *TreeWriter {
	return &TreeWriter{ctx: ctx, p: p, stack: []*openDir{{}}}
}

// WriteEntry appends the next entry in walk order.
func (tw *TreeWriter) WriteEntry(e Entry) error { return tw.WriteEntryMemo(e, nil) }

// SetRootMemo gives the memo of the root directory's list (nil: none).
func (tw *TreeWriter) SetRootMemo(m *ListMemo) { tw.stack[0].memo = m }

// WriteEntryMemo appends the next entry in walk order; for a directory,
// memo (if not nil) is what its list was in the last tree written.
func (tw *TreeWriter) WriteEntryMemo(e Entry, memo *ListMemo) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if tw.n > 0 && ComparePaths(tw.last, e.Path) >= 0 {
		return fmt.Errorf("tree writer: %q after %q: paths must be strictly increasing (manifest.ComparePaths order, no duplicates): %w", e.Path, tw.last, ErrInvalid)
	}
	if err := tw.shape.Check(e); err != nil {
		return err
	}
	parent := path.Dir(e.Path)
	if parent == "." {
		parent = ""
	}
	for tw.stack[len(tw.stack)-1].path != parent {
		if err := tw.pop(); err != nil {
			return err
		}
	}
	top := tw.stack[len(tw.stack)-1]
	top.lines = append(top.lines, dirEntryOf(e))
	if e.Type == TypeDir {
		tw.stack = append(tw.stack, &openDir{path: e.Path, memo: memo})
	}
	tw.last = e.Path
	tw.n++
	switch e.Type {
	case TypeFile:
		tw.files++
		tw.bytes += e.Size
	case TypeDir:
		tw.dirs++
	}
	return nil
}

// pop stores the innermost open directory's list.
func (tw *TreeWriter) pop() error {
	d := tw.stack[len(tw.stack)-1]
	ref, err := tw.store(d)
	if err != nil {
		return err
	}
	tw.stack = tw.stack[:len(tw.stack)-1]
	parent := tw.stack[len(tw.stack)-1]
	parent.lines[len(parent.lines)-1].Tree = &ref
	return nil
}

func (tw *TreeWriter) store(d *openDir) (Ref, error) {
	if tw.OnList == nil && (d.memo == nil || tw.Reusable == nil) {
		return tw.encode(d)
	}
	tw.enc = appendLines(tw.enc[:0], d.lines)
	m := ListMemo{Lines: sha256.Sum256(tw.enc)}
	if d.memo != nil && d.memo.Lines == m.Lines && tw.Reusable != nil && tw.Reusable(d.memo.List) {
		m.List = d.memo.List
		tw.Lists++
		tw.ListBytes += m.List.Size
		tw.Reused++
	} else {
		ref, err := tw.encode(d)
		if err != nil {
			return Ref{}, err
		}
		m.List = ref
	}
	if tw.OnList != nil {
		if err := tw.OnList(d.path, m); err != nil {
			return Ref{}, err
		}
	}
	return m.List, nil
}

// encode encodes, compresses and stores d's list.
func (tw *TreeWriter) encode(d *openDir) (Ref, error) {
	d.buf.Reset()
	enc := json.NewEncoder(&d.buf)
	enc.SetEscapeHTML(false)
	for i := range d.lines {
		start := d.buf.Len()
		if err := enc.Encode(&d.lines[i]); err != nil {
			return Ref{}, err
		}
		if d.buf.Len()-start > MaxListLine {
			return Ref{}, fmt.Errorf("tree writer: line for %q in %q is longer than %d bytes: %w", d.lines[i].Name, d.path, MaxListLine, ErrInvalid)
		}
	}
	if d.buf.Len() > MaxDirList {
		return Ref{}, fmt.Errorf("tree writer: the list of directory %q is %d bytes, more than %d: %w", d.path, d.buf.Len(), MaxDirList, ErrInvalid)
	}
	z := dirEncoder.EncodeAll(d.buf.Bytes(), nil)
	ref, err := tw.p.Put(tw.ctx, bytes.NewReader(z))
	if err != nil {
		return Ref{}, fmt.Errorf("store list of directory %q: %w", d.path, err)
	}
	tw.Lists++
	tw.ListBytes += ref.Size
	return ref, nil
}

// Close stores the lists still open and returns the root's.
func (tw *TreeWriter) Close() (Ref, error) {
	for len(tw.stack) > 1 {
		if err := tw.pop(); err != nil {
			return Ref{}, err
		}
	}
	return tw.store(tw.stack[0])
}

// Tree stores the lists still open and returns the 2.0 tree: its root
// list, and the number of files, their bytes and the directories written.
func (tw *TreeWriter) Tree(name, root string) (Tree, error) {
	ref, err := tw.Close()
	if err != nil {
		return Tree{}, err
	}
	return Tree{Name: name, Root: root, Dir: ref, Files: tw.files, Bytes: tw.bytes, Dirs: tw.dirs}, nil
}

// Count is the number of entries written.
func (tw *TreeWriter) Count() int64 { return tw.n }

// TreeReader streams a tree's entries, 1.x (one list) or 2.0 (a list per
// directory), in walk order.
type TreeReader struct {
	// Open opens an object (a list) by reference; an error wrapping
	// fs.ErrNotExist means it is missing.
	Open func(ref Ref) (io.ReadCloser, error)
	// List, if set, is called with every list object of the tree (for a
	// 2.0 tree, every directory's list) before its lines are used: a 2.0
	// list once it was read and its hash checked, a 1.x list before it is
	// streamed.
	List func(ref Ref) error
}

// Walk calls fn for every entry of t in walk order (ComparePaths), checking
// what ReadEntries checks. Every list's size and SHA-256 are checked before
// its lines are used (a 1.x list, read as a stream, at its end): a mismatch
// wraps ErrCorrupt, a missing list ErrIncomplete, a malformed one
// ErrInvalid. Memory: a 2.0 tree holds the lists of the directories
// enclosing the entry being read, one per level; a 1.x list is streamed.
func (r TreeReader) Walk(ctx context.Context, t Tree, fn func(Entry) error) error {
	if t.Dir.SHA256 == "" {
		return r.walkList(t, fn)
	}
	var shape TreeShape
	var walk func(dir string, ref Ref) error
	walk = func(dir string, ref Ref) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		lines, err := r.readDir(t, dir, ref)
		if err != nil {
			return err
		}
		for i := range lines {
			d := &lines[i]
			e := d.entry(dir)
			if err := shape.Check(e); err != nil {
				return fmt.Errorf("tree %s: %w", t.Name, err)
			}
			if err := fn(e); err != nil {
				return err
			}
			if d.Tree != nil {
				if err := walk(e.Path, *d.Tree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return walk("", t.Dir)
}

// WalkDirs calls fn for every entry of t, like Walk, but reads, checks
// and decodes up to n directory lists of a 2.0 tree at a time (decoding is
// most of a walk's CPU; over a link, each read is a round trip): the
// entries of one directory come in order, the directories in no set
// order, and fn and List are called by one goroutine at a time. It does
// not check the tree's shape (TreeShape) as Walk does: for callers that
// take the entries as a set (verify, a copy), not as a tree to build. The first error stops the walk. Memory: the lists
// being decoded and the references of the directories listed but not
// read yet (a stack, taken depth first).
func (r TreeReader) WalkDirs(ctx context.Context, t Tree, n int, fn func(Entry) error) error {
	if t.Dir.SHA256 == "" || n <= 1 {
		return r.Walk(ctx, t, fn)
	}
	type job struct {
		dir string
		ref Ref
	}
	list := r.List
	r.List = nil // called below, under mu
	var (
		mu      sync.Mutex
		more    = sync.NewCond(&mu)
		stack   = []job{{"", t.Dir}}
		pending = 1 // directories not done
		first   error
	)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			mu.Lock()
			defer mu.Unlock()
			for {
				for len(stack) == 0 && pending > 0 && first == nil {
					more.Wait()
				}
				if first != nil || pending == 0 {
					return
				}
				j := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				mu.Unlock()
				err := ctx.Err()
				var lines []DirEntry
				if err == nil {
					lines, err = r.readDir(t, j.dir, j.ref)
				}
				mu.Lock()
				if err == nil && list != nil {
					err = list(j.ref)
				}
				for i := 0; err == nil && i < len(lines); i++ {
					d := &lines[i]
					e := d.entry(j.dir)
					if err = fn(e); err == nil && d.Tree != nil {
						stack = append(stack, job{e.Path, *d.Tree})
						pending++
						more.Signal()
					}
				}
				if err != nil && first == nil {
					first = err
				}
				if pending--; pending == 0 || first != nil {
					more.Broadcast()
				}
			}
		})
	}
	wg.Wait()
	return first
}

// readDir reads, checks and parses one directory list.
func (r TreeReader) readDir(t Tree, dir string, ref Ref) ([]DirEntry, error) {
	what := fmt.Sprintf("tree %s: list of directory %q (object %s)", t.Name, dir, ref.SHA256)
	if dir == "" {
		what = fmt.Sprintf("tree %s: list of the root directory (object %s)", t.Name, ref.SHA256)
	}
	if ref.Size > MaxDirList {
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", what, ref.Size, MaxDirList, ErrInvalid)
	}
	f, err := r.Open(ref)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, ErrIncomplete, err)
	}
	z, err := io.ReadAll(io.LimitReader(f, ref.Size+1))
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if sum := sha256.Sum256(z); int64(len(z)) != ref.Size || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("%s: content does not match its name and size: %w", what, ErrCorrupt)
	}
	if r.List != nil {
		if err := r.List(ref); err != nil {
			return nil, err
		}
	}
	data, err := dirDecoder.DecodeAll(z, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: not a zstd frame: %v: %w", what, err, ErrInvalid)
	}
	// One entry a line, allocated once: a list of 1000 entries grown by
	// append moved each entry (a large struct) twice over, a tenth of a
	// push's CPU before its first byte (100k files).
	lines := make([]DirEntry, 0, bytes.Count(data, []byte{'\n'}))
	err = readLines(data, func(n int, line []byte) error {
		if len(bytes.TrimSpace(line)) == 0 {
			return fmt.Errorf("line %d: malformed JSON: blank line: %w", n, ErrInvalid)
		}
		var d DirEntry
		if err := decodeDirLine(line, &d); err != nil {
			return fmt.Errorf("line %d: malformed JSON: %v: %w", n, err, ErrInvalid)
		}
		if err := d.validate(dir); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if len(lines) > 0 && lines[len(lines)-1].Name >= d.Name {
			return fmt.Errorf("line %d: %q after %q: names must be strictly increasing: %w", n, d.Name, lines[len(lines)-1].Name, ErrInvalid)
		}
		lines = append(lines, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return lines, nil
}

// walkList streams a 1.x tree's one list, hashing it on the way: the hash
// is checked at its end.
func (r TreeReader) walkList(t Tree, fn func(Entry) error) error {
	what := fmt.Sprintf("tree %s: file list (object %s)", t.Name, t.List.SHA256)
	if r.List != nil {
		if err := r.List(t.List); err != nil {
			return err
		}
	}
	f, err := r.Open(t.List)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", what, ErrIncomplete, err)
	}
	defer f.Close()
	h := sha256.New()
	if err := ReadEntries(io.TeeReader(f, h), fn); err != nil {
		if errors.Is(err, ErrInvalid) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != t.List.SHA256 { // the same hash, the same size
		return fmt.Errorf("%s: content does not match its name and size: %w", what, ErrCorrupt)
	}
	return nil
}

// readLines calls fn for every line of data (1-based numbers), bounded by
// MaxListLine, each ending in a newline.
func readLines(data []byte, fn func(n int, line []byte) error) error {
	for n := 1; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return fmt.Errorf("line %d: truncated (no newline at the end): %w", n, ErrInvalid)
		}
		if i+1 > MaxListLine {
			return fmt.Errorf("line %d: longer than %d bytes: %w", n, MaxListLine, ErrInvalid)
		}
		if err := fn(n, data[:i+1]); err != nil {
			return err
		}
		data = data[i+1:]
	}
	return nil
}
