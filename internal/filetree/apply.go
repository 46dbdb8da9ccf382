package filetree

// Restore side of filetree (stage 8): bring a directory tree to exactly a
// set's file list.
//
// Algorithm: a merge, one directory at a time, as rsync's incremental
// recursion does. The set's entries stream in walk order (parents before
// children, names of a directory in byte order); each directory of the set
// that the target has is listed (sorted by name; excluded names are
// neither listed nor descended) when its entry comes, and its names are
// compared with the set's names of that directory as they come. Only the
// listings of the directories on the current path are held, so memory
// follows the depth and the widest directory, never the number of files.
//   - a directory is created if missing (a non-directory in its way is
//     removed); its mode, owner and mtime are set when the last of its
//     entries is done (children before parents), so that writing into it
//     does not disturb its mtime;
//   - a file whose size and mtime (to the target's time granularity) match
//     is unchanged and not touched, except for mode/owner fixes; otherwise
//     its object is copied to .tmp-bcp-* beside it, checked against its
//     SHA-256 while copying, given mode, owner and mtime, and renamed over
//     the old one, so a reader sees the old or the new file, never half;
//   - a symlink with the same target is unchanged; otherwise it is created
//     under a temporary name and renamed over.
// On a target that can sync its whole file system (BatchSyncer: the local
// directory, the transfer helper) files up to 1 MiB are written without
// an fsync each; one syncfs per batch of 2048 makes them durable before
// any of them is renamed, and one more before Apply returns makes the
// renames durable (as the mover does with small files).
// A name of the target that the set does not have in that directory (and
// that is not excluded) is removed when the directory is done, a
// directory's content before the directory. Temporary files of an earlier run are
// removed when their directory is listed. An entry whose parent is
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
	"sync"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// ErrObjectMismatch is returned (wrapped) when an object's content does not
// hash to its name while it is being applied. The file was not replaced. It
// is a kind of manifest.ErrCorrupt (errors.Is holds, exit code 5).
var ErrObjectMismatch = manifest.NewCorrupt("object content does not match its SHA-256")

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

// BatchSyncer is implemented by targets that can make many files durable
// at once (syncfs(2) next to the data): Apply then writes a small file
// with CreateUnsynced (no fsync when it is closed), and renames a batch of
// them into place only after one SyncFS made the batch durable, so a file
// never has its name before its content is durable; a last SyncFS makes
// the renames durable before Apply returns.
type BatchSyncer interface {
	CreateUnsynced(name string, perm fs.FileMode) (io.WriteCloser, error)
	SyncFS() error
}

// Batch limits, as the mover's: files up to batchFile bytes are batched,
// batchFiles of them or batchBytes at most per SyncFS.
const (
	batchFile        = 1 << 20
	batchFiles       = 2048
	batchBytes int64 = 256 << 20
)

// Objects opens objects by SHA-256.
type Objects interface {
	Open(sha string) (io.ReadCloser, error)
}

// ObjectDir is implemented by Objects kept in a local object store
// (DIR/<aa>/<sha>, manifest/objects): on a local target Apply then opens
// each object relative to its fan-out directory, opened once.
type ObjectDir interface {
	ObjectsDir() string
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
	// Progress counts the changes applied (Add(1) each, from one
	// goroutine); the caller begins and ends its task. nil: none.
	Progress manifest.Progress
	// Beside, if set, is used instead of Entries: it streams the set's
	// entries as manifest.TreeReader.WalkBeside does, beside a tree the
	// caller knows the target holds as it was applied (restore's record).
	// A directory given with same is found to be a directory and its
	// metadata set, but it is neither listed nor compared: its content
	// is taken to be the target's already. rootSame says the whole tree
	// is. If such a directory is not (or no longer) a directory of the
	// target, Apply compares the whole tree again through Entries.
	Beside func(fn func(e manifest.Entry, same bool) error) (rootSame bool, err error)
}

// ApplyStats summarises Apply.
type ApplyStats struct {
	Added, Replaced, Removed, Unchanged, MetaFixed int64
	Bytes                                          int64 // content bytes written
	Changes                                        []Change
	ChangesTruncated                               bool
	// SkippedDirs counts directories taken to be unchanged (Beside), not
	// compared.
	SkippedDirs int64
	// SkippedRoot says the whole tree was taken to be unchanged (Beside).
	SkippedRoot bool
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

// errSkipGone stops an Apply that skips (ApplyOptions.Beside) when a
// directory taken to be unchanged is not a directory of the target.
var errSkipGone = errors.New("a directory taken to be unchanged is not there")

// Apply brings opts.Target to exactly the set's tree.
func Apply(ctx context.Context, opts ApplyOptions) (ApplyStats, error) {
	if opts.Beside == nil {
		return apply(ctx, opts)
	}
	st, err := apply(ctx, opts)
	if errors.Is(err, errSkipGone) {
		// changed by hand since: compare everything
		opts.Beside = nil
		st2, err := apply(ctx, opts)
		st2.Added += st.Added
		st2.Replaced += st.Replaced
		st2.Removed += st.Removed
		st2.Bytes += st.Bytes
		st2.Changes = append(st.Changes, st2.Changes...)
		return st2, err
	}
	return st, err
}

func apply(ctx context.Context, opts ApplyOptions) (ApplyStats, error) {
	a := &applier{ctx: ctx, opts: opts, t: opts.Target, gran: opts.Target.TimeGranularity()}
	if a.opts.MaxChanges <= 0 {
		a.opts.MaxChanges = 1000
	}
	t := a.t
	root := &frame{dir: "."}
	if fi, err := t.Lstat("."); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return a.st, fmt.Errorf("apply to %s: %w", t, err)
		}
		if !opts.DryRun {
			if err := t.Mkdir(".", 0o750); err != nil {
				return a.st, fmt.Errorf("apply to %s: create root: %w", t, err)
			}
		}
	} else if !fi.IsDir() {
		return a.st, fmt.Errorf("apply to %s: not a directory", t)
	} else if opts.Beside != nil {
		root.skip = true // listed below, unless the whole tree is unchanged
	} else if root.have, err = a.list("."); err != nil {
		return a.st, err
	}
	if bs, ok := t.(BatchSyncer); ok && !opts.DryRun {
		a.bs = bs
		a.dirs = newLocalDirs(t, opts.Objects)
	}
	a.stack = []*frame{root}
	defer a.release()
	var err error
	if opts.Beside == nil {
		err = entriesAhead(ctx, func(fn func(manifest.Entry, bool) error) error {
			return opts.Entries(func(e manifest.Entry) error { return fn(e, false) })
		}, a.entry)
	} else if root.entry == nil && !root.skip {
		// the root was missing: nothing to skip below it
		return a.st, errSkipGone
	} else {
		listed := false
		err = entriesAhead(ctx, func(fn func(manifest.Entry, bool) error) error {
			rootSame, err := opts.Beside(fn)
			a.st.SkippedRoot = rootSame
			return err
		}, func(e manifest.Entry, same bool) error {
			if !listed {
				listed = true
				root.skip = false
				var err error
				if root.have, err = a.list("."); err != nil {
					return err
				}
			}
			return a.entry(e, same)
		})
		if err == nil && !listed && !a.st.SkippedRoot {
			// an empty tree: the root's content is compared
			root.skip = false
			if root.have, err = a.list("."); err != nil {
				return a.st, err
			}
		}
	}
	if err == nil {
		// the last directory chain, root included, is complete
		for len(a.stack) > 0 && err == nil {
			err = a.close()
		}
	}
	if err == nil {
		err = a.flush() // the last batch's SyncFS starts
	}
	if err == nil {
		err = a.settle()
	}
	if err == nil {
		err = a.flush() // directories done while it was synced
	}
	if err == nil && a.renamed {
		if err = a.bs.SyncFS(); err != nil {
			err = fmt.Errorf("apply to %s: make the tree durable: %w", t, err)
		}
	}
	if err != nil {
		_ = a.wait() // err is what this apply returns
		a.dropInflight()
		for _, p := range a.pending {
			if p.d != nil {
				a.dirs.unlink(p.d, p.tmpBase)
				p.d.release()
			} else {
				_ = t.Remove(p.tmp)
			}
		}
		a.pending = nil
	}
	return a.st, err
}

// release ends the writers and closes the directories still open (after
// an error, the frames left on the stack).
func (a *applier) release() {
	// After a success flush has waited and returned the writers' error;
	// after a failure, that failure is returned.
	_ = a.wait()
	a.dropInflight()
	if a.work != nil {
		close(a.work)
	}
	for _, f := range a.stack {
		if f.fd != nil {
			f.fd.release()
		}
	}
	if a.dirs != nil {
		a.dirs.fan.close()
	}
}

// entriesAhead calls fn with every entry of entries, which runs on its own
// goroutine (reading and decoding the set's lists) a few hundred entries
// ahead of fn (comparing them with the target and writing): the two
// overlap on two cores. It returns the first error of either.
func entriesAhead(ctx context.Context, entries func(func(manifest.Entry, bool) error) error, fn func(manifest.Entry, bool) error) error {
	const batch = 256
	type item struct {
		e    manifest.Entry
		same bool
	}
	ch := make(chan []item, 4)
	stop := make(chan struct{})
	var rerr error
	go func() {
		defer close(ch)
		b := make([]item, 0, batch)
		rerr = entries(func(e manifest.Entry, same bool) error {
			if b = append(b, item{e, same}); len(b) < batch {
				return nil
			}
			select {
			case ch <- b:
			case <-stop:
				return context.Canceled
			case <-ctx.Done():
				return ctx.Err()
			}
			b = make([]item, 0, batch)
			return nil
		})
		if rerr == nil && len(b) > 0 {
			select {
			case ch <- b:
			case <-stop:
			}
		}
	}()
	var err error
	for b := range ch {
		for _, it := range b {
			if err = fn(it.e, it.same); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	close(stop)
	for range ch { // let the reader end
	}
	if err != nil {
		return err
	}
	return rerr
}

// flush makes the batch's files durable, renames them into place, then
// sets the metadata of the directories that were done meanwhile. On a
// local target the batch's SyncFS runs while the next batch is written:
// flush renames the batch before (settle) and starts this one's SyncFS.
func (a *applier) flush() error {
	if err := a.settle(); err != nil {
		return err
	}
	if len(a.pending) > 0 {
		if err := a.wait(); err != nil {
			return err
		}
		if a.dirs != nil {
			b := &syncBatch{pending: a.pending, dirMeta: a.dirMeta, done: make(chan error, 1)}
			a.pending, a.dirMeta, a.pendingBytes, a.held = nil, nil, 0, 0
			go func() { b.done <- a.bs.SyncFS() }()
			a.inflight = b
			return nil
		}
		if err := a.bs.SyncFS(); err != nil {
			return fmt.Errorf("apply to %s: make a batch of files durable: %w", a.t, err)
		}
		if err := a.renameBatch(&a.pending); err != nil {
			return err
		}
		a.pending, a.pendingBytes, a.held = nil, 0, 0
	}
	return a.setDirMeta(&a.dirMeta)
}

// syncBatch is a batch of written files whose SyncFS runs (done gives its
// result) while the next batch is written; the directories done before it
// was started get their metadata after its renames.
type syncBatch struct {
	pending []pendingFile
	dirMeta []manifest.Entry
	done    chan error
}

// settle waits for the batch being synced, renames its files into place
// and sets its directories' metadata. On an error the files not renamed
// are back in a.pending (removed by apply).
func (a *applier) settle() error {
	b := a.inflight
	if b == nil {
		return nil
	}
	a.inflight = nil
	err := <-b.done
	if err != nil {
		err = fmt.Errorf("apply to %s: make a batch of files durable: %w", a.t, err)
	} else {
		err = a.renameBatch(&b.pending)
	}
	if err != nil {
		a.pending = append(b.pending, a.pending...)
		return err
	}
	return a.setDirMeta(&b.dirMeta)
}

// dropInflight waits for the batch being synced, if any, and puts its
// files back in a.pending (after an error: they are removed, not renamed).
func (a *applier) dropInflight() {
	if b := a.inflight; b != nil {
		a.inflight = nil
		<-b.done
		a.pending = append(b.pending, a.pending...)
	}
}

// renameBatch renames the durable files of *ps into place, in order; on
// an error *ps holds the ones not renamed.
func (a *applier) renameBatch(ps *[]pendingFile) error {
	for len(*ps) > 0 {
		p := (*ps)[0]
		var err error
		if p.d != nil {
			err = a.dirs.rename(p.d, p.tmpBase, path.Base(p.final))
		} else {
			err = a.t.Rename(p.tmp, p.final)
		}
		if err != nil {
			return fmt.Errorf("apply to %s: rename into place %s: %w", a.t, p.final, err)
		}
		if p.d != nil {
			p.d.release()
		}
		*ps = (*ps)[1:]
	}
	a.renamed = true
	return nil
}

func (a *applier) setDirMeta(es *[]manifest.Entry) error {
	for _, e := range *es {
		if err := setMeta(a.t, e.Path, fileMode(e), e, a.opts.Owner); err != nil {
			return err
		}
	}
	*es = (*es)[:0]
	return nil
}

// applier merges the set's entries (walk order) with the target, one
// directory at a time: it holds the listings of the directories on the
// current path only, so its memory follows the depth and the widest
// directory, never the number of files.
type applier struct {
	ctx   context.Context
	opts  ApplyOptions
	t     Target
	gran  time.Duration
	st    ApplyStats
	shape manifest.TreeShape
	stack []*frame // the directory chain of the last entry, root first

	// Batched writes (bs not nil): files written, durable after the next
	// SyncFS, then renamed; the directories done meanwhile, whose metadata
	// is set after those renames.
	bs           BatchSyncer
	pending      []pendingFile
	pendingBytes int64
	dirMeta      []manifest.Entry
	renamed      bool // files were renamed since the last SyncFS
	inflight     *syncBatch

	// Local target (dirs not nil): batched files are written by
	// applyWorkers goroutines through their directory's descriptor.
	dirs *localDirs
	held int // directories done whose descriptor files of the batch keep open
	work chan []writeJob
	jobs []writeJob     // queued, not handed out yet
	busy sync.WaitGroup // jobs not done
	mu   sync.Mutex
	werr error // the first failed job's
}

// pendingFile is a batched file written to tmp, renamed to final after
// the batch's SyncFS; on a local target d is its open directory and
// tmpBase the temporary name in it.
type pendingFile struct {
	tmp, final string
	d          *dirFD
	tmpBase    string
}

// writeJob is a file for a worker to write through its directory.
type writeJob struct {
	d   *dirFD
	tmp string
	e   manifest.Entry
}

// applyWorkers write batched files at the same time on a local target
// (the kernel's work of creating them is most of a restore's time; 2 and
// 3 workers did as well on 2 cores, 1 was slower).
const applyWorkers = 3

// maxHeldDirs bounds the descriptors of directories done that files of
// the batch keep open (a tree of many small directories): the batch is
// flushed when so many are held.
const maxHeldDirs = 256

// jobBatch files make one job.
const jobBatch = 32

// submit queues j; a worker takes jobBatch of them at a time (one
// hand-over per batch, not per file).
func (a *applier) submit(j writeJob) {
	a.jobs = append(a.jobs, j)
	if len(a.jobs) >= jobBatch {
		a.send()
	}
}

// send hands the queued jobs to a worker, starting them the first time.
func (a *applier) send() {
	if len(a.jobs) == 0 {
		return
	}
	if a.work == nil {
		a.work = make(chan []writeJob, applyWorkers)
		for range applyWorkers {
			go a.writer()
		}
	}
	a.busy.Add(1)
	a.work <- a.jobs
	a.jobs = make([]writeJob, 0, jobBatch)
}

func (a *applier) writer() {
	var buf []byte
	for jobs := range a.work {
		for _, j := range jobs {
			a.mu.Lock()
			failed := a.werr != nil
			a.mu.Unlock()
			if failed {
				break
			}
			err := a.ctx.Err()
			if err == nil {
				err = a.dirs.write(j.d, j.tmp, j.e, a.opts.Owner, &buf)
			}
			if err != nil {
				a.mu.Lock()
				if a.werr == nil {
					a.werr = err
				}
				a.mu.Unlock()
			}
		}
		a.busy.Done()
	}
}

// wait hands out the queued jobs, waits for all, and returns the first error.
func (a *applier) wait() error {
	a.send()
	a.busy.Wait()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.werr
}

// dirFD opens (once) the directory of frame a.stack[i], relative to its
// parent's descriptor.
func (a *applier) dirFD(i int) (*dirFD, error) {
	f := a.stack[i]
	if f.fd != nil {
		return f.fd, nil
	}
	var err error
	if i == 0 {
		f.fd, err = a.dirs.openRoot()
	} else {
		var parent *dirFD
		if parent, err = a.dirFD(i - 1); err == nil {
			f.fd, err = a.dirs.openDir(parent, path.Base(f.dir))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apply to %s: open directory %s: %w", a.t, f.dir, err)
	}
	return f.fd, nil
}

// frame is one directory of the set being merged with the target's listing.
type frame struct {
	dir   string          // relative path, "." for the root
	entry *manifest.Entry // the set's entry (nil for the root): its metadata is set when the frame closes
	have  []fs.FileInfo   // the target's listing, sorted by name; excluded names and temporaries left out
	next  int             // have[:next] are merged
	gone  []fs.FileInfo   // merged names the set lacks, removed when the frame closes
	last  string          // the set's last name in this directory
	fd    *dirFD          // the open directory, once a file was written through it (local target)
	skip  bool            // taken to be unchanged (ApplyOptions.Beside): not listed, nothing removed
}

func (a *applier) record(c Change) {
	if len(a.st.Changes) < a.opts.MaxChanges {
		a.st.Changes = append(a.st.Changes, c)
	} else {
		a.st.ChangesTruncated = true
	}
	if a.opts.Progress != nil {
		a.opts.Progress.Add(1)
	}
}

// list reads a directory of the target, sorted by name, without excluded
// names. Temporary files of an earlier run that was cut short (a dropped
// connection, a kill) are left out and removed: only this program makes
// names with this prefix, and restore runs one at a time.
func (a *applier) list(dir string) ([]fs.FileInfo, error) {
	if err := a.ctx.Err(); err != nil {
		return nil, err
	}
	fis, err := a.t.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("apply to %s: read directory %s: %w", a.t, dir, err)
	}
	sort.Slice(fis, func(i, j int) bool { return fis[i].Name() < fis[j].Name() })
	out := fis[:0]
	for _, fi := range fis {
		rel := path.Join(dir, fi.Name())
		if Excluded(rel, a.opts.Exclude) {
			continue
		}
		if strings.HasPrefix(fi.Name(), tmpPrefix) {
			if fi.Mode().IsRegular() || fi.Mode()&fs.ModeSymlink != 0 {
				a.st.Stale = append(a.st.Stale, rel)
				if !a.opts.DryRun {
					if err := a.t.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return nil, fmt.Errorf("apply to %s: remove temporary file %s left by an earlier run: %w", a.t, rel, err)
					}
				}
			}
			continue
		}
		out = append(out, fi)
	}
	return out, nil
}

func (a *applier) haveOf(fi fs.FileInfo) have {
	h := have{typ: typeOf(fi.Mode()), size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
	h.uid, h.gid, h.owner = a.t.Owner(fi)
	return h
}

// close ends the innermost directory: what the target has there and the
// set lacks is removed, then the directory's own metadata is set (after
// its children's, so writing into it does not disturb its mtime).
func (a *applier) close() error {
	f := a.stack[len(a.stack)-1]
	a.stack = a.stack[:len(a.stack)-1]
	if f.fd != nil {
		if f.fd.refs > 1 {
			a.held++ // kept open by files waiting for their rename
		}
		f.fd.release()
		f.fd = nil
	}
	for _, fi := range append(f.gone, f.have[f.next:]...) {
		if err := a.remove(f.dir, fi); err != nil {
			return err
		}
	}
	if a.opts.DryRun || f.entry == nil {
		return nil
	}
	if len(a.pending) > 0 || a.inflight != nil {
		// files of this directory (or below) may wait for their rename
		a.dirMeta = append(a.dirMeta, *f.entry)
		if len(a.dirMeta) >= batchFiles || a.held >= maxHeldDirs {
			return a.flush()
		}
		return nil
	}
	return setMeta(a.t, f.dir, fileMode(*f.entry), *f.entry, a.opts.Owner)
}

// remove removes dir/fi, which the set does not have, children first.
func (a *applier) remove(dir string, fi fs.FileInfo) error {
	rel := path.Join(dir, fi.Name())
	h := a.haveOf(fi)
	if h.typ == manifest.TypeDir {
		kids, err := a.list(rel)
		if err != nil {
			return err
		}
		for _, k := range kids {
			if err := a.remove(rel, k); err != nil {
				return err
			}
		}
	}
	a.record(Change{Op: OpRemove, Path: rel, Type: h.typ})
	a.st.Removed++
	if a.opts.DryRun {
		return nil
	}
	if err := a.t.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("apply to %s: remove %s (no longer in the set): %w", a.t, rel, err)
	}
	return nil
}

// addOrReplace counts an entry that is written and returns its Op.
func (a *applier) addOrReplace(exists bool) string {
	if exists {
		a.st.Replaced++
		return OpReplace
	}
	a.st.Added++
	return OpAdd
}

// entry merges the set's next entry; same says a directory's content is
// taken to be the target's already (ApplyOptions.Beside).
func (a *applier) entry(e manifest.Entry, same bool) error {
	if err := a.ctx.Err(); err != nil {
		return err
	}
	opts, t := a.opts, a.t
	if Excluded(e.Path, opts.Exclude) {
		return nil
	}
	// Every parent is a directory of the set, made (or found to be a
	// real directory, a link in its way replaced) before its children.
	if err := a.shape.Check(e); err != nil {
		return fmt.Errorf("%w: %v; refusing to write through a link", ErrUnsafePath, err)
	}
	// The shape holds, so the parent is on the chain. The order is checked
	// before anything below it is closed (a close removes what the set lacks).
	parent, name := path.Dir(e.Path), path.Base(e.Path)
	i := len(a.stack) - 1
	for i > 0 && a.stack[i].dir != parent {
		i--
	}
	f := a.stack[i]
	if f.dir != parent || (f.last != "" && name <= f.last) {
		return fmt.Errorf("apply to %s: %s: the set's list is not in walk order (manifest.ComparePaths): %w", t, e.Path, manifest.ErrInvalid)
	}
	for len(a.stack) > i+1 {
		if err := a.close(); err != nil {
			return err
		}
	}
	f.last = name
	// what the target has before name in this directory, the set lacks
	for ; f.next < len(f.have) && f.have[f.next].Name() < name; f.next++ {
		f.gone = append(f.gone, f.have[f.next])
	}
	var h have
	exists := f.next < len(f.have) && f.have[f.next].Name() == name
	if exists {
		h = a.haveOf(f.have[f.next])
		f.next++
	}
	if exists && h.typ != e.Type {
		// a directory where a file must go, or the reverse: remove first
		if !opts.DryRun {
			if err := t.RemoveAll(e.Path); err != nil {
				return fmt.Errorf("apply to %s: remove %s (%s in the way of a %s): %w", t, e.Path, h.typ, e.Type, err)
			}
		}
		exists = false
	}
	switch e.Type {
	case manifest.TypeDir:
		sub := &frame{dir: e.Path, entry: &e}
		if same {
			if !exists {
				return fmt.Errorf("apply to %s: %s: %w", t, e.Path, errSkipGone)
			}
			a.st.Unchanged++
			a.st.SkippedDirs++
			sub.skip = true
			a.stack = append(a.stack, sub)
			return nil
		}
		if !exists {
			a.record(Change{Op: OpAdd, Path: e.Path, Type: e.Type})
			a.st.Added++
			if !opts.DryRun {
				if err := t.Mkdir(e.Path, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("apply to %s: mkdir %s: %w", t, e.Path, err)
				}
			}
		} else {
			a.st.Unchanged++
			var err error
			if sub.have, err = a.list(e.Path); err != nil {
				return err
			}
		}
		a.stack = append(a.stack, sub)
		return nil
	case manifest.TypeSymlink:
		if exists {
			if cur, err := t.Readlink(e.Path); err == nil && cur == e.Target {
				a.st.Unchanged++
				return nil
			}
		}
		a.record(Change{Op: a.addOrReplace(exists), Path: e.Path, Type: e.Type})
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
		if exists && h.size == e.Size && h.mtime.Truncate(a.gran).Equal(e.MTime.Truncate(a.gran)) {
			a.st.Unchanged++
			ownerDiff := opts.Owner && h.owner && (h.uid != e.UID || h.gid != e.GID)
			if h.mode != mode || ownerDiff {
				a.st.MetaFixed++
				a.record(Change{Op: OpMeta, Path: e.Path, Type: e.Type})
				if !opts.DryRun {
					if err := setMeta(t, e.Path, mode, e, opts.Owner); err != nil {
						return err
					}
				}
			}
			return nil
		}
		a.record(Change{Op: a.addOrReplace(exists), Path: e.Path, Type: e.Type, Bytes: e.Size})
		a.st.Bytes += e.Size
		if opts.DryRun {
			return nil
		}
		if a.bs == nil || e.Size > batchFile {
			return writeFile(a.ctx, t, t.Create, opts.Objects, e, mode, opts.Owner)
		}
		if a.dirs != nil {
			d, err := a.dirFD(i)
			if err != nil {
				return err
			}
			tmp := tmpName(name)
			d.refs++
			a.pending = append(a.pending, pendingFile{tmp: path.Join(parent, tmp), final: e.Path, d: d, tmpBase: tmp})
			a.submit(writeJob{d: d, tmp: tmp, e: e})
		} else {
			tmp, err := writeTemp(a.ctx, t, a.bs.CreateUnsynced, opts.Objects, e, mode, opts.Owner)
			if err != nil {
				return err
			}
			a.pending = append(a.pending, pendingFile{tmp: tmp, final: e.Path})
		}
		a.pendingBytes += e.Size
		if len(a.pending) >= batchFiles || a.pendingBytes >= batchBytes {
			return a.flush()
		}
		return nil
	}
	return fmt.Errorf("apply to %s: %s: unknown entry type %q", t, e.Path, e.Type)
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

// createFunc creates a new file exclusively (Target.Create, or
// BatchSyncer.CreateUnsynced).
type createFunc func(name string, perm fs.FileMode) (io.WriteCloser, error)

// writeFile writes e's content beside its final name and renames it into place.
func writeFile(ctx context.Context, t Target, create createFunc, objs Objects, e manifest.Entry, mode fs.FileMode, owner bool) error {
	tmp, err := writeTemp(ctx, t, create, objs, e, mode, owner)
	if err != nil {
		return err
	}
	if err := t.Rename(tmp, e.Path); err != nil {
		_ = t.Remove(tmp)
		return fmt.Errorf("apply to %s: rename into place %s: %w", t, e.Path, err)
	}
	return nil
}

// writeTemp writes e's content to a temporary name beside its final one,
// checked against its SHA-256, with e's mode, owner and mtime, and
// returns that name. On an error nothing is left behind.
func writeTemp(ctx context.Context, t Target, create createFunc, objs Objects, e manifest.Entry, mode fs.FileMode, owner bool) (tmp string, err error) {
	src, err := objs.Open(e.Object)
	if err != nil {
		return "", fmt.Errorf("apply to %s: %s: open object %s: %w", t, e.Path, e.Object, err)
	}
	defer src.Close()
	name := tmpName(e.Path)
	w, err := create(name, 0o600)
	if err != nil {
		return "", fmt.Errorf("apply to %s: create %s: %w", t, name, noSpace(t, e.Size, err))
	}
	defer func() {
		if err != nil {
			_ = t.Remove(name)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), manifest.ContextReader(ctx, src))
	if cerr := w.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("apply to %s: write %s: %w", t, e.Path, noSpace(t, e.Size, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.Object || n != e.Size {
		return "", fmt.Errorf("%w: %s: object %s has %d bytes hashing to %s", ErrObjectMismatch, e.Path, e.Object, n, got)
	}
	if err := setMeta(t, name, mode, e, owner); err != nil {
		return "", err
	}
	return name, nil
}
