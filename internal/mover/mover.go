package mover

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// listWorkers is how many directory listings are in flight at once.
const listWorkers = 32

// Options say what to copy where.
type Options struct {
	Src, Dst FS
	// VerifySignature checks a manifest's signature (manifest.json and
	// manifest.json.sig as read from the source) and returns an error
	// wrapping manifest.ErrNotAuthentic if it is not trusted. Required.
	VerifySignature func(manifest, sig []byte) error
	// Expect, if set, must match the source's channel identity.
	Expect manifest.Channel
	// Workers is the number of files in flight; 512 when zero. Many small
	// files in flight fill the helper's batches (fewer, larger requests)
	// and let the destination's file system commit fsyncs together. Small
	// files are held in memory while in flight, at most smallInFlight
	// bytes of them. Between two directories on local disks the copy has
	// at most 2 per CPU (at least 4) in flight (copyWorkers): there more
	// only wait on the lock of the directory they create files in.
	Workers int
	// BigWorkers bounds how many of them are large files (above 1 MiB),
	// each of which keeps many requests and buffers in flight; 8 when zero.
	BigWorkers int
	// BandwidthLimit in bytes per second; 0 is unlimited.
	BandwidthLimit int64
	// Checked remembers verified destination files; nil hashes every file
	// already present before trusting it.
	Checked *Checked
	// Checksum hashes every file already at the destination, whatever
	// Checked says.
	Checksum bool
	// FullCompare lists every file of the set at the destination, also
	// below the directories unchanged since the set a run recorded there
	// (see setRecord and baseSet).
	FullCompare bool
	// FullCompareEvery: a run this long after the last full comparison
	// recorded in Checked makes a full one; until then a run whose set
	// changed compares only the directories whose list changed since the
	// recorded set. 0 compares every file on every run.
	FullCompareEvery time.Duration
	// NoPrune keeps what the source no longer has.
	NoPrune bool
	// DryRun decides and reports but writes nothing.
	DryRun bool
	// Progress receives progress; nil reports nothing.
	Progress manifest.Progress
}

// Skipped is a source set newer than the one copied that was not forwarded.
type Skipped struct {
	Set    string `json:"set"`
	Reason string `json:"reason"`
}

// Result says what a Run did.
type Result struct {
	Set         string    `json:"set"`                 // the set the destination now has (newest complete at the source)
	DstNewer    string    `json:"dst_newer,omitempty"` // destination already had this newer set; nothing copied
	Skipped     []Skipped `json:"skipped,omitempty"`
	Files       int64     `json:"files"`                  // files the set needs (compared this run: below changed directories only, when SkippedDirs)
	SkippedDirs int64     `json:"skipped_dirs,omitempty"` // directories not compared: their list is that of the set recorded whole at the destination
	Copied      int64     `json:"copied"`                 // files copied
	Bytes       int64     `json:"bytes"`                  // bytes copied
	Present     int64     `json:"present"`                // files already at the destination, intact
	Replaced    int64     `json:"replaced"`               // files at the destination that were damaged and copied again (not counting versions the set replaces, like es/index.latest)
	PrunedSets  []string  `json:"pruned_sets,omitempty"`
	PrunedFiles int64     `json:"pruned_files"`
	Kept        []string  `json:"kept,omitempty"` // sets kept at the destination only because a pin needs them
	// Older are the sets older than Set that the source holds and the
	// destination lacked, oldest first: copied, or why not (history.go).
	Older []OlderSet `json:"older,omitempty"`
}

// Run brings the destination up to the newest complete set of the source.
// See the package documentation for the algorithm and its guarantees.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Src == nil || opts.Dst == nil || opts.VerifySignature == nil {
		return nil, errors.New("mover: Src, Dst and VerifySignature are required")
	}
	if opts.Workers <= 0 {
		opts.Workers = 512
	}
	if opts.BigWorkers <= 0 {
		opts.BigWorkers = 8
	}
	if opts.Progress == nil {
		opts.Progress = manifest.NoProgress{}
	}
	if opts.Checked == nil {
		opts.Checked, _ = OpenChecked("")
	}
	r := &runner{opts: opts, res: &Result{}, src: newDirLister(opts.Src), dst: newDirLister(opts.Dst), start: time.Now()}
	// The source is checked for presence only where listing sizes costs a
	// stat per file; a short source file is still caught by the copy's
	// size and hash check.
	r.src.names = true
	if opts.BandwidthLimit > 0 {
		burst := int(min(opts.BandwidthLimit, 1<<20))
		r.limit = rate.NewLimiter(rate.Limit(opts.BandwidthLimit), burst)
	}
	r.cp = &copier{src: opts.Src, dst: opts.Dst, limit: r.limit, progress: opts.Progress}
	bgCtx, stopBg := context.WithCancel(ctx)
	err := r.run(bgCtx)
	if ferr := r.fin.wait(); err == nil {
		err = ferr
	}
	if serr := r.streams.wait(); err == nil {
		err = serr
	}
	if cerr := r.cp.waitClosing(); err == nil {
		err = cerr
	}
	stopBg() // listings fetched ahead and not needed
	r.bg.Wait()
	return r.res, err
}

type runner struct {
	opts     Options
	resMu    sync.Mutex // guards res.Copied and res.Bytes while files are copied
	res      *Result
	src, dst *dirLister
	limit    *rate.Limiter
	cp       *copier
	channel  manifest.Channel
	batch    int // FSSyncer at the destination: 0 not asked yet, 1 works, -1 not available
	start    time.Time
	base     *baseSet // the set recorded whole at the destination, to plan beside; nil: full plan
	fin      finisher
	streams  finisher       // the large files of batches copied behind them (writeFiles)
	bg       sync.WaitGroup // listings fetched ahead (prefetchDst)
	// objectsAhead: the destination's objects/ is listed ahead (goneDirs).
	objectsAhead bool
	// Of the set being copied: its held files, and how many of each
	// bucket's spooled files were stamped as they were renamed
	// (stampCopied), so that remember need not look at them again.
	held    map[*want]bool
	stamped *[numBuckets]atomic.Int32
	copied  *copiedDigests // the record's digests taken behind the copy, if not nil
	noSteps bool           // the destination cannot publish the last phases in one request (publishTail)
	// tailLists is the held files' directories (and pins/) as listed by
	// the request that wrote the last phases (publishTail); nil: not.
	tailLists map[string][]Entry
	// aheadEntries, if not 0, is the files of a window of eachBucket in
	// place of the constant's (tests).
	aheadEntries int
}

func (r *runner) run(ctx context.Context) (err error) {
	chData, err := r.identifySource(ctx)
	if err != nil {
		return err
	}
	// A set verified at the end of an earlier run may still be all there
	// is to do (unchanged); otherwise the verified-file cache is indexed
	// while the source's lists are read.
	rec := r.opts.Checked.record()
	if _, ok := r.opts.Dst.(Digester); !ok || r.opts.Checksum {
		rec = nil
	}
	if rec == nil {
		r.opts.Checked.preload()
	}
	// The destination's identity is read while the source's sets are
	// read and planned (over a far link it waits for the connection's
	// helper): it is checked before anything is written there, and its
	// failure is the run's, whatever else failed meanwhile. One not
	// connected yet (Dialer) connects first, while the source's newest set
	// is read where it is sure to be needed (no record to compare with
	// first): over a far link the connection and the helper's start take
	// as long as reading the lists of 100k files.
	full := rec == nil
	check := func() func() (bool, error) {
		isChannel := r.checkDst(ctx)
		if full {
			r.prefetchDst(ctx, manifest.ObjectsDirName) // planned whole: see goneDirs
		}
		return isChannel
	}
	var dstIsChannel func() (bool, error)
	var ahead *loaded // the newest set, read while the destination connected
	if d, ok := r.opts.Dst.(Dialer); ok {
		var derr error
		checking := make(chan func() (bool, error), 1)
		go func() {
			if derr = d.Dial(ctx); derr != nil {
				checking <- nil
				return
			}
			checking <- check()
		}()
		if rec == nil {
			ahead = r.loadNewest(ctx)
			defer ahead.close()
		}
		if dstIsChannel = <-checking; dstIsChannel == nil {
			return fmt.Errorf("connect to the destination %s: %w", r.opts.Dst, derr)
		}
	} else {
		dstIsChannel = check()
	}
	defer func() {
		if _, derr := dstIsChannel(); derr != nil {
			err = derr
		}
	}()
	if rec != nil {
		isChannel, err := dstIsChannel()
		if err != nil {
			return err
		}
		if !isChannel {
			rec = nil
			r.opts.Checked.preload()
			r.prefetchDst(ctx, manifest.ObjectsDirName)
		}
	}
	r.objectsAhead = rec == nil

	srcSets, err := setIDs(ctx, r.src)
	if err != nil {
		return err
	}
	if len(srcSets) == 0 {
		return fmt.Errorf("%s holds no set yet: %w", r.opts.Src, ErrSourceIncomplete)
	}
	var set *setFiles
	var p *plan
	if rec != nil {
		newest := srcSets[len(srcSets)-1]
		unchanged, err := r.unchanged(ctx, rec, newest)
		if err != nil {
			return err
		}
		if unchanged {
			r.res.Set, r.res.Files, r.res.Present = rec.set, rec.files, rec.files
		} else {
			r.opts.Checked.preload()
			if rec.set != newest || len(rec.dirs) == 0 {
				// (The same set with digests that no longer match: the
				// destination changed since, and every file is compared.)
				r.base = r.baseSet(ctx, rec)
			}
		}
	}
	if r.res.Set == "" {
		if set, p, err = r.choose(ctx, srcSets, ahead); err != nil {
			return err
		}
		defer set.close()
		defer p.close()
		r.res.Set = set.id
	}
	if _, err := dstIsChannel(); err != nil {
		return err
	}
	dstSets, err := setIDs(ctx, r.dst)
	if err != nil {
		return err
	}
	if n := len(dstSets); n > 0 && dstSets[n-1] > r.res.Set {
		if _, ok, _ := r.dst.stat(ctx, setRel(dstSets[n-1], manifest.SignatureFileName)); ok {
			r.res.DstNewer = dstSets[n-1]
			return nil
		}
	}
	if set != nil {
		if err := r.copySet(ctx, set, p, chData); err != nil {
			return err
		}
	}
	if err := r.copyOlder(ctx, set, srcSets, dstSets, chData); err != nil {
		return err
	}
	if r.opts.NoPrune {
		return nil
	}
	return r.prune(ctx, r.res.Set, srcSets, dstSets)
}

// identifySource reads the source's channel identity (channel.json,
// returned as read, to be copied) and checks it is the channel expected.
func (r *runner) identifySource(ctx context.Context) (chData []byte, err error) {
	src := r.opts.Src
	chData, err = readSmall(ctx, src, manifest.ChannelFileName, 64<<10)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a channel (no %s): %w", src, manifest.ChannelFileName, ErrSourceIncomplete)
		}
		return nil, err
	}
	ch, err := decodeChannel(chData)
	if err != nil {
		return nil, fmt.Errorf("channel identity at %s: %w", src, err)
	}
	if !ch.Matches(r.opts.Expect) {
		return nil, fmt.Errorf("channel at %s is %s, expected %s: %w", src, ch, r.opts.Expect, manifest.ErrNotForUs)
	}
	r.channel = ch
	return chData, nil
}

// checkDst starts reading the destination's channel identity, with the
// listings every run needs there (prefetchDst), and returns what waits
// for it: whether the destination is a channel already (false for one not
// yet set up) and, if so, that it is the source's - a mover never mixes
// two channels. The caller waits for it before it returns.
func (r *runner) checkDst(ctx context.Context) func() (bool, error) {
	r.prefetchDst(ctx, ".", manifest.SetsDirName)
	type checked struct {
		isChannel bool
		err       error
	}
	done := make(chan checked, 1)
	go func() {
		ok, err := r.isSameChannel(ctx)
		done <- checked{ok, err}
	}()
	return sync.OnceValues(func() (bool, error) {
		c := <-done
		return c.isChannel, c.err
	})
}

// isSameChannel reads the destination's channel identity: false if there
// is none yet, an error if it is not the source's channel.
func (r *runner) isSameChannel(ctx context.Context) (bool, error) {
	dch, err := readSmall(ctx, r.opts.Dst, manifest.ChannelFileName, 64<<10)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	d, err := decodeChannel(dch)
	if err != nil {
		return false, fmt.Errorf("channel identity at %s: %w", r.opts.Dst, err)
	}
	if d != r.channel {
		return false, fmt.Errorf("destination %s is channel %s, the source %s is %s; refusing to mix two channels: %w", r.opts.Dst, d, r.opts.Src, r.channel, manifest.ErrNotForUs)
	}
	return true, nil
}

// prefetchDst lists dirs at the destination in the background, into
// r.dst (a later look waits for the listing under way): the few listings
// a run needs there go over a far link together, while the source is
// read. Run waits for them before it returns.
func (r *runner) prefetchDst(ctx context.Context, dirs ...string) {
	for _, d := range dirs {
		r.bg.Go(func() { _, _ = r.dst.dir(ctx, d) })
	}
}

// unchanged says whether the destination still holds, untouched, the set
// that an earlier run left there verified (rec), and that set is still the
// source's newest (newest): its manifest is the same and every directory
// holding its files shows the digest it showed then. An error is returned
// only when ctx ends; anything else that fails here sends the run the long
// way, which checks every file and reports what is wrong.
func (r *runner) unchanged(ctx context.Context, rec *setRecord, newest string) (bool, error) {
	if rec.set != newest || len(rec.dirs) == 0 {
		return false, nil
	}
	mdata, _, m, err := readManifest(ctx, r.opts.Src, rec.set, r.opts.VerifySignature)
	if err != nil || sumString(string(mdata)) != rec.manifest || !m.Channel.Matches(r.channel) {
		return false, ctx.Err()
	}
	sums, err := r.opts.Dst.(Digester).DirDigests(ctx, rec.dirs)
	if err != nil {
		return false, ctx.Err()
	}
	return slices.Equal(sums, rec.digests), nil
}

// setIDs lists the set directories at f, oldest first.
func setIDs(ctx context.Context, l *dirLister) ([]string, error) {
	d, err := l.dir(ctx, manifest.SetsDirName)
	if err != nil {
		return nil, err
	}
	var ids []string
	for name, e := range d {
		if _, err := manifest.ParseSetID(name); err == nil && e.Dir {
			ids = append(ids, name)
		}
	}
	sort.Strings(ids) // ids sort by sequence
	return ids, nil
}

// choose returns the newest source set that is complete at the source:
// signature valid, channel ours, every file present with its size. Newer
// sets that are not are reported in Result.Skipped; their content is still
// checked by hash as it is copied. When no set is, the error wraps
// ErrSourceIncomplete and why the newest is not (manifest.ErrIncomplete,
// ErrNotAuthentic, ErrNotForUs, ErrCorrupt, ...), so that each reason keeps
// its exit code.
func (r *runner) choose(ctx context.Context, ids []string, ahead *loaded) (*setFiles, *plan, error) {
	var newest error
	for i := len(ids) - 1; i >= 0; i-- {
		id := ids[i]
		var old *manifest.Manifest
		if r.base != nil {
			old = r.base.m
		}
		s, early, err := ahead.take(id)
		if s == nil && err == nil {
			s, err = loadSet(ctx, r.opts.Src, id, r.opts.VerifySignature, nil, nil, r.opts.Checked.spoolBase(), old)
		}
		if err == nil && !s.m.Channel.Matches(r.channel) {
			err = fmt.Errorf("set %s is for channel %s, the source is %s: %w", id, s.m.Channel, r.channel, manifest.ErrNotForUs)
		}
		var p *plan
		if err == nil {
			p, err = r.planSet(ctx, s, early)
		} else {
			early.discard()
		}
		if err == nil {
			return s, p, nil
		}
		s.close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if newest == nil {
			newest = err
		}
		r.res.Skipped = append(r.res.Skipped, Skipped{Set: id, Reason: err.Error()})
	}
	return nil, nil, fmt.Errorf("%s: none of %d sets is complete (newest: %w): %w", r.opts.Src, len(ids), newest, ErrSourceIncomplete)
}

// loaded is the source's newest set, read ahead (loadNewest) for choose,
// and its buckets planned early.
type loaded struct {
	id    string
	s     *setFiles
	err   error
	early *earlyPlan
}

// loadNewest reads the source's newest set as choose would first (no
// base set: a full plan), and starts planning its buckets as a first
// copy's (planEarly).
func (r *runner) loadNewest(ctx context.Context) *loaded {
	ids, err := setIDs(ctx, r.src)
	if err != nil || len(ids) == 0 {
		return nil // (run says why)
	}
	l := &loaded{id: ids[len(ids)-1]}
	l.s, l.err = loadSet(ctx, r.opts.Src, l.id, r.opts.VerifySignature, nil, nil, r.opts.Checked.spoolBase(), nil)
	if l.err == nil {
		l.early = r.planEarly(ctx, l.s)
	}
	return l
}

// take returns the set read ahead if it is set id, and hands it over with
// its early plan (nil, nil, nil: not read ahead).
func (l *loaded) take(id string) (*setFiles, *earlyPlan, error) {
	if l == nil || l.id != id || l.s == nil && l.err == nil {
		return nil, nil, nil
	}
	s, early, err := l.s, l.early, l.err
	l.s, l.early, l.err = nil, nil, nil
	return s, early, err
}

// close removes what was read ahead and not taken.
func (l *loaded) close() {
	if l != nil {
		l.early.discard()
		l.s.close()
	}
}

// smallInFlight bounds the bytes of small files (read whole into memory)
// in flight at once: 512 files of up to 1 MiB would otherwise be 512 MiB.
const smallInFlight = 128 << 20

// A batch is the files written under their temporary names before one
// FSSyncer.SyncFS makes them durable and they are renamed: batchMost of
// them while many are left, fewer towards a phase's end (batchSize).
// Each sync holds up the next batch's writes at the destination a little
// (its journal commit), which over a far link shows as a dip in the flow:
// on quiet runs of a first copy of 100k small files over a 12.5 MB/s
// link, 11-55 samples of 50 ms under 10 MB/s with batches of 2048, 5-13
// with these (bench/wan.md). The last batch's sync and renames are
// waited for, so the batches shrink to batchLeast at the end (a last
// batch of 8192 made the run's end 0.3 s longer).
const (
	batchMost  = 8192
	batchLeast = 1024
)

// batchSize is how many files the next batch takes when left are still to
// be copied: a quarter of them, within batchLeast and batchMost, so that
// the sizes shrink geometrically over the last few batches.
func batchSize(left int64) int {
	return int(min(batchMost, max(batchLeast, left/4)))
}

// canBatch says whether the destination can sync a whole file system; it
// asks once per run (an SFTP account may not be allowed to run commands).
func (r *runner) canBatch(ctx context.Context) (bool, error) {
	if r.batch != 0 {
		return r.batch > 0, nil
	}
	r.batch = -1
	fs, ok := r.opts.Dst.(FSSyncer)
	if !ok {
		return false, nil
	}
	if _, local := r.opts.Dst.(*Local); local && localSyncFS {
		// syncfs(2) is there: no need to ask (a probe syncs whatever the
		// machine has written since, 0.3 s before a first copy of 300k
		// files could begin; the first batch's SyncFS does that behind
		// the copy).
		r.batch = 1
		return true, nil
	}
	if r.throughHelper(ctx) {
		// The helper makes a batch durable with syncfs(2), which it
		// always has: a probe would cost a round trip before the copy
		// (and flush whatever the far side had written meanwhile).
		r.batch = 1
		return true, nil
	}
	// A forced command that never answers must not hold up the copy.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fs.SyncFS(pctx, []string{"."}); err != nil {
		if errors.Is(err, ErrNoSyncFS) || pctx.Err() != nil && ctx.Err() == nil {
			return false, nil // fsync@openssh.com per file, as before
		}
		return false, err
	}
	r.batch = 1
	return true, nil
}

// syncFS makes what was written to the destination's file systems
// holding dirs durable, the batches handed to finishBatch finished first
// (their renames included).
func (r *runner) syncFS(ctx context.Context, dirs []string) error {
	if err := r.fin.wait(); err != nil {
		return err
	}
	return r.syncNow(ctx, dirs)
}

func (r *runner) syncNow(ctx context.Context, dirs []string) error {
	if err := r.opts.Dst.(FSSyncer).SyncFS(ctx, dirs); err != nil {
		return fmt.Errorf("make files durable at %s: %w", r.opts.Dst, err)
	}
	return nil
}

// written is a batch of small files that writeFiles left under their
// temporary names, for finishBatch: the files, and the writes a
// LaterWriter destination only queued (finishBatch waits for them).
type written struct {
	files []*want
	later *remote.Later
}

// writeFiles copies files with copyWorkers in flight. With batch set, small
// files are left under their temporary names and returned: finishBatch
// makes them durable and renames them.
func (r *runner) writeFiles(ctx context.Context, files []*want, batch bool) (written, error) {
	if err := cmp.Or(r.fin.failed(), r.streams.failed()); err != nil {
		return written{}, err // an earlier batch's
	}
	behind := batch && r.throughHelper(ctx) // large files behind the batches (streamBehind)
	defer pinDirs(r.opts.Src, files)()
	defer pinDirs(r.opts.Dst, files)()
	var pending atomicList
	var later *remote.Later // the batch's writes that a LaterWriter only queued
	if batch {
		later = remote.NewLater()
		later.Keep() // renamed by reference where the helpers can (finishNow)
	}
	big := make(chan struct{}, r.opts.BigWorkers)
	mem := semaphore.NewWeighted(smallInFlight)
	held := func(w *want) int64 {
		if w.data == nil && w.size <= smallFile {
			return max(w.size, 1)
		}
		return 0
	}
	// Small files are admitted by memory: the feeder waits for room before
	// handing one to a worker.
	admit := func(ctx context.Context, w *want) error { return mem.Acquire(ctx, held(w)) }
	tryAdmit := func(w *want) bool { return mem.TryAcquire(held(w)) }
	outer := ctx
	err := eachRun(ctx, files, r.cp.copyWorkers(r.opts.Workers), admit, tryAdmit, func(ctx context.Context, w *want) error {
		defer mem.Release(held(w))
		if behind && w.size > smallFile && w.data == nil {
			return r.streamBehind(outer, w)
		}
		if w.size > smallFile {
			select {
			case big <- struct{}{}:
				defer func() { <-big }()
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		var deferred bool
		var err error
		stamp := func(e Entry) { r.stampCopied(w, e) }
		if w.data != nil {
			deferred, err = r.cp.writeData(ctx, w.name, w.data, w.checkSum(), later, stamp)
		} else {
			deferred, err = r.cp.copyFile(ctx, w.name, w.size, w.sum, later, stamp)
		}
		if err != nil {
			return err
		}
		if deferred {
			pending.add(w)
			return nil
		}
		r.count(w)
		return nil
	})
	return written{files: pending.list(), later: later}, err
}

// throughHelper says whether the copy goes through the helpers
// (SFTP.helperSyncs). Beside syncing a batch with syncfs(2), they take a
// batched phase's large files behind its batches (streamBehind): over a
// link whose round trips a batch would otherwise wait for at its end - a
// large file's stream queued behind the batch's writes, its fsync and its
// rename - with the link idle meanwhile (a second of a far first copy of
// 100k files for one list of 3.5 MB, bench/wan.md). The helper writes a
// stream around the page cache on a local disk (startDirect), so the
// batches' syncs behind it have nothing of it to flush; on a local
// destination they would (mover tests 75% slower), and there is no round
// trip to hide.
func (r *runner) throughHelper(ctx context.Context) bool {
	s, ok := r.opts.Dst.(*SFTP)
	return ok && s.helperSyncs(ctx)
}

// streamBehind copies w, a large file of a batch, in the background
// (r.streams), at most BigWorkers at once: streamed, checked, fsynced and
// renamed on its own, as writeFiles would, while the next batches go.
// copyPhase waits for it at the end of the phase; its failure stops the
// batches after it.
func (r *runner) streamBehind(ctx context.Context, w *want) error {
	r.streams.setAhead(r.opts.BigWorkers)
	return r.streams.start(ctx, func(ctx context.Context) error {
		// Its directories pinned for as long as it is copied: the batch's
		// pins end when writeFiles returns (a descriptor closed under
		// the copy's open was EBADF).
		ws := []*want{w}
		defer pinDirs(r.opts.Src, ws)()
		defer pinDirs(r.opts.Dst, ws)()
		if _, err := r.cp.copyFile(ctx, w.name, w.size, w.sum, nil, func(e Entry) { r.stampCopied(w, e) }); err != nil {
			return err
		}
		r.count(w)
		return nil
	})
}

// each runs fn for every file on at most Workers long-lived goroutines
// (not a goroutine per file: 100k of them cost the client more CPU -
// creation, stack growth, scheduling - than the SHA-256 of their data).
// Files are handed out in runs (eachRun) where there are many more files
// than workers: one channel hand-off (a wake-up of a parked worker) per
// run instead of per file. admit, if not nil, is called in order before a
// file is handed out and may wait; a run waiting for room is handed out
// first. The first error stops the rest and is returned.
func (r *runner) each(ctx context.Context, files []*want, admit func(context.Context, *want) error, fn func(context.Context, *want) error) error {
	return eachRun(ctx, files, r.opts.Workers, admit, nil, fn)
}

// finishBatch has the batch files, returned by writeFiles, finished
// behind the copy (finisher): their writes answered, made durable with one
// SyncFS, then renamed into place. It returns once the batch is handed
// over, with the first failure of an earlier batch; syncFS waits for them
// all.
func (r *runner) finishBatch(ctx context.Context, b written) error {
	if len(b.files) == 0 {
		return r.fin.failed()
	}
	return r.fin.start(ctx, func(ctx context.Context) error {
		if b.later != nil {
			if err := b.later.Wait(ctx); err != nil {
				return fmt.Errorf("at %s: %w", r.opts.Dst, err)
			}
		}
		return r.finishNow(ctx, b.files, b.later)
	})
}

// finishNow makes files, written under their temporary names and
// answered, durable with one SyncFS, then renames them into place: those
// the helpers keep in mind (remote.Later.Keep; later may be nil) in one
// request per helper that also syncs, the others by name.
func (r *runner) finishNow(ctx context.Context, files []*want, later *remote.Later) error {
	dirs := map[string]bool{}
	for _, w := range files {
		dirs[path.Dir(w.name)] = true
	}
	if later != nil && later.Kept() > 0 {
		var err error
		if files, err = r.renameKept(ctx, files, later, sortedKeys(dirs)); err != nil || len(files) == 0 {
			return err
		}
	}
	if err := r.syncNow(ctx, sortedKeys(dirs)); err != nil {
		return err
	}
	defer pinDirs(r.opts.Dst, files)()
	if lw, ok := r.opts.Dst.(LaterWriter); ok {
		// All renames queued, one wait; each renamed file's stamp comes
		// with its answer where the destination can say it.
		later, n := remote.NewLater(), 0
		sr, stamps := r.opts.Dst.(StampRenamer)
		for _, w := range files {
			var err error
			if stamps {
				err = sr.RenameStampLater(ctx, tmpName(w.name), w.name, later, func(e Entry) { r.stampCopied(w, e) })
				stamps = !errors.Is(err, remote.ErrNotOffered)
			}
			if !stamps {
				err = lw.RenameLater(ctx, tmpName(w.name), w.name, later)
			}
			if errors.Is(err, errNoFileWriter) {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		if err := later.Wait(ctx); err != nil {
			return fmt.Errorf("at %s: %w", r.opts.Dst, err)
		}
		for _, w := range files[:n] {
			r.count(w)
		}
		files = files[n:]
	}
	sr, stamps := r.opts.Dst.(StatRenamer)
	return eachRun(ctx, files, r.cp.copyWorkers(r.opts.Workers), nil, nil, func(ctx context.Context, w *want) error {
		if !stamps {
			if err := r.cp.finish(ctx, w.name); err != nil {
				return err
			}
		} else if e, ok, err := sr.RenameStat(ctx, tmpName(w.name), w.name); err != nil {
			return err
		} else if ok {
			r.stampCopied(w, e)
		}
		r.count(w)
		return nil
	})
}

// renameKept has the helpers that keep the batch's files in mind
// (remote.Later.Keep) sync the file systems of dirs and rename them, with
// no name sent again (over a far link 36 bytes a file: a first copy of
// 100k files 3.6 MB, 0.3 s at 100 Mbit/s, and one round trip at its end),
// stamped and counted as finishNow's renames are. It returns the files
// left to rename by name: those no helper keeps.
func (r *runner) renameKept(ctx context.Context, files []*want, later *remote.Later, dirs []string) (rest []*want, err error) {
	defer pinDirs(r.opts.Dst, files)()
	var mu sync.Mutex
	byTmp := make(map[string]*want, len(files))
	for _, w := range files {
		byTmp[tmpName(w.name)] = w
	}
	err = later.RenameKept(ctx, dirs, manifest.MoverTempPrefix, func(tmp string, e Entry, ok bool) {
		mu.Lock()
		w := byTmp[tmp]
		delete(byTmp, tmp)
		mu.Unlock()
		if w == nil {
			return // (put with the batch, not one of its files: none is)
		}
		if ok {
			r.stampCopied(w, e)
		}
		r.count(w)
	})
	if err != nil {
		return nil, fmt.Errorf("make files durable and rename them at %s: %w", r.opts.Dst, err)
	}
	for _, w := range files {
		if byTmp[tmpName(w.name)] != nil {
			rest = append(rest, w)
		}
	}
	return rest, nil
}

// StatRenamer is implemented by destinations that can say, as they
// rename a file, what it shows (Local: an fstat of the file it links),
// as StampRenamer does for a queued rename. ok false: not known.
type StatRenamer interface {
	RenameStat(ctx context.Context, from, to string) (e Entry, ok bool, err error)
}

var _ StatRenamer = (*Local)(nil)

// StampRenamer is implemented by destinations that can say, with the
// answer to a queued rename, what the renamed file shows - its size and
// modification time, as a listing has them (the SFTP helper) - so that a
// file copied is stamped in the verified-file cache without a listing of
// its directory after the copy. One that cannot at the moment (an older
// helper, SFTP alone) returns an error wrapping remote.ErrNotOffered.
type StampRenamer interface {
	RenameStampLater(ctx context.Context, from, to string, l *remote.Later, stamp func(Entry)) error
}

// stampCopied records in the verified-file cache the stamp w shows at
// the destination once renamed into place (its data was written from
// what was hashed, and made durable before the rename), as remember
// would from a listing, and counts it for remember. A stamp that cannot
// be recorded is left to remember, which reports why.
func (r *runner) stampCopied(w *want, e Entry) {
	if err := r.opts.Checked.set(w.name, e, w.content()); err != nil {
		return
	}
	if !r.held[w] {
		k := bucketOf(w.name)
		r.copied.stamped(k, r.stamped[k].Add(1))
	}
}

// count adds a file now in place to the result.
func (r *runner) count(w *want) {
	r.resMu.Lock()
	r.res.Copied++
	r.res.Bytes += w.size
	r.resMu.Unlock()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sumString(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// decodeChannel parses channel.json strictly.
func decodeChannel(data []byte) (manifest.Channel, error) {
	var c manifest.Channel
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("malformed %s: %v: %w", manifest.ChannelFileName, err, manifest.ErrInvalid)
	}
	return c, c.Validate()
}

type atomicList struct {
	mu sync.Mutex
	l  []*want
}

func (a *atomicList) add(w *want) {
	a.mu.Lock()
	a.l = append(a.l, w)
	a.mu.Unlock()
}

func (a *atomicList) list() []*want {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.l
}

// finishAhead is how many batches may be handed to the finisher and not
// finished yet: the copy writes the next batches while the ones before
// are answered, synced and renamed, and waits only when the finisher is
// that far behind. A batch's renames travel behind the writes queued
// before them (up to 2560 files: the helper's batcher), so one finishes
// soon after the last of its writes is on the link.
const finishAhead = 4

// finisher finishes the batches of small files behind the copy
// (finishBatch), each on its own, so that the link never waits at a
// batch's end: not for the reply to its last write (a round trip), nor
// its SyncFS, nor its renames. Each batch is still renamed only once its
// writes were answered and a SyncFS issued after that returned: nothing is
// under a final name before it is durable. After a failure the batches
// not started are left under their temporary names.
type finisher struct {
	mu    sync.Mutex
	err   error         // the first failure
	ahead int           // the most not finished; 0: finishAhead
	slots chan struct{} // batches handed over, not finished (ahead)
	wg    sync.WaitGroup
}

// setAhead sets how many may be handed over and not finished, before the
// first is.
func (f *finisher) setAhead(n int) {
	f.mu.Lock()
	if f.slots == nil {
		f.ahead = n
	}
	f.mu.Unlock()
}

// start runs fn in the background, waiting while finishAhead batches are
// not finished, and returns an earlier failure. It is not called
// concurrently with wait.
func (f *finisher) start(ctx context.Context, fn func(context.Context) error) error {
	f.mu.Lock()
	if f.slots == nil {
		f.slots = make(chan struct{}, cmp.Or(f.ahead, finishAhead))
	}
	slots := f.slots
	f.mu.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := f.failed(); err != nil {
		<-slots
		return err
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer func() { <-slots }()
		if f.failed() != nil {
			return
		}
		if err := fn(ctx); err != nil {
			f.mu.Lock()
			if f.err == nil {
				f.err = err
			}
			f.mu.Unlock()
		}
	}()
	return nil
}

// failed returns the first failure of a batch finished so far.
func (f *finisher) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// wait waits for every batch handed over and returns the first failure.
func (f *finisher) wait() error {
	f.wg.Wait()
	return f.failed()
}
