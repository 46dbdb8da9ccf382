//go:build linux

package filetree

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/manifest"
)

// Restore's files stage on a local target writes small files through open
// directories rather than by path: each directory of the merge is opened
// once (openat of its name relative to its parent's descriptor, never
// following a symlink), and a file is created, given its mode and mtime,
// and later renamed relative to that descriptor: one system call per step,
// where a path through os.Root resolves every element again (9 openat per
// file). A few workers write files at the same time; the merge itself
// stays on one goroutine.

// dirFD is an open directory of the target. refs counts its frame (while
// the merge is in it) and its files waiting for their rename; the
// descriptor is closed when the last is done. Only the merge's goroutine
// changes refs.
type dirFD struct {
	fd   int
	refs int
}

func (d *dirFD) release() {
	if d.refs--; d.refs == 0 {
		_ = unix.Close(d.fd)
	}
}

// localDirs writes through directory descriptors for a LocalTarget.
type localDirs struct {
	l    *LocalTarget
	objs Objects
	fan  objectDirs
}

// newLocalDirs returns the fast path for t, or nil when t is not local.
func newLocalDirs(t Target, objs Objects) *localDirs {
	l, ok := t.(*LocalTarget)
	if !ok {
		return nil
	}
	d := &localDirs{l: l, objs: objs}
	if od, ok := objs.(ObjectDir); ok {
		d.fan.root = od.ObjectsDir()
	}
	return d
}

// openRoot opens the target's root directory.
func (ld *localDirs) openRoot() (*dirFD, error) {
	f, err := ld.l.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, derr
	}
	return &dirFD{fd: nfd, refs: 1}, nil
}

// openDir opens directory name (one element) of parent, never through a symlink.
func (ld *localDirs) openDir(parent *dirFD, name string) (*dirFD, error) {
	fd, err := unix.Openat(parent.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "openat", Path: name, Err: err}
	}
	return &dirFD{fd: fd, refs: 1}, nil
}

func (ld *localDirs) rename(d *dirFD, tmp, name string) error {
	if err := unix.Renameat(d.fd, tmp, d.fd, name); err != nil {
		return &fs.PathError{Op: "renameat", Path: name, Err: err}
	}
	return nil
}

func (ld *localDirs) unlink(d *dirFD, name string) { _ = unix.Unlinkat(d.fd, name, 0) }

// write writes e's content to tmp (one name) in d, checked against its
// SHA-256, with e's mode, owner and mtime, not synced (the batch's SyncFS
// does that). On an error nothing is left behind. buf is the worker's.
func (ld *localDirs) write(d *dirFD, tmp string, e manifest.Entry, owner bool, buf *[]byte) error {
	if int64(cap(*buf)) < e.Size+1 {
		*buf = make([]byte, e.Size+1)
	}
	data, err := ld.read(e, (*buf)[:e.Size+1])
	if err != nil {
		return err
	}
	fd, err := unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("apply to %s: create %s: %w", ld.l, e.Path, noSpace(ld.l, e.Size, &fs.PathError{Op: "openat", Path: tmp, Err: err}))
	}
	err = writeAll(fd, data)
	if err == nil && owner {
		if err = unix.Fchown(fd, e.UID, e.GID); err != nil {
			err = fmt.Errorf("chown: %w (owner preservation needs root on the target)", err)
		}
	}
	if err == nil {
		err = unix.Fchmod(fd, unixMode(fileMode(e)))
	}
	if err == nil {
		ts := unix.NsecToTimespec(e.MTime.UnixNano())
		err = unix.UtimesNanoAt(d.fd, tmp, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		_ = unix.Unlinkat(d.fd, tmp, 0)
		return fmt.Errorf("apply to %s: write %s: %w", ld.l, e.Path, noSpace(ld.l, e.Size, err))
	}
	return nil
}

// read reads e's object into buf (len e.Size+1) and checks its size and SHA-256.
func (ld *localDirs) read(e manifest.Entry, buf []byte) ([]byte, error) {
	var r io.ReadCloser
	var err error
	if ld.fan.root != "" {
		r, err = ld.fan.open(e.Object)
	} else {
		r, err = ld.objs.Open(e.Object)
	}
	if err != nil {
		return nil, fmt.Errorf("apply to %s: %s: open object %s: %w", ld.l, e.Path, e.Object, err)
	}
	n, err := readSize(r, buf)
	_ = r.Close() // only read
	if err != nil {
		return nil, fmt.Errorf("apply to %s: read object %s for %s: %w", ld.l, e.Object, e.Path, err)
	}
	sum := sha256.Sum256(buf[:n])
	if got := hex.EncodeToString(sum[:]); got != e.Object || int64(n) != e.Size {
		return nil, fmt.Errorf("%w: %s: object %s has %d bytes hashing to %s", ErrObjectMismatch, e.Path, e.Object, n, got)
	}
	return buf[:n], nil
}

// readSize reads into buf (len size+1) until it holds size bytes and a
// read came back short (a regular file's end: one read for a small file
// where io.ReadFull makes a second to see EOF), until EOF, or until buf
// is full (the object is too long). The caller checks n and the SHA-256.
func readSize(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF || (m > 0 && m < len(buf)-(n-m) && n >= len(buf)-1) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// objectDirs opens objects of a local store (ROOT/<aa>/<sha>) relative to
// their fan-out directory, each opened once (without following a symlink)
// and kept open until close.
type objectDirs struct {
	root string
	mu   sync.Mutex
	fds  map[string]int
}

func (o *objectDirs) open(sha string) (io.ReadCloser, error) {
	if err := manifest.CheckSHA256(sha); err != nil {
		return nil, err
	}
	o.mu.Lock()
	dfd, ok := o.fds[sha[:2]]
	if !ok {
		var err error
		dfd, err = unix.Open(filepath.Join(o.root, sha[:2]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			o.mu.Unlock()
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(o.root, sha[:2]), Err: err}
		}
		if o.fds == nil {
			o.fds = map[string]int{}
		}
		o.fds[sha[:2]] = dfd
	}
	o.mu.Unlock()
	fd, err := unix.Openat(dfd, sha, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "openat", Path: filepath.Join(o.root, sha[:2], sha), Err: err}
	}
	return rawFile(fd), nil
}

func (o *objectDirs) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, fd := range o.fds {
		_ = unix.Close(fd)
	}
	o.fds = nil
}

// rawFile reads a descriptor without the runtime's poller (a regular file).
type rawFile int

func (f rawFile) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: "object", Err: err}
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFile) Close() error { return unix.Close(int(f)) }
