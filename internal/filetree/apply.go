package filetree

// Restore side of filetree (stage 8): bring a directory tree to exactly a
// set's file list.
//
// Algorithm: walk the target once (excluded paths are neither listed nor
// descended), keeping each path's type, size, mtime, mode and owner. Then
// stream the set's entries in order (parents before children):
//   - a directory is created if missing (a non-directory in its way is
//     removed); its mode, owner and mtime are set at the end, deepest first,
//     so that writing into it does not disturb its mtime;
//   - a file whose size and mtime (to the target's time granularity) match
//     is unchanged and not touched, except for mode/owner fixes; otherwise
//     its object is copied to .tmp-bcp-* beside it, checked against its
//     SHA-256 while copying, given mode, owner and mtime, and renamed over
//     the old one, so a reader sees the old or the new file, never half;
//   - a symlink with the same target is unchanged; otherwise it is created
//     under a temporary name and renamed over.
// Finally every target path that the set does not have (and that is not
// excluded) is removed, children before parents. An entry whose parent is
// not a directory of the set (below one of its symlinks, say) is refused
// (manifest.TreeShape), and a symlink or file that the target holds where
// the set has a directory is removed (never followed) before the directory
// is made, so no write is redirected through a link the set or the target
// holds.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// ErrObjectMismatch is returned (wrapped) when an object's content does not
// hash to its name while it is being applied. The file was not replaced.
var ErrObjectMismatch = errors.New("object content does not match its SHA-256")

// ErrUnsafePath is returned (wrapped) for an entry whose parent is not a
// directory of the set (below one of its symlinks or files, or missing).
var ErrUnsafePath = errors.New("entry below a symlink")

// Target is the tree being brought to a set's state: a local directory or a
// directory on an SFTP server. Names are slash-separated and relative to the
// tree's root ("." is the root).
type Target interface {
	Lstat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.FileInfo, error)
	Readlink(name string) (string, error)
	Mkdir(name string, perm fs.FileMode) error
	// Create creates (exclusively) a new file for writing.
	Create(name string, perm fs.FileMode) (io.WriteCloser, error)
	Symlink(oldname, newname string) error
	Rename(oldname, newname string) error // replaces newname
	Remove(name string) error
	RemoveAll(name string) error
	Chmod(name string, mode fs.FileMode) error
	Lchown(name string, uid, gid int) error
	Chtimes(name string, mtime time.Time) error
	// Owner returns the owner of fi, when the target knows it.
	Owner(fi fs.FileInfo) (uid, gid int, ok bool)
	// TimeGranularity is the precision of stored mtimes (1s over SFTP).
	TimeGranularity() time.Duration
	String() string
}

// Objects opens objects by SHA-256.
type Objects interface {
	Open(sha string) (io.ReadCloser, error)
}

// ApplyProgress receives each applied change. Calls come from one goroutine.
type ApplyProgress interface {
	Applied(c Change)
}

// Change kinds.
const (
	OpAdd     = "add"
	OpReplace = "replace"
	OpRemove  = "remove"
	OpMeta    = "meta" // mode, owner or mtime fixed, content unchanged
)

// Change is one thing Apply did (or, in a dry run, would do).
type Change struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Type  string `json:"type"`
	Bytes int64  `json:"bytes,omitempty"`
}

// ApplyOptions configures Apply.
type ApplyOptions struct {
	Target Target
	// Entries streams the set's file list (manifest.ReadEntries over the list object).
	Entries func(fn func(manifest.Entry) error) error
	Objects Objects
	// Exclude: paths matching one of these (path.Match on the relative path,
	// or any of its parent directories) are left alone.
	Exclude []string
	// Owner sets uid/gid from the entries (needs root on the target).
	Owner  bool
	DryRun bool
	// MaxChanges bounds ApplyStats.Changes (the counts are always complete); 1000 when zero.
	MaxChanges int
	Progress   ApplyProgress
}

// ApplyStats summarises Apply.
type ApplyStats struct {
	Added, Replaced, Removed, Unchanged, MetaFixed int64
	Bytes                                          int64 // content bytes written
	Changes                                        []Change
	ChangesTruncated                               bool
	// Stale are temporary files (tmpPrefix) an earlier run left behind;
	// Apply removes them (a dry run only lists them).
	Stale []string
}

type have struct {
	typ   string
	size  int64
	mtime time.Time
	mode  fs.FileMode
	uid   int
	gid   int
	owner bool
}

func typeOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return manifest.TypeDir
	case m&fs.ModeSymlink != 0:
		return manifest.TypeSymlink
	case m.IsRegular():
		return manifest.TypeFile
	}
	return "other"
}

// Excluded reports whether rel (or one of its parents) matches a pattern. A
// pattern with a slash matches the whole relative path ("cache/*"); one
// without matches any single name ("*.lock", "tmp").
func Excluded(rel string, patterns []string) bool {
	for p := rel; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		for _, pat := range patterns {
			name := p
			if !strings.Contains(pat, "/") {
				name = path.Base(p)
			}
			if ok, _ := path.Match(pat, name); ok {
				return true
			}
		}
	}
	return false
}

func fileMode(e manifest.Entry) fs.FileMode {
	m := fs.FileMode(e.Mode) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	return m
}

// Apply brings opts.Target to exactly the set's tree.
func Apply(ctx context.Context, opts ApplyOptions) (ApplyStats, error) {
	var st ApplyStats
	t := opts.Target
	if opts.MaxChanges <= 0 {
		opts.MaxChanges = 1000
	}
	record := func(c Change) {
		if len(st.Changes) < opts.MaxChanges {
			st.Changes = append(st.Changes, c)
		} else {
			st.ChangesTruncated = true
		}
		if opts.Progress != nil {
			opts.Progress.Applied(c)
		}
	}
	existing := map[string]have{}
	if fi, err := t.Lstat("."); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("apply to %s: %w", t, err)
		}
		if !opts.DryRun {
			if err := t.Mkdir(".", 0o750); err != nil {
				return st, fmt.Errorf("apply to %s: create root: %w", t, err)
			}
		}
	} else if !fi.IsDir() {
		return st, fmt.Errorf("apply to %s: not a directory", t)
	} else if err := walk(ctx, t, ".", opts.Exclude, existing, &st.Stale); err != nil {
		return st, err
	}
	// Temporary files of an earlier run that was cut short (a dropped
	// connection, a kill) are removed first: only this program makes names
	// with this prefix, and restore runs one at a time.
	if !opts.DryRun {
		for _, p := range st.Stale {
			if err := t.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return st, fmt.Errorf("apply to %s: remove temporary file %s left by an earlier run: %w", t, p, err)
			}
		}
	}
	// addOrReplace counts an entry that is written and returns its Op.
	addOrReplace := func(exists bool) string {
		if exists {
			st.Replaced++
			return OpReplace
		}
		st.Added++
		return OpAdd
	}
	gran := t.TimeGranularity()
	var dirs []manifest.Entry
	var shape manifest.TreeShape
	err := opts.Entries(func(e manifest.Entry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if Excluded(e.Path, opts.Exclude) {
			return nil
		}
		// Every parent is a directory of the set, made (or found to be a
		// real directory, a link in its way replaced) before its children.
		if err := shape.Check(e); err != nil {
			return fmt.Errorf("%w: %v; refusing to write through a link", ErrUnsafePath, err)
		}
		h, exists := existing[e.Path]
		delete(existing, e.Path)
		if exists && h.typ != e.Type {
			// a directory where a file must go, or the reverse: remove first
			if !opts.DryRun {
				if err := t.RemoveAll(e.Path); err != nil {
					return fmt.Errorf("apply to %s: remove %s (%s in the way of a %s): %w", t, e.Path, h.typ, e.Type, err)
				}
			}
			if h.typ == manifest.TypeDir {
				for p := range existing {
					if strings.HasPrefix(p, e.Path+"/") {
						delete(existing, p)
					}
				}
			}
			exists = false
		}
		switch e.Type {
		case manifest.TypeDir:
			dirs = append(dirs, e)
			if !exists {
				record(Change{Op: OpAdd, Path: e.Path, Type: e.Type})
				st.Added++
				if !opts.DryRun {
					if err := t.Mkdir(e.Path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
						return fmt.Errorf("apply to %s: mkdir %s: %w", t, e.Path, err)
					}
				}
			} else {
				st.Unchanged++
			}
			return nil
		case manifest.TypeSymlink:
			if exists {
				if cur, err := t.Readlink(e.Path); err == nil && cur == e.Target {
					st.Unchanged++
					return nil
				}
			}
			record(Change{Op: addOrReplace(exists), Path: e.Path, Type: e.Type})
			if opts.DryRun {
				return nil
			}
			tmp := tmpName(e.Path)
			if err := t.Symlink(e.Target, tmp); err != nil {
				return fmt.Errorf("apply to %s: symlink %s: %w", t, e.Path, err)
			}
			if opts.Owner {
				_ = t.Lchown(tmp, e.UID, e.GID)
			}
			if err := t.Rename(tmp, e.Path); err != nil {
				_ = t.Remove(tmp)
				return fmt.Errorf("apply to %s: rename symlink into place %s: %w", t, e.Path, err)
			}
			return nil
		case manifest.TypeFile:
			mode := fileMode(e)
			if exists && h.size == e.Size && h.mtime.Truncate(gran).Equal(e.MTime.Truncate(gran)) {
				st.Unchanged++
				ownerDiff := opts.Owner && h.owner && (h.uid != e.UID || h.gid != e.GID)
				if h.mode != mode || ownerDiff {
					st.MetaFixed++
					record(Change{Op: OpMeta, Path: e.Path, Type: e.Type})
					if !opts.DryRun {
						if err := setMeta(t, e.Path, mode, e, opts.Owner); err != nil {
							return err
						}
					}
				}
				return nil
			}
			record(Change{Op: addOrReplace(exists), Path: e.Path, Type: e.Type, Bytes: e.Size})
			st.Bytes += e.Size
			if opts.DryRun {
				return nil
			}
			return writeFile(ctx, t, opts.Objects, e, mode, opts.Owner)
		}
		return fmt.Errorf("apply to %s: %s: unknown entry type %q", t, e.Path, e.Type)
	})
	if err != nil {
		return st, err
	}
	// remove what the set does not have, children first
	var gone []string
	for p := range existing {
		gone = append(gone, p)
	}
	sort.Slice(gone, func(i, j int) bool {
		di, dj := strings.Count(gone[i], "/"), strings.Count(gone[j], "/")
		if di != dj {
			return di > dj
		}
		return gone[i] > gone[j]
	})
	for _, p := range gone {
		h := existing[p]
		record(Change{Op: OpRemove, Path: p, Type: h.typ})
		st.Removed++
		if opts.DryRun {
			continue
		}
		if err := t.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("apply to %s: remove %s (no longer in the set): %w", t, p, err)
		}
	}
	if opts.DryRun {
		return st, nil
	}
	// directory metadata last, deepest first
	for i := len(dirs) - 1; i >= 0; i-- {
		e := dirs[i]
		if err := setMeta(t, e.Path, fileMode(e), e, opts.Owner); err != nil {
			return st, err
		}
	}
	return st, nil
}

func setMeta(t Target, name string, mode fs.FileMode, e manifest.Entry, owner bool) error {
	if owner {
		if err := t.Lchown(name, e.UID, e.GID); err != nil {
			return fmt.Errorf("apply to %s: chown %s: %w (owner preservation needs root on the target)", t, name, err)
		}
	}
	if err := t.Chmod(name, mode); err != nil {
		return fmt.Errorf("apply to %s: chmod %s: %w", t, name, err)
	}
	if err := t.Chtimes(name, e.MTime); err != nil {
		return fmt.Errorf("apply to %s: set mtime of %s: %w", t, name, err)
	}
	return nil
}

// tmpPrefix starts the name of every temporary file Apply makes (a kind
// of manifest.TempPrefix, which the channel's movers ignore).
const tmpPrefix = manifest.TempPrefix + "bcp-"

func tmpName(p string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(p), tmpPrefix+path.Base(p)+"-"+hex.EncodeToString(b[:]))
}

func writeFile(ctx context.Context, t Target, objs Objects, e manifest.Entry, mode fs.FileMode, owner bool) (err error) {
	src, err := objs.Open(e.Object)
	if err != nil {
		return fmt.Errorf("apply to %s: %s: open object %s: %w", t, e.Path, e.Object, err)
	}
	defer src.Close()
	tmp := tmpName(e.Path)
	w, err := t.Create(tmp, 0o600)
	if err != nil {
		return fmt.Errorf("apply to %s: create %s: %w", t, tmp, noSpace(t, e.Size, err))
	}
	defer func() {
		if err != nil {
			_ = t.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), ctxReader{ctx, src})
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("apply to %s: write %s: %w", t, e.Path, noSpace(t, e.Size, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.Object || n != e.Size {
		return fmt.Errorf("%w: %s: object %s has %d bytes hashing to %s", ErrObjectMismatch, e.Path, e.Object, n, got)
	}
	if err := setMeta(t, tmp, mode, e, owner); err != nil {
		return err
	}
	if err := t.Rename(tmp, e.Path); err != nil {
		return fmt.Errorf("apply to %s: rename into place %s: %w", t, e.Path, err)
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func walk(ctx context.Context, t Target, dir string, exclude []string, out map[string]have, stale *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fis, err := t.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("apply to %s: read directory %s: %w", t, dir, err)
	}
	for _, fi := range fis {
		rel := path.Join(dir, fi.Name())
		if Excluded(rel, exclude) {
			continue
		}
		if strings.HasPrefix(fi.Name(), tmpPrefix) {
			if fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0 {
				*stale = append(*stale, rel)
			}
			continue
		}
		h := have{typ: typeOf(fi.Mode()), size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		h.uid, h.gid, h.owner = t.Owner(fi)
		out[rel] = h
		if h.typ == manifest.TypeDir {
			if err := walk(ctx, t, rel, exclude, out, stale); err != nil {
				return err
			}
		}
	}
	return nil
}
