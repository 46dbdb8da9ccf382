package mover

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/time/rate"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// smallFile is the size up to which a file is read whole into memory and
// checked before anything is written at the destination: one read and one
// write request instead of a stream, which matters for 100k small objects.
const smallFile = 1 << 20

// copier copies single files from src to dst following the write-order rules.
type copier struct {
	src, dst FS
	limit    *rate.Limiter // nil: unlimited
	progress manifest.Progress
	closing  sync.WaitGroup // closes of files already synced
	closeMu  sync.Mutex
	closeErr error // the first of those closes that failed

	workersOnce sync.Once
	localDisks  bool // both ends on local disks (copyWorkers)
}

// waitClosing waits for the closes of files already synced and returns the
// first that failed.
func (c *copier) waitClosing() error {
	c.closing.Wait()
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closeErr
}

func tmpName(name string) string {
	dir, base := path.Split(name)
	return dir + manifest.MoverTempPrefix + base
}

// copyFile copies name, which the manifest says has size bytes and SHA-256
// sum (hex), from src to dst: written under a temporary name, hashed as it is
// written, compared, fsynced, then renamed. A mismatch returns ErrCorrupt and
// leaves nothing under the final name.
//
// With batch set (not nil), a small file is written and checked but
// neither fsynced nor renamed: it returns deferred true, and the caller
// waits for batch (a LaterWriter destination only queues the write) and
// makes the batch durable (FSSyncer) before it renames the file.
//
// stamp, if not nil, gets what a file renamed here shows at the
// destination where the rename can say it (rename).
func (c *copier) copyFile(ctx context.Context, name string, size int64, sum string, batch *remote.Later, stamp func(Entry)) (deferred bool, err error) {
	if size <= smallFile {
		bp := smallBufs.Get().(*[]byte)
		defer smallBufs.Put(bp)
		data, err := c.readWhole(ctx, name, size, bp)
		if err != nil {
			return false, err
		}
		return c.writeData(ctx, name, data, sum, batch, stamp)
	}
	r, err := c.open(ctx, name)
	if err != nil {
		return false, err
	}
	defer r.Close()
	return false, c.copyStream(ctx, r, name, size, sum, stamp)
}

// open opens name at the source; a file gone is ErrSourceChanged.
func (c *copier) open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, err := c.src.Open(ctx, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s at %s: %w: rerun to copy the newest complete set", name, c.src, ErrSourceChanged)
		}
		return nil, fmt.Errorf("read %s from %s: %w", name, c.src, err)
	}
	return r, nil
}

// readWhole reads name, a small file the manifest says has size bytes,
// from the source into *bp (grown as needed); another size is ErrCorrupt.
func (c *copier) readWhole(ctx context.Context, name string, size int64, bp *[]byte) ([]byte, error) {
	r, err := c.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if int64(cap(*bp)) < size+1 {
		*bp = make([]byte, size+1)
	}
	buf := (*bp)[:size+1]
	n, err := readUpTo(r, buf, int(size))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", name, c.src, err)
	}
	if int64(n) != size {
		return nil, fmt.Errorf("%s at %s: %w: size differs from the manifest's %d bytes", name, c.src, ErrCorrupt, size)
	}
	return buf[:n], nil
}

// shortReadEOF is implemented by readers of regular files for which a
// read that returns fewer bytes than asked has reached the end of the
// file (rawFile: read(2) of a local or NFS file).
type shortReadEOF interface{ shortReadIsEOF() }

// readUpTo reads r into buf until buf is full or the end of the file and
// returns how many bytes it read. Where a short read is the end
// (shortReadEOF), a read that stops at want bytes ends it: a small file
// of the size the manifest says takes one read(2), not a second one that
// returns 0. A file longer than want still fills more than want bytes of
// buf, and the caller compares the count with the manifest's size.
func readUpTo(r io.Reader, buf []byte, want int) (int, error) {
	_, short := r.(shortReadEOF)
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		switch {
		case errors.Is(err, io.EOF):
			return n, nil
		case err != nil:
			return n, err
		case short && n == want && k > 0:
			return n, nil
		}
	}
	return n, nil
}

// smallBufs hold small files while they are checked and written (writeData
// keeps nothing of its data): 100k small files are then not 100k buffers
// for the garbage collector.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// copyStream copies a large file from r: many requests in flight, fsynced
// on its own (its data dominates the cost, not the fsync's latency).
func (c *copier) copyStream(ctx context.Context, r io.Reader, name string, size int64, sum string, stamp func(Entry)) error {
	tmp := tmpName(name)
	w, err := c.dst.Create(ctx, tmp)
	if err != nil {
		return fmt.Errorf("write %s at %s: %w", tmp, c.dst, err)
	}
	h := sha256.New()
	var n int64
	sf, srcSFTP := r.(*sftp.File)
	rf, dstSFTP := w.(*sftp.File)
	switch {
	case srcSFTP:
		// SFTP source: its WriteTo keeps many reads in flight.
		n, err = sf.WriteTo(&hashWriter{ctx: ctx, w: w, h: h, limit: c.limit, progress: c.progress})
	case dstSFTP:
		// SFTP destination: its ReadFrom keeps many writes in flight when
		// the reader tells its size. (A local *os.File source is also an
		// io.WriterTo, but one that writes 32 KiB at a time, each write
		// a round trip: never let it drive an SFTP destination.)
		n, err = rf.ReadFrom(&hashReader{ctx: ctx, r: r, h: h, size: size, limit: c.limit, progress: c.progress})
	default:
		buf := make([]byte, 1<<20)
		n, err = io.CopyBuffer(&hashWriter{ctx: ctx, w: w, h: h, limit: c.limit, progress: c.progress}, struct{ io.Reader }{r}, buf)
	}
	if err == nil {
		err = c.check(name, n, size, h, sum)
	}
	if err == nil {
		err = w.Sync()
		if err != nil {
			err = fmt.Errorf("fsync %s at %s: %w", tmp, c.dst, err)
		}
	}
	if cerr := w.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s at %s: %w", tmp, c.dst, cerr)
	}
	if err != nil {
		_ = c.dst.Remove(context.WithoutCancel(ctx), tmp)
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ctx.Err()) && ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("copy %s from %s to %s: %w", name, c.src, c.dst, err)
	}
	return c.rename(ctx, tmp, name, stamp)
}

// rename renames tmp, written and made durable, over name. stamp, if not
// nil, gets what the renamed file shows, with the rename's answer where
// the destination says it (StampRenamer, StatRenamer): a file copied so
// is stamped in the verified-file cache without a look at its directory
// after the copy (a first copy of a storage whose large files sit among
// the small ones: every bucket listed again at its end, over a far link).
func (c *copier) rename(ctx context.Context, tmp, name string, stamp func(Entry)) error {
	if stamp != nil {
		if sr, ok := c.dst.(StampRenamer); ok {
			l := remote.NewLater()
			err := sr.RenameStampLater(ctx, tmp, name, l, stamp)
			if err == nil {
				err = l.Wait(ctx)
			}
			if !errors.Is(err, remote.ErrNotOffered) {
				if err != nil {
					return fmt.Errorf("at %s: %w", c.dst, err)
				}
				return nil
			}
		}
		if sr, ok := c.dst.(StatRenamer); ok {
			e, ok, err := sr.RenameStat(ctx, tmp, name)
			if err == nil && ok {
				stamp(e)
			}
			return err
		}
	}
	return c.dst.Rename(ctx, tmp, name)
}

// writeBytes writes data (already in memory, e.g. a manifest) as name at dst
// by the same rules; sum may be empty when there is nothing to compare with.
func (c *copier) writeBytes(ctx context.Context, name string, data []byte, sum string) error {
	_, err := c.writeData(ctx, name, data, sum, nil, nil)
	return err
}

// writeData writes data as name at dst: checked, written to the temporary
// name, then (batch nil) fsynced and renamed. With batch set the fsync and
// the rename are left to the caller (deferred true): see copyFile.
func (c *copier) writeData(ctx context.Context, name string, data []byte, sum string, batch *remote.Later, stamp func(Entry)) (deferred bool, err error) {
	if err := c.admitData(ctx, name, data, sum); err != nil {
		return false, err
	}
	tmp := tmpName(name)
	switch err := c.writeWhole(ctx, tmp, data, batch); {
	case errors.Is(err, errNoFileWriter):
		// through Create below
	case err != nil:
		_ = c.dst.Remove(context.WithoutCancel(ctx), tmp)
		return false, fmt.Errorf("write %s at %s: %w", tmp, c.dst, err)
	default:
		if c.progress != nil {
			c.progress.Add(int64(len(data)))
		}
		if batch != nil {
			return true, nil
		}
		return false, c.rename(ctx, tmp, name, stamp)
	}
	w, err := c.dst.Create(ctx, tmp)
	if err != nil {
		return false, fmt.Errorf("write %s at %s: %w", tmp, c.dst, err)
	}
	_, err = io.Copy(w, bytes.NewReader(data))
	if err == nil && batch == nil {
		err = w.Sync()
	}
	if err != nil {
		_ = w.Close()
		_ = c.dst.Remove(context.WithoutCancel(ctx), tmp)
		return false, fmt.Errorf("write %s at %s: %w", tmp, c.dst, err)
	}
	if c.progress != nil {
		c.progress.Add(int64(len(data)))
	}
	if batch != nil {
		// Not durable yet: a write error that only the close reports
		// (NFS) must stop this file before the batch is renamed.
		if err := w.Close(); err != nil {
			_ = c.dst.Remove(context.WithoutCancel(ctx), tmp)
			return false, fmt.Errorf("close %s at %s: %w", tmp, c.dst, err)
		}
		return true, nil
	}
	// The data is durable: the close need not hold up the rename (one
	// round trip less per small file over SFTP). Run waits for it and
	// returns its error.
	c.closing.Add(1)
	go func() {
		defer c.closing.Done()
		if err := w.Close(); err != nil {
			c.closeMu.Lock()
			if c.closeErr == nil {
				c.closeErr = fmt.Errorf("close %s at %s: %w", tmp, c.dst, err)
			}
			c.closeMu.Unlock()
		}
	}()
	return false, c.rename(ctx, tmp, name, stamp)
}

// admitData checks data, to be written as name, against sum (none if
// empty) and waits for the bandwidth limit.
func (c *copier) admitData(ctx context.Context, name string, data []byte, sum string) error {
	h := sha256.New()
	h.Write(data)
	if err := c.check(name, int64(len(data)), int64(len(data)), h, sum); err != nil {
		return err
	}
	if c.limit != nil {
		return waitN(ctx, c.limit, len(data))
	}
	return nil
}

// writeWhole writes data as tmp in one request where dst can: queued for
// batch (LaterWriter), or created, written, fsynced unless batched and
// closed, a write error that only the close reports (NFS) included
// (FileWriter). Where it cannot it returns errNoFileWriter.
func (c *copier) writeWhole(ctx context.Context, tmp string, data []byte, batch *remote.Later) error {
	if lw, ok := c.dst.(LaterWriter); ok && batch != nil {
		if err := lw.WriteFileLater(ctx, tmp, data, batch); !errors.Is(err, errNoFileWriter) {
			return err
		}
	}
	if fw, ok := c.dst.(FileWriter); ok {
		return fw.WriteFile(ctx, tmp, data, batch == nil)
	}
	return errNoFileWriter
}

// finish renames a file written with batch set into place. The caller has
// made it durable first.
func (c *copier) finish(ctx context.Context, name string) error {
	return c.dst.Rename(ctx, tmpName(name), name)
}

func (c *copier) check(name string, n, size int64, h hash.Hash, sum string) error {
	if n != size {
		return fmt.Errorf("%s from %s: %w: %d bytes, the manifest says %d", name, c.src, ErrCorrupt, n, size)
	}
	if sum == "" {
		return nil
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s from %s: %w: sha256 %s, the manifest says %s", name, c.src, ErrCorrupt, got, sum)
	}
	return nil
}

// hashFile reads name at f and returns its SHA-256 (hex) and size.
func hashFile(ctx context.Context, f FS, name string) (string, int64, error) {
	r, err := f.Open(ctx, name)
	if err != nil {
		return "", 0, err
	}
	defer r.Close()
	h := sha256.New()
	var n int64
	if wt, ok := r.(io.WriterTo); ok {
		n, err = wt.WriteTo(h)
	} else {
		n, err = io.Copy(h, r)
	}
	if err != nil {
		return "", 0, fmt.Errorf("read %s at %s: %w", name, f, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// hashReader hashes what is read and tells its size, so that
// *sftp.File.ReadFrom sends many writes at once.
type hashReader struct {
	ctx      context.Context
	r        io.Reader
	h        hash.Hash
	size     int64
	limit    *rate.Limiter
	progress manifest.Progress
}

func (r *hashReader) Size() int64 { return r.size }

func (r *hashReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if n > 0 {
		r.h.Write(p[:n])
		if r.limit != nil {
			if werr := waitN(r.ctx, r.limit, n); werr != nil {
				return n, werr
			}
		}
		if r.progress != nil {
			r.progress.Add(int64(n))
		}
	}
	return n, err
}

// hashWriter hashes what is written.
type hashWriter struct {
	ctx      context.Context
	w        io.Writer
	h        hash.Hash
	limit    *rate.Limiter
	progress manifest.Progress
}

func (w *hashWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	if w.limit != nil {
		if err := waitN(w.ctx, w.limit, len(p)); err != nil {
			return 0, err
		}
	}
	n, err := w.w.Write(p)
	w.h.Write(p[:n])
	if w.progress != nil {
		w.progress.Add(int64(n))
	}
	return n, err
}

// waitN waits for n bytes of the bandwidth limit, in pieces no larger than
// the limiter's burst.
func waitN(ctx context.Context, l *rate.Limiter, n int) error {
	for n > 0 {
		k := min(n, l.Burst())
		if err := l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
