package objects

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/squirro-bcp/bcp/manifest"
)

// Permissions of what the store creates. Objects hold database dumps, so
// they are readable by their owner only; directories let the group list.
const (
	FilePerm = manifest.ObjectPerm
	DirPerm  = manifest.DirPerm
)

// Store is the object store rooted at a channel's objects directory.
type Store struct {
	root string
}

// New returns the store whose objects live below root (a channel's
// Layout.ObjectsDir()). The directory is created on the first Put.
func New(root string) *Store {
	return &Store{root: root}
}

// Root is the objects directory.
func (s *Store) Root() string { return s.root }

// Path is the file name of object sha. It does not check sha; use it only
// with names from Put or checked with manifest.ValidSHA256.
func (s *Store) Path(sha string) string {
	if len(sha) < 2 {
		return filepath.Join(s.root, sha)
	}
	return filepath.Join(s.root, sha[:2], sha)
}

func (s *Store) path(sha string) (string, error) {
	if err := manifest.CheckSHA256(sha); err != nil {
		return "", err
	}
	return s.Path(sha), nil
}

// Has reports whether object sha exists.
func (s *Store) Has(sha string) (bool, error) {
	_, err := s.Stat(sha)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Stat returns the file information of object sha; a missing object's
// error wraps fs.ErrNotExist. Anything but a regular file is an error.
func (s *Store) Stat(sha string) (fs.FileInfo, error) {
	p, err := s.path(sha)
	if err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Lstat(sha[:2] + "/" + sha)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("object %s is a %v, not a regular file", p, fi.Mode().Type())
	}
	return fi, nil
}

// Open opens object sha for reading. It does not verify the content; see
// Check. Neither the object nor its fan-out directory may be a symbolic
// link leading out of the store (os.Root), and the object itself is not
// followed if it is a link.
func (s *Store) Open(sha string) (*os.File, error) {
	if err := manifest.CheckSHA256(sha); err != nil {
		return nil, err
	}
	r, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.OpenFile(sha[:2]+"/"+sha, os.O_RDONLY|noFollow, 0)
}

// Put stores the content of r and returns its reference. See the package
// documentation for the write order.
func (s *Store) Put(ctx context.Context, r io.Reader) (ref manifest.Ref, err error) {
	t, ref, madeDir, err := s.writeTemp(ctx, r, putSynced)
	if err != nil || t.stored() {
		return ref, err
	}
	tmp := t.name
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	final := s.Path(ref.SHA256)
	dir := filepath.Dir(final)
	created, err := s.fanOut(dir)
	if err != nil {
		return ref, err
	}
	created = created || madeDir
	if err = os.Rename(tmp, final); err != nil {
		return ref, fmt.Errorf("object store: %w", err)
	}
	if err = manifest.SyncDir(dir); err != nil {
		return ref, err
	}
	if created {
		if err = manifest.SyncDir(s.root); err != nil {
			return ref, err
		}
	}
	return ref, nil
}

// copyBufs are the buffers objects are copied through (1 MiB each, reused:
// most objects of a file tree are a few KiB).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// temp is an object written but not under its name yet: a temporary
// file (name), or, with fd >= 0, a file with no name (O_TMPFILE). Neither
// (stored) when the object was already there.
type temp struct {
	name string
	fd   int
}

func (t temp) stored() bool { return t.name == "" && t.fd < 0 }

// sync fsyncs t's file.
func (t temp) sync() error {
	if t.fd >= 0 {
		return retry(func() error { return syscall.Fsync(t.fd) })
	}
	f, err := os.Open(t.name)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// discard closes or removes t's file.
func (t temp) discard() {
	if t.fd >= 0 {
		_ = syscall.Close(t.fd)
	} else if t.name != "" {
		_ = os.Remove(t.name)
	}
}

// How writeTemp writes.
type tempMode int

const (
	putSynced    tempMode = iota // streamed into the store's root, fsynced (Put)
	batchNamed                   // small content beside its final name, not synced (Batch)
	batchUnnamed                 // as batchNamed, with no name where the file system allows
)

// writeTemp stores r's content under a temporary name while hashing it,
// fsynced with putSynced, and returns it, or a stored temp when the object
// is already there (same name, same size: objects are never replaced; one
// whose size is wrong is damaged, and the atomic rename of the caller
// repairs it). created says it made the object's fan-out directory.
//
// For a Batch (many files of a tree), content up to one copy buffer
// (1 MiB) is read and hashed first, so its temporary file is created
// beside its final name in its fan-out directory (a rename within one
// directory; new inodes spread over the fan-out directories' block groups
// as the objects' are), with batchUnnamed as an unnamed file there, and
// an object already stored is not written at all. A larger one, and
// every one Put stores (a dump: its temporary file is there from its
// first byte), streams into a temporary file in the store's root.
func (s *Store) writeTemp(ctx context.Context, r io.Reader, mode tempMode) (t temp, ref manifest.Ref, created bool, err error) {
	t.fd = -1
	sync, buffered := mode == putSynced, mode != putSynced
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	cr := manifest.ContextReader(ctx, r)
	n, small := 0, false
	if buffered {
		n, err = io.ReadFull(cr, buf)
		small = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !small {
			return t, ref, false, fmt.Errorf("object store: read: %w", err)
		}
	}
	dir := s.root
	if small {
		sum := sha256.Sum256(buf[:n])
		ref = manifest.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(n)}
		final := s.Path(ref.SHA256)
		if intact(final, ref.Size) {
			return t, ref, false, nil
		}
		dir = filepath.Dir(final)
		unnamed := mode == batchUnnamed
		create := func() (err error) {
			if unnamed {
				if t.fd, err = createUnnamed(dir, buf[:n]); !errors.Is(err, errors.ErrUnsupported) {
					return err
				}
				unnamed = false
			}
			t.name, err = createSmall(dir, buf[:n], sync)
			return err
		}
		err := create()
		if errors.Is(err, fs.ErrNotExist) {
			// the store's first object, or its fan-out directory's
			if err = os.MkdirAll(s.root, DirPerm); err == nil {
				created, err = s.fanOut(dir)
			}
			if err == nil {
				err = create()
			}
		}
		if err != nil {
			return temp{fd: -1}, ref, false, fmt.Errorf("object store: %w", err)
		}
		return t, ref, created, nil
	}
	f, err := os.CreateTemp(dir, manifest.TempPrefix+"put-*")
	if errors.Is(err, fs.ErrNotExist) {
		// the store's first object
		if err = os.MkdirAll(s.root, DirPerm); err == nil {
			f, err = os.CreateTemp(dir, manifest.TempPrefix+"put-*")
		}
	}
	if err != nil {
		return t, ref, false, fmt.Errorf("object store: %w", err)
	}
	name := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(name)
		}
	}()
	if _, err = f.Write(buf[:n]); err != nil {
		return t, ref, false, fmt.Errorf("object store: write %s: %w", name, err)
	}
	h := sha256.New()
	h.Write(buf[:n])
	m, err := io.CopyBuffer(io.MultiWriter(f, h), cr, buf)
	if err != nil {
		return t, ref, false, fmt.Errorf("object store: write %s: %w", name, err)
	}
	ref = manifest.Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: int64(n) + m}
	if err = f.Chmod(FilePerm); err != nil {
		return t, ref, false, fmt.Errorf("object store: %w", err)
	}
	if sync {
		if err = f.Sync(); err != nil {
			return t, ref, false, fmt.Errorf("object store: sync %s: %w", name, err)
		}
	}
	if err = f.Close(); err != nil {
		return t, ref, false, fmt.Errorf("object store: close %s: %w", name, err)
	}
	if intact(s.Path(ref.SHA256), ref.Size) {
		_ = os.Remove(name)
		return t, ref, false, nil
	}
	t.name = name
	return t, ref, false, nil
}

// intact says whether the object at path is there with its size (objects
// are never replaced; one whose size is wrong is damaged).
func intact(path string, size int64) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// fanOut makes the fan-out directory dir if it is missing and says whether
// it did.
func (s *Store) fanOut(dir string) (created bool, err error) {
	if _, err = os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err = os.Mkdir(dir, DirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("object store: %w", err)
		}
		return true, nil
	}
	return false, nil
}

// PutFile stores the content of the file at path.
func (s *Store) PutFile(ctx context.Context, path string) (manifest.Ref, error) {
	f, err := os.Open(path)
	if err != nil {
		return manifest.Ref{}, fmt.Errorf("object store: %w", err)
	}
	defer f.Close()
	return s.Put(ctx, f)
}

// Check hashes object sha and returns an error wrapping manifest.ErrCorrupt
// if its content does not match its name (or size, if size >= 0).
func (s *Store) Check(ctx context.Context, sha string, size int64) error {
	f, err := s.Open(sha)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, manifest.ContextReader(ctx, f), make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("read object %s: %w", f.Name(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sha || (size >= 0 && n != size) {
		return fmt.Errorf("object %s: content has SHA-256 %s and %d bytes, want %s and %d: %w", f.Name(), got, n, sha, size, manifest.ErrCorrupt)
	}
	return nil
}

// Walk calls fn with the name of every object in the store, skipping
// temporary files and anything that is not an object name.
func (s *Store) Walk(fn func(sha string) error) error {
	dirs, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("object store: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		names, err := os.ReadDir(filepath.Join(s.root, d.Name()))
		if err != nil {
			return fmt.Errorf("object store: %w", err)
		}
		for _, n := range names {
			sha := n.Name()
			if !manifest.ValidSHA256(sha) || !strings.HasPrefix(sha, d.Name()) || !n.Type().IsRegular() {
				continue
			}
			if err := fn(sha); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove deletes object sha. Only retention (prune) may call it, and only
// for objects no retained or pinned set references (write-order rule 5).
func (s *Store) Remove(sha string) error {
	p, err := s.path(sha)
	if err != nil {
		return err
	}
	return os.Remove(p)
}

// Trees returns a reader of the file trees whose lists are in s.
func (s *Store) Trees() manifest.TreeReader {
	return manifest.TreeReader{Open: func(ref manifest.Ref) (io.ReadCloser, error) { return s.Open(ref.SHA256) }}
}
