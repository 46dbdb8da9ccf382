package manifest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
)

// Validate checks one entry of a file list read from an untrusted place.
func (e *Entry) Validate() error {
	if _, err := CleanPath(e.Path); err != nil {
		return err
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("entry %q: %s: %w", e.Path, fmt.Sprintf(format, a...), ErrInvalid)
	}
	const modeBits = uint32(fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if e.Mode&^modeBits != 0 {
		return bad("mode %#o has bits other than permissions, setuid, setgid, sticky", e.Mode)
	}
	if e.UID < 0 || e.GID < 0 || e.UID > 1<<32-1 || e.GID > 1<<32-1 {
		return bad("uid %d / gid %d out of range", e.UID, e.GID)
	}
	if err := checkText("user", e.User, false); err != nil {
		return bad("%v", err)
	}
	if err := checkText("group", e.Group, false); err != nil {
		return bad("%v", err)
	}
	if !plausibleTime(e.MTime) {
		return bad("mtime %v out of range", e.MTime)
	}
	switch e.Type {
	case TypeFile:
		if !ValidSHA256(e.Object) {
			return bad("object %q: want 64 lower-case hex digits", e.Object)
		}
		if e.Size < 0 || e.Size > MaxObjectSize {
			return bad("size %d out of range", e.Size)
		}
		if e.Target != "" {
			return bad("a file has no link target")
		}
	case TypeDir, TypeSymlink:
		if e.Object != "" || e.Size != 0 {
			return bad("a %s has no object or size", e.Type)
		}
		if e.Type == TypeDir && e.Target != "" {
			return bad("a dir has no link target")
		}
		if e.Type == TypeSymlink && (e.Target == "" || len(e.Target) > MaxPathLen || bytes.IndexByte([]byte(e.Target), 0) >= 0) {
			return bad("symlink target must be 1..%d bytes without NUL", MaxPathLen)
		}
	default:
		return bad("type %q: want %s, %s or %s", e.Type, TypeFile, TypeDir, TypeSymlink)
	}
	return nil
}

// Validate checks one line of an Elasticsearch file list.
func (f *ESFile) Validate() error {
	if _, err := CleanPath(f.Path); err != nil {
		return err
	}
	if !ValidSHA256(f.SHA256) {
		return fmt.Errorf("es file %q: sha256 %q: want 64 lower-case hex digits: %w", f.Path, f.SHA256, ErrInvalid)
	}
	if f.Size < 0 || f.Size > MaxObjectSize {
		return fmt.Errorf("es file %q: size %d out of range: %w", f.Path, f.Size, ErrInvalid)
	}
	return nil
}

// ListWriter writes a list (file entries or Elasticsearch files) as JSON
// Lines, one object per line, and enforces what readers check: every line
// valid, paths strictly increasing in ComparePaths order (so no duplicates),
// one kind of line per list.
type ListWriter struct {
	w     *bufio.Writer
	last  string
	kind  string
	n     int64
	bytes int64
}

// NewListWriter returns a ListWriter writing to w. Call Flush at the end.
func NewListWriter(w io.Writer) *ListWriter {
	return &ListWriter{w: bufio.NewWriterSize(w, 256<<10)}
}

// WriteEntry appends one file-tree entry.
func (lw *ListWriter) WriteEntry(e Entry) error {
	if err := e.Validate(); err != nil {
		return err
	}
	e.MTime = e.MTime.UTC()
	return lw.write("entry", e.Path, e.Size, e)
}

// WriteESFile appends one Elasticsearch repository file.
func (lw *ListWriter) WriteESFile(f ESFile) error {
	if err := f.Validate(); err != nil {
		return err
	}
	return lw.write("esfile", f.Path, f.Size, f)
}

func (lw *ListWriter) write(kind, path string, size int64, v any) error {
	if lw.kind != "" && lw.kind != kind {
		return fmt.Errorf("list writer: cannot mix %s and %s lines: %w", lw.kind, kind, ErrInvalid)
	}
	if lw.n > 0 && ComparePaths(lw.last, path) >= 0 {
		return fmt.Errorf("list writer: %q after %q: paths must be strictly increasing (manifest.ComparePaths order, no duplicates): %w", path, lw.last, ErrInvalid)
	}
	line, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(line)+1 > MaxListLine {
		return fmt.Errorf("list writer: line for %q is longer than %d bytes: %w", path, MaxListLine, ErrInvalid)
	}
	line = append(line, '\n')
	if _, err := lw.w.Write(line); err != nil {
		return err
	}
	lw.kind, lw.last = kind, path
	lw.n++
	lw.bytes += size
	return nil
}

// Count is the number of lines written.
func (lw *ListWriter) Count() int64 { return lw.n }

// Bytes is the sum of the sizes of the lines written.
func (lw *ListWriter) Bytes() int64 { return lw.bytes }

// Flush writes buffered lines to the underlying writer.
func (lw *ListWriter) Flush() error { return lw.w.Flush() }

// ReadEntries streams a file list, calling fn for each entry in order. Each
// line is validated (see Entry.Validate and CleanPath) and paths must be
// strictly increasing; the first problem stops the read with an error that
// names the line and wraps ErrInvalid. Memory use does not depend on the
// list's length. An error returned by fn is returned as is.
//
// A file list is also a tree (see TreeShape); a list that is not is refused
// here, so verify calls such a set corrupt before any stage changes
// anything.
func ReadEntries(r io.Reader, fn func(Entry) error) error {
	var shape TreeShape
	return readList(r, (*Entry).Validate, func(e *Entry) string { return e.Path }, func(e Entry) error {
		if err := shape.Check(e); err != nil {
			return err
		}
		return fn(e)
	})
}

// TreeShape checks, entry by entry in list order, that a file list is a
// tree: every entry's parent directory (other than the root) is an earlier
// entry of type dir. So no entry lies below one of the list's own symlinks
// or files, and a restore that makes each directory before its children
// never writes through a link. It keeps only the chain of directories
// enclosing the current entry (the path's depth), not the list. The zero
// value is ready to use.
type TreeShape struct {
	open []string // directories enclosing the last entry, outermost first
}

// Check takes the next entry; an error wraps ErrInvalid.
func (t *TreeShape) Check(e Entry) error {
	parent := path.Dir(e.Path)
	for len(t.open) > 0 && t.open[len(t.open)-1] != parent {
		t.open = t.open[:len(t.open)-1]
	}
	if parent != "." && len(t.open) == 0 {
		return fmt.Errorf("entry %q: its parent %q is not a directory earlier in the list (an entry below a symlink or a file, or a missing directory): %w", e.Path, parent, ErrInvalid)
	}
	if e.Type == TypeDir {
		t.open = append(t.open, e.Path)
	}
	return nil
}

// ReadESFiles streams an Elasticsearch file list like ReadEntries.
func ReadESFiles(r io.Reader, fn func(ESFile) error) error {
	return readList(r, (*ESFile).Validate, func(f *ESFile) string { return f.Path }, fn)
}

func readList[T any](r io.Reader, validate func(*T) error, pathOf func(*T) string, fn func(T) error) error {
	br := bufio.NewReaderSize(r, MaxListLine)
	var last string
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("list line %d: longer than %d bytes: %w", n, MaxListLine, ErrInvalid)
		case err == io.EOF:
			if len(line) > 0 {
				return fmt.Errorf("list line %d: truncated (no newline at the end): %w", n, ErrInvalid)
			}
			return nil
		case err != nil:
			return fmt.Errorf("read list line %d: %w", n, err)
		}
		var v T
		if err := decodeStrict(line, &v, true); err != nil {
			return fmt.Errorf("list line %d: %w", n, err)
		}
		if err := validate(&v); err != nil {
			return fmt.Errorf("list line %d: %w", n, err)
		}
		path := pathOf(&v)
		if n > 1 && ComparePaths(last, path) >= 0 {
			return fmt.Errorf("list line %d: %q after %q: paths must be strictly increasing (duplicate or unsorted): %w", n, path, last, ErrInvalid)
		}
		last = path
		if err := fn(v); err != nil {
			return err
		}
	}
}

// Putter stores a stream as an object; *objects.Store implements it.
type Putter interface {
	Put(ctx context.Context, r io.Reader) (Ref, error)
}

// PutList streams the list that fill writes into an object of p and returns
// its reference, so a million-entry list is never held in memory. fill must
// not call Flush; PutList does.
func PutList(ctx context.Context, p Putter, fill func(*ListWriter) error) (Ref, error) {
	pr, pw := io.Pipe()
	go func() {
		lw := NewListWriter(pw)
		err := fill(lw)
		if err == nil {
			err = lw.Flush()
		}
		pw.CloseWithError(err)
	}()
	ref, err := p.Put(ctx, pr)
	pr.CloseWithError(err) // unblock fill if Put stopped early
	if err != nil {
		return Ref{}, fmt.Errorf("store list: %w", err)
	}
	return ref, nil
}
