package mover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// planWorkers is how many buckets are planned (or remembered) at once:
// each holds its files and the listings of its directories at both ends,
// and over SFTP their listings are in flight together.
const planWorkers = 8

// plan is what the destination lacks of one set. The spooled files' part
// is on disk, by bucket (classTodo, classCheck, classDamaged; after
// checkPresent classTodo and classOK); the held files' part in memory.
type plan struct {
	todo  [numPhases][]*want // of the held files
	check []classed          // held files present with the right size, not known intact
	spool bucketFiles

	mu       sync.Mutex
	nTodo    int64           // spooled files to copy
	nCheck   [numBuckets]int // spooled files to hash, per bucket
	bytes    int64           // to copy
	mkdirs   map[string]bool // directories to create at the destination
	dirs     map[string]bool // every directory holding the set's files
	files    int64           // files the set needs
	present  int64           // intact at the destination
	replaced int64           // damaged at the destination
	missing  []string        // the first few names missing or short at the source
	nMissing int
	digests  map[string][32]byte // directories listed after the copy (for the record), if not nil
}

func (p *plan) close() {
	if p != nil {
		p.spool.close()
	}
}

func (p *plan) checks() int64 {
	n := int64(len(p.check))
	for _, c := range p.nCheck {
		n += int64(c)
	}
	return n
}

func (p *plan) todos() int64 {
	n := p.nTodo
	for _, t := range p.todo {
		n += int64(len(t))
	}
	return n
}

// planSet classifies every file of s at the destination, bucket by bucket
// (planWorkers at once): one listing of each directory at the destination
// and, for the files it lacks, one at the source, merged with the bucket's
// files and its part of the verified-file cache. A set whose files the
// destination lacks are not all at the source with their size is not
// complete (manifest.ErrIncomplete): it is never forwarded. early, if not
// nil, is s's buckets planned while the destination connected
// (planEarly): taken if the destination lacks what it assumed.
func (r *runner) planSet(ctx context.Context, s *setFiles, early *earlyPlan) (*plan, error) {
	// The held files are planned beside the buckets, and beside the
	// listings the buckets wait for: their look-up goes over the link
	// with those instead of after them.
	g, gctx := errgroup.WithContext(ctx)
	hp := r.newPlan()
	var held []classed
	g.Go(func() (err error) {
		held, err = r.planHeld(gctx, hp, s.special)
		return err
	})
	var p *plan
	g.Go(func() error {
		gone, err := r.goneDirs(gctx)
		if err != nil {
			early.discard()
			return err
		}
		if p = early.take(gctx, gone); p != nil {
			return nil
		}
		p = r.newPlan()
		return r.planBuckets(gctx, p, s, gone)
	})
	err := g.Wait()
	if p == nil {
		p = hp
	} else {
		p.add(hp)
	}
	for _, c := range held {
		if c.class == classTodo {
			p.todo[c.w.phase] = append(p.todo[c.w.phase], c.w)
		} else {
			p.check = append(p.check, c)
		}
	}
	if err == nil && p.nMissing > 0 {
		more := ""
		if p.nMissing > len(p.missing) {
			more = fmt.Sprintf(" and %d more", p.nMissing-len(p.missing))
		}
		err = fmt.Errorf("set %s at %s: missing or short: %s%s: %w", s.id, r.opts.Src, strings.Join(p.missing, ", "), more, manifest.ErrIncomplete)
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// add adds what o (the held files' plan) counts, its directories and its
// missing files to p.
func (p *plan) add(o *plan) {
	p.files += o.files
	p.present += o.present
	p.replaced += o.replaced
	p.bytes += o.bytes
	p.addMissing(o.nMissing, o.missing)
	maps.Copy(p.dirs, o.dirs)
	maps.Copy(p.mkdirs, o.mkdirs)
}

// addMissing counts n more files missing or short at the source, names
// the first few of them (p.mu held where p is shared).
func (p *plan) addMissing(n int, names []string) {
	p.nMissing += n
	p.missing = append(p.missing, names...)
	slices.Sort(p.missing)
	p.missing = p.missing[:min(len(p.missing), 3)]
}

// newPlan is an empty plan, its spool beside the verified-file cache.
func (r *runner) newPlan() *plan {
	p := &plan{mkdirs: map[string]bool{}, dirs: map[string]bool{}}
	p.spool.base = r.opts.Checked.spoolBase()
	return p
}

// earlyPlan is a set's buckets planned as if the destination held none of
// their directories (planEarly), on a first copy while the destination
// connects: over a far link the connection takes as long as planning 100k
// files, and such a plan needs nothing from the destination.
type earlyPlan struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the plan has ended (err set)
	p      *plan         // nil once taken or discarded
	err    error
}

// planEarly starts planning s's buckets (planBuckets) in the background
// as if every directory were missing at the destination: the plan of a
// destination that lacks all of them (take checks that it does).
func (r *runner) planEarly(ctx context.Context, s *setFiles) *earlyPlan {
	ctx, cancel := context.WithCancel(ctx)
	e := &earlyPlan{cancel: cancel, done: make(chan struct{}), p: r.newPlan()}
	go func() {
		defer close(e.done)
		e.err = r.planBuckets(ctx, e.p, s, func(string) bool { return true })
	}()
	return e
}

// earlyTaken counts the early plans taken (tests: a plan made twice would
// go unnoticed otherwise).
var earlyTaken atomic.Int64

// take returns the early plan if gone (goneDirs) says the destination
// lacks every directory it holds files in, or nil (then the buckets are
// planned again, against what is there). A destination that holds one of
// the directories planned so far stops the early plan at once, and so
// does ctx ending.
func (e *earlyPlan) take(ctx context.Context, gone func(string) bool) *plan {
	if e == nil {
		return nil
	}
	lacksAll := func() bool {
		e.p.mu.Lock()
		defer e.p.mu.Unlock()
		for d := range e.p.dirs {
			if !gone(d) {
				return false
			}
		}
		return true
	}
	if gone == nil || !lacksAll() {
		e.discard()
		return nil
	}
	select {
	case <-e.done:
	case <-ctx.Done():
	}
	if ctx.Err() != nil || e.err != nil || !lacksAll() {
		e.discard()
		return nil
	}
	p := e.p
	e.p = nil
	earlyTaken.Add(1)
	return p
}

// discard stops the early plan and removes what it spooled.
func (e *earlyPlan) discard() {
	if e == nil {
		return
	}
	e.cancel()
	<-e.done
	e.p.close()
	e.p = nil
}

// planBuckets plans the spooled files of s, bucket by bucket
// (eachBucket), into p's spool.
func (r *runner) planBuckets(ctx context.Context, p *plan, s *setFiles, gone func(string) bool) error {
	return r.eachBucket(ctx, s.spool, bucketWalk{look: true, gone: gone}, func(gctx context.Context, k int, ahead listings) error {
		recs, err := readBucket(s.spool, k)
		if err != nil {
			return err
		}
		ws := make([]*want, len(recs))
		names := make([]string, len(recs))
		for i := range recs {
			ws[i], names[i] = recs[i].w, recs[i].w.name
		}
		view, err := r.opts.Checked.viewNames(k, names)
		if err != nil {
			return err
		}
		out, err := r.planFiles(gctx, p, ws, view, ahead)
		if err != nil || len(out) == 0 {
			return err
		}
		var buf []byte
		nCheck := 0
		for _, c := range out {
			buf = appendWant(buf, c.class, c.w)
			if c.class != classTodo {
				nCheck++
			}
		}
		p.mu.Lock()
		p.nCheck[k] = nCheck
		p.nTodo += int64(len(out) - nCheck)
		p.mu.Unlock()
		return p.spool.replace(k, buf, len(out))
	})
}

// planHeld classifies the held files (ws: manifest, lists, indexes) with
// their stamps, as planFiles does; the caller puts them in p.
func (r *runner) planHeld(ctx context.Context, p *plan, ws []*want) ([]classed, error) {
	view := map[string]stamp{}
	for _, w := range ws {
		st, ok, err := r.opts.Checked.lookup(w.name)
		if err != nil {
			return nil, err
		}
		if ok {
			view[w.name] = st
		}
	}
	return r.planFiles(ctx, p, ws, view, listings{})
}

// goneDirs says which directories the destination lacks, as its
// listings of its root and of objects/ show them: those were fetched at
// the start of a run that plans the whole set (prefetchDst), and a
// directory they show missing need be neither looked in nor listed (a
// first copy's 256 below objects/, and es/). nil where they were not
// fetched (a plan beside a recorded set looks up a few names in
// directories that are there).
func (r *runner) goneDirs(ctx context.Context) (func(dir string) bool, error) {
	if !r.objectsAhead {
		return nil, nil
	}
	root, err := r.dst.dir(ctx, ".")
	if err != nil {
		return nil, err
	}
	objs, err := r.dst.dir(ctx, manifest.ObjectsDirName)
	if err != nil {
		return nil, err
	}
	isDir := func(d map[string]Entry, name string) bool {
		e, ok := d[name]
		return ok && e.Dir
	}
	return func(dir string) bool {
		first, rest, below := strings.Cut(dir, "/")
		switch {
		case dir == ".":
			return false
		case !isDir(root, first):
			return true
		case first != manifest.ObjectsDirName || !below:
			return false
		}
		second, _, _ := strings.Cut(rest, "/")
		return !isDir(objs, second)
	}, nil
}

// planFiles classifies ws (one bucket's, or the held files) with one
// listing per directory, or a look-up of its few names (fetched ahead,
// else all of ws's at once: lookUpRest), and checks that what is to be copied or hashed
// is at the source. It returns the files that are not known intact at the
// destination with their class, and adds the rest to p.
func (r *runner) planFiles(ctx context.Context, p *plan, ws []*want, view map[string]stamp, ahead listings) ([]classed, error) {
	byDir := map[string][]*want{}
	for _, w := range ws {
		d := dirOf(w.name)
		byDir[d] = append(byDir[d], w)
	}
	var out []classed
	var present, replaced, bytes int64
	var missing []string
	ahead, err := r.lookUpRest(ctx, ahead, byDir)
	if err != nil {
		return nil, err
	}
	for d, dws := range byDir {
		var ents map[string]Entry
		var err error
		if found, ok := ahead.found[d]; ok {
			ents = found
		} else if st, ok := stater(r.opts.Dst, ahead, d, len(dws)); ok {
			ents, err = statNames(ctx, st, d, dws)
		} else {
			ents, err = ahead.dir(ctx, r.opts.Dst, d)
		}
		if err != nil {
			return nil, err
		}
		var need []*want // to copy or hash: must be at the source
		for _, w := range dws {
			st, known := view[w.name]
			e, ok := ents[baseOf(w.name)]
			sum := w.content()
			switch {
			case ok && !e.Dir && e.Size == w.size && !r.opts.Checksum && okStamp(st, known, e, sum):
				present++
				continue
			case ok && !e.Dir && supersededStamp(st, known, e, sum):
				// the version verified there before, which this set
				// replaces (es/index.latest): an update, nothing to hash
				out = append(out, classed{classTodo, w})
				bytes += w.size
			case ok && !e.Dir && e.Size == w.size:
				// there, but not known to be intact
				class := byte(classCheck)
				if damagedStamp(st, known, w) {
					class = classDamaged
				}
				out = append(out, classed{class, w})
			default:
				if ok && damagedStamp(st, known, w) {
					replaced++
				}
				out = append(out, classed{classTodo, w})
				bytes += w.size
			}
			if w.data == nil {
				need = append(need, w)
			}
		}
		if len(need) > 0 {
			var src map[string]Entry
			if st, ok := stater(r.opts.Src, listings{}, d, len(need)); ok {
				src, err = statNames(ctx, st, d, need)
			} else {
				src, err = listDir(ctx, r.opts.Src, d, true)
			}
			if err != nil {
				return nil, err
			}
			for _, w := range need {
				if e, ok := src[baseOf(w.name)]; !ok || e.Dir || e.Size >= 0 && e.Size != w.size {
					missing = append(missing, w.name)
				}
			}
		}
		p.mu.Lock()
		p.dirs[d] = true
		if ents == nil && dws[0].phase < phaseManifest {
			// the set's directory is made only when its manifest is written
			p.mkdirs[d] = true
		}
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.files += int64(len(ws))
	p.present += present
	p.replaced += replaced
	p.bytes += bytes
	p.addMissing(len(missing), missing)
	return out, nil
}

// listDir lists dir at f, by name; a missing directory is a nil map.
// names asks for names only where f can list them more cheaply (sizes are
// then -1).
func listDir(ctx context.Context, f FS, dir string, names bool) (map[string]Entry, error) {
	var ents []Entry
	var err error
	if nl, ok := f.(NameLister); ok && names {
		ents, err = nl.ReadDirNames(ctx, dir)
	} else {
		ents, err = f.ReadDir(ctx, dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return byName(ents), nil
}

// byName is a listing by name; nil for nil (a missing directory).
func byName(ents []Entry) map[string]Entry {
	if ents == nil {
		return nil
	}
	m := make(map[string]Entry, len(ents))
	for _, e := range ents {
		m[e.Name] = e
	}
	return m
}

// aheadEntries is the most of a set's files whose buckets' directories
// at the destination eachBucket lists at once, before they are planned or
// remembered: a window of buckets, a request or a few instead of a round
// trip per directory, and at most two windows' listings held (eachBucket
// fetches one window ahead). About 32 buckets at a million files; a set
// of up to 128k files is one window, one find over SFTP alone where
// eight were run one after the other.
const aheadEntries = 1 << 17

// listings is what was fetched ahead at the destination: whole listings
// of directories (listAhead; nil entries for a missing one) and the
// entries of the few names of others looked up (lookUp; a nil map for a
// missing one). The zero listings holds none.
type listings struct {
	lists map[string][]Entry
	found map[string]map[string]Entry
}

// lookUpFew looks up at the destination, in one go (lookUp), the names
// of each bucket of sp with at most statMax files, where it can
// (StatManyer) and bw.look allows (the record's digests need whole
// listings): the entries found, by directory, and the buckets looked up
// (none from a destination that cannot). A directory bw.gone says is
// missing is not looked in (a nil map).
func (r *runner) lookUpFew(ctx context.Context, sp *bucketFiles, bw bucketWalk) (map[string]map[string]Entry, *[numBuckets]bool, error) {
	var few [numBuckets]bool
	if _, can := r.opts.Dst.(StatManyer); !bw.look || !can {
		return nil, &few, nil
	}
	gone := bw.gone
	names := map[string][]string{}
	missing := map[string]map[string]Entry{}
	for k := range numBuckets {
		if n := sp.count(k); !bw.holds(sp, k) || n > statMax {
			continue
		}
		cs, err := readBucket(sp, k)
		if err != nil {
			return nil, nil, err
		}
		for _, c := range cs {
			d := dirOf(c.w.name)
			if gone != nil && gone(d) {
				missing[d] = nil
				continue
			}
			names[d] = append(names[d], baseOf(c.w.name))
		}
		few[k] = true
	}
	found, offered, err := lookUp(ctx, r.opts.Dst, names)
	if !offered {
		// an older helper: listed after all (those gone says are
		// missing, without a request: eachBucket)
		return nil, &[numBuckets]bool{}, err
	}
	if len(missing) > 0 {
		if found == nil {
			found = missing
		} else {
			maps.Copy(found, missing)
		}
	}
	return found, &few, err
}

// lookUpRest is ahead with, where the destination can (StatManyer), the
// names of each directory of byDir with at most statMax of them looked up
// in one go unless ahead holds that directory already.
func (r *runner) lookUpRest(ctx context.Context, ahead listings, byDir map[string][]*want) (listings, error) {
	if _, can := r.opts.Dst.(StatManyer); !can {
		return ahead, nil
	}
	names := map[string][]string{}
	for d, dws := range byDir {
		_, listed := ahead.lists[d]
		if _, found := ahead.found[d]; found || listed || len(dws) > statMax {
			continue
		}
		for _, w := range dws {
			names[d] = append(names[d], baseOf(w.name))
		}
	}
	found, _, err := lookUp(ctx, r.opts.Dst, names)
	if err != nil || len(found) == 0 {
		return ahead, err
	}
	out := listings{lists: ahead.lists, found: make(map[string]map[string]Entry, len(ahead.found)+len(found))}
	maps.Copy(out.found, ahead.found)
	maps.Copy(out.found, found)
	return out, nil
}

// listAhead lists dirs at the destination in a few requests where it can
// (DirsLister); nil where it cannot (then each is listed on its own). A
// directory it could not list is left out, to be listed on its own. One
// that gone (if not nil) says is missing is not listed: a nil listing.
func (r *runner) listAhead(ctx context.Context, dirs []string, gone func(string) bool) (map[string][]Entry, error) {
	out := make(map[string][]Entry, len(dirs))
	if gone != nil {
		there := dirs[:0:0]
		for _, d := range dirs {
			if gone(d) {
				out[d] = nil
			} else {
				there = append(there, d)
			}
		}
		dirs = there
	}
	dl, ok := r.opts.Dst.(DirsLister)
	if !ok || len(dirs) == 0 {
		return out, nil
	}
	res, err := dl.ReadDirs(ctx, dirs)
	if errors.Is(err, remote.ErrNotOffered) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	addListings(out, dirs, res)
	return out, nil
}

// addListings adds the listings res of dirs to out by directory: a
// missing one's nil, one that could not be listed left out (to be listed
// on its own).
func addListings(out map[string][]Entry, dirs []string, res []remote.DirList) {
	for i, d := range dirs {
		switch {
		case res[i].Err == nil:
			out[d] = res[i].Entries
		case errors.Is(res[i].Err, fs.ErrNotExist):
			out[d] = nil
		}
	}
}

// bucketDirs is the object directories of the buckets of win that hold
// files (and bw does not leave out) and were not looked up (few): nearly
// every directory a set's buckets have (the others are listed on their
// own).
func bucketDirs(sp *bucketFiles, win window, few *[numBuckets]bool, bw bucketWalk) []string {
	var dirs []string
	for j := win.from; j < win.to; j++ {
		if bw.holds(sp, j) && !few[j] {
			dirs = append(dirs, fmt.Sprintf("%s/%02x", manifest.ObjectsDirName, j))
		}
	}
	return dirs
}

// window is the buckets from, up to but not including to.
type window struct{ from, to int }

// bucketWindows splits the buckets of sp that hold files (and bw does not
// leave out) into windows of consecutive buckets holding at most most
// files between them, a bucket with more a window of its own.
func bucketWindows(sp *bucketFiles, bw bucketWalk, most int) []window {
	var wins []window
	n := 0 // files in the last window
	for k := range numBuckets {
		if !bw.holds(sp, k) {
			continue
		}
		c := sp.count(k)
		if len(wins) == 0 || n+c > most {
			wins, n = append(wins, window{from: k}), 0
		}
		wins[len(wins)-1].to = k + 1
		n += c
	}
	return wins
}

// list returns dir's listing at f: fetched ahead, or listed now. A missing
// directory is a nil list.
func (l listings) list(ctx context.Context, f FS, dir string) ([]Entry, error) {
	if ents, ok := l.lists[dir]; ok {
		return ents, nil
	}
	ents, err := f.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ents, err
}

// dir is list by name, as listDir gives it.
func (l listings) dir(ctx context.Context, f FS, dir string) (map[string]Entry, error) {
	ents, err := l.list(ctx, f, dir)
	if err != nil {
		return nil, err
	}
	return byName(ents), nil
}

// baseOf is path.Base for the clean, relative names of a set's files.
func baseOf(name string) string { return name[strings.LastIndexByte(name, '/')+1:] }

// dirOf is path.Dir for the clean, relative names of a set's files.
func dirOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return "."
}

// copySet copies what the destination lacks, phase by phase.
func (r *runner) copySet(ctx context.Context, s *setFiles, p *plan, chData []byte) error {
	dst := r.opts.Dst
	r.res.Files = p.files
	r.res.Present, r.res.Replaced = p.present, p.replaced
	r.res.SkippedDirs = s.skipped
	if r.opts.DryRun {
		r.res.Copied += p.todos() + p.checks()
		r.res.Bytes = p.bytes
		return nil
	}
	// The destination changes from here: what its objects/ showed when
	// the run began no longer holds for a set planned later (copyOlder).
	r.objectsAhead = false
	r.held, r.stamped, r.tailLists = map[*want]bool{}, new([numBuckets]atomic.Int32), nil
	for _, t := range p.todo {
		for _, w := range t {
			r.held[w] = true
		}
	}
	for _, c := range p.check {
		r.held[c.w] = true
	}
	if err := r.prepare(ctx, p, chData); err != nil {
		return err
	}
	if err := r.checkPresent(ctx, p); err != nil {
		return err
	}
	_, digester := dst.(Digester)
	record := digester && s.id == r.res.Set // the newest set only (see copyOlder)
	// Planned beside the base set with nothing skipped: every file was
	// compared, a full comparison.
	beside := s.beside && s.skipped > 0
	r.copied = nil
	if record && !beside {
		r.copied = r.startCopiedDigests(ctx, p)
		defer r.copied.finish() // (a copy that failed)
	}
	r.opts.Progress.Begin("copy "+s.id, p.bytes, "bytes")
	defer r.opts.Progress.End()
	var unsynced []string // directories of a phase whose renames are not durable yet
	for phase := range p.todo {
		if phase > phaseData {
			done, err := r.publishTail(ctx, p.todo[phase:], unsynced)
			if err != nil {
				return err
			}
			if done {
				unsynced = nil
				break
			}
		}
		if err := r.syncDirs(ctx, unsynced); err != nil {
			return err
		}
		if phase == phaseManifest && len(p.todo[phase]) > 0 {
			setDir := manifest.SetsDirName + "/" + s.id
			if err := dst.MkdirAll(ctx, setDir); err != nil {
				return fmt.Errorf("create %s at %s: %w", setDir, dst, err)
			}
		}
		st := &wantStream{held: p.todo[phase]}
		if phase == phaseData {
			st.p = p
		}
		var err error
		if unsynced, err = r.copyPhase(ctx, st); err != nil {
			return err
		}
	}
	if err := r.syncDirs(ctx, unsynced); err != nil {
		return err
	}
	if record && !beside {
		p.digests = map[string][32]byte{}
	}
	if !r.opts.NoPrune {
		// prune's look at pins/, while the set is remembered (over a far
		// link a round trip at the end of every run).
		r.prefetchDst(ctx, manifest.PinsDirName)
	}
	// The digests of the directories remember does not list are asked
	// for beside it (recordDirs would ask after it: one more round trip).
	var early map[string][32]byte
	g, gctx := errgroup.WithContext(ctx)
	if p.digests != nil {
		g.Go(func() (err error) {
			early, err = r.stampedDigests(gctx, p, r.copied.finish())
			return err
		})
	}
	g.Go(func() error { return r.remember(gctx, p) })
	if err := g.Wait(); err != nil {
		return err
	}
	for d, sum := range early {
		if _, ok := p.digests[d]; !ok {
			p.digests[d] = sum
		}
	}
	switch {
	case record && beside:
		// Whole at the destination as the base set was, with what
		// changed since copied and verified: a base for the next run
		// too, until the next full comparison. No digests: they would
		// cost a listing of every directory.
		rec := &setRecord{set: s.id, manifest: sumString(string(s.raw)), files: p.files, fullAt: r.base.rec.fullAt}
		if old := r.base.rec; old.set != rec.set || old.manifest != rec.manifest || len(old.dirs) > 0 {
			r.opts.Checked.setRecord(rec) // (the same record again would rewrite the cache file for nothing)
		}
	case record:
		rec := &setRecord{set: s.id, manifest: sumString(string(s.raw)), files: p.files, dirs: sortedKeys(p.dirs), fullAt: r.start}
		return r.recordDirs(ctx, rec, p.digests)
	}
	return nil
}

// prepare readies the destination for the copy of p, the steps at once
// (over a far link each is a round trip or a few, which one after the
// other cost 0.75 s of a first copy): the channel's identity written
// where it is missing, then the epoch records; more connections opened
// where there is enough work; the directories the copy needs created;
// and whether the destination can sync a whole file system asked
// (canBatch). None of them writes a set's file.
func (r *runner) prepare(ctx context.Context, p *plan, chData []byte) error {
	dst := r.opts.Dst
	root, err := r.dst.dir(ctx, ".")
	if err != nil {
		return err
	}
	work := p.todos() + p.checks()
	probe := func(ctx context.Context) error {
		if work == 0 {
			return nil
		}
		_, err := r.canBatch(ctx)
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := r.writeIdentity(gctx, chData); err != nil {
			return err
		}
		if root == nil { // the probe syncs the destination's directory: made now
			return probe(gctx)
		}
		return nil
	})
	// Enough work to be worth more connections?
	if work > 16 || p.bytes > 64<<20 {
		for _, f := range []FS{r.opts.Src, dst} {
			if e, ok := f.(Expander); ok {
				g.Go(func() error {
					if err := e.Expand(gctx); err != nil && gctx.Err() == nil {
						return fmt.Errorf("open more connections to %s: %w", f, err)
					}
					return nil
				})
			}
		}
	}
	g.Go(func() error { return mkdirs(gctx, dst, sortedKeys(p.mkdirs), r.opts.Workers) })
	if root != nil {
		g.Go(func() error { return probe(gctx) })
	}
	return g.Wait()
}

// writeChannel writes the channel's identity (chData) at the destination
// where it has none: in one request where the destination can (Publisher),
// and creating the destination's directory only where it is missing.
func (r *runner) writeChannel(ctx context.Context, chData []byte) error {
	dst := r.opts.Dst
	if _, ok, err := r.dst.stat(ctx, manifest.ChannelFileName); err != nil || ok {
		return err
	}
	if root, err := r.dst.dir(ctx, "."); err != nil { // (listed by prepare)
		return err
	} else if root == nil {
		if err := dst.MkdirAll(ctx, "."); err != nil {
			return fmt.Errorf("create %s: %w", dst, err)
		}
	}
	if pub, ok := dst.(Publisher); ok {
		f, err := r.admitted(ctx, manifest.ChannelFileName, chData, "")
		if err != nil {
			return err
		}
		err = pub.Publish(ctx, []remote.Published{f})
		if !errors.Is(err, remote.ErrNotOffered) {
			return err
		}
	}
	return r.cp.writeBytes(ctx, manifest.ChannelFileName, chData, "")
}

// checkPresent hashes the files present at the destination with the
// right size but not known to be intact; one that differs joins the copy,
// counted as damaged unless it is a version this set replaces.
func (r *runner) checkPresent(ctx context.Context, p *plan) error {
	total := p.checks()
	if total == 0 {
		return nil
	}
	r.opts.Progress.Begin("check files already at the destination", total, "files")
	defer r.opts.Progress.End()
	// hash hashes cs and returns them reclassified: classTodo or classOK.
	hash := func(cs []classed) error {
		var ws []*want
		idx := map[*want]int{}
		for i, c := range cs {
			if c.class == classCheck || c.class == classDamaged {
				idx[c.w] = i
				ws = append(ws, c.w)
			}
		}
		var bad atomicList
		err := r.each(ctx, ws, nil, func(ctx context.Context, w *want) error {
			defer r.opts.Progress.Add(1)
			got, n, err := hashFile(ctx, r.opts.Dst, w.name)
			if err != nil {
				return err
			}
			if got != w.content() || n != w.size {
				bad.add(w)
			}
			return nil
		})
		if err != nil {
			return err
		}
		isBad := map[*want]bool{}
		for _, w := range bad.list() {
			isBad[w] = true
		}
		for _, w := range ws {
			c := &cs[idx[w]]
			if !isBad[w] {
				c.class = classOK
				r.res.Present++
				continue
			}
			if c.class == classDamaged {
				r.res.Replaced++
			}
			if err := r.opts.Checked.drop(w.name); err != nil {
				return err
			}
			c.class = classTodo
			p.bytes += w.size
		}
		return nil
	}
	if err := hash(p.check); err != nil {
		return err
	}
	for _, c := range p.check {
		if c.class == classTodo {
			p.todo[c.w.phase] = append(p.todo[c.w.phase], c.w)
		}
	}
	for k, n := range p.nCheck {
		if n == 0 {
			continue
		}
		cs, err := readBucket(&p.spool, k)
		if err != nil {
			return err
		}
		if err := hash(cs); err != nil {
			return err
		}
		var buf []byte
		for _, c := range cs {
			buf = appendWant(buf, c.class, c.w)
			if c.class == classTodo {
				p.nTodo++
			}
		}
		p.nCheck[k] = 0
		if err := p.spool.replace(k, buf, len(cs)); err != nil {
			return err
		}
	}
	return nil
}

// remember adds every file that is now in place and was hashed (copied,
// or checked) to the verified-file cache, with the size and time the
// destination shows: bucket by bucket, one listing per directory.
func (r *runner) remember(ctx context.Context, p *plan) error {
	var held []*want
	for _, t := range p.todo {
		held = append(held, t...)
	}
	for _, w := range held {
		r.dst.forget(dirOf(w.name)) // listings from before the copy
	}
	if r.opts.Checked.path == "" {
		return nil
	}
	// The held files.
	for _, c := range p.check {
		if c.class == classOK {
			held = append(held, c.w)
		}
	}
	view := map[string]stamp{}
	for _, w := range held {
		st, ok, err := r.opts.Checked.lookup(w.name)
		if err != nil {
			return err
		}
		if ok {
			view[w.name] = st
		}
	}
	// The held files' few directories are listed (or looked in) beside the
	// buckets', in one request where the destination can, unless the
	// request that wrote the last phases listed them (publishTail).
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var ahead listings
		if r.tailLists != nil {
			ahead.lists = r.tailLists
		} else if p.digests != nil {
			dirs := map[string]bool{}
			for _, w := range held {
				dirs[dirOf(w.name)] = true
			}
			lists, err := r.listAhead(gctx, sortedKeys(dirs), nil)
			if err != nil {
				return err
			}
			ahead.lists = lists
		}
		return r.rememberFiles(gctx, p, held, view, ahead)
	})
	g.Go(func() error { return r.rememberBuckets(gctx, p) })
	return g.Wait()
}

// rememberBuckets is remember for the spooled files, bucket by bucket.
func (r *runner) rememberBuckets(ctx context.Context, p *plan) error {
	// A bucket whose every file was stamped as it was renamed into place
	// (StampRenamer) needs no look: its directories' digests for the
	// record come from the destination (recordDirs).
	stamped := func(k int) bool { return int(r.stamped[k].Load()) == p.spool.count(k) }
	return r.eachBucket(ctx, &p.spool, bucketWalk{look: p.digests == nil, skip: stamped}, func(gctx context.Context, k int, ahead listings) error {
		cs, err := readBucket(&p.spool, k)
		if err != nil {
			return err
		}
		ws := make([]*want, 0, len(cs))
		var names []string
		for _, c := range cs {
			if c.class == classTodo || c.class == classOK {
				ws = append(ws, c.w)
				names = append(names, c.w.name)
			}
		}
		view, err := r.opts.Checked.viewNames(k, names)
		if err != nil {
			return err
		}
		return r.rememberFiles(gctx, p, ws, view, ahead)
	})
}

// bucketWalk says which buckets eachBucket goes through and what it
// fetches ahead for them at the destination.
type bucketWalk struct {
	look bool                  // the few names of a bucket looked up, not listed (lookUpFew)
	gone func(dir string) bool // if not nil: directories known missing, neither looked in nor listed
	skip func(k int) bool      // if not nil: buckets left out
}

// holds says whether bucket k of sp holds files and is not left out.
func (bw bucketWalk) holds(sp *bucketFiles, k int) bool {
	return sp.count(k) > 0 && (bw.skip == nil || !bw.skip(k))
}

// eachBucket calls fn for every bucket of sp that holds files (and bw
// does not leave out), planWorkers at once, with what was fetched ahead
// at the destination: first the few names of every bucket that has few
// (where bw.look allows) looked up, all in one go (lookUpFew), then, a
// window of buckets at a time (bucketWindows: aheadEntries files, or
// r.aheadEntries where set), the listings of the window's other
// directories, in one go (listAhead). The next window's listings are
// fetched while the buckets of this one are handled, so the link does not
// idle between windows; at most two windows' listings are held. A failed
// fetch fails eachBucket when its window is reached; no fetch outlives it.
func (r *runner) eachBucket(ctx context.Context, sp *bucketFiles, bw bucketWalk, fn func(ctx context.Context, k int, ahead listings) error) error {
	found, few, err := r.lookUpFew(ctx, sp, bw)
	if err != nil {
		return err
	}
	most := aheadEntries
	if r.aheadEntries > 0 {
		most = r.aheadEntries
	}
	wins := bucketWindows(sp, bw, most)
	type fetched struct {
		lists map[string][]Entry
		err   error
	}
	ctx, cancel := context.WithCancel(ctx)
	var next chan fetched // the next window's listings, being fetched
	defer func() {
		cancel()
		if next != nil {
			<-next
		}
	}()
	fetch := func(win window) chan fetched {
		ch := make(chan fetched, 1)
		go func() {
			lists, err := r.listAhead(ctx, bucketDirs(sp, win, few, bw), bw.gone)
			ch <- fetched{lists, err}
		}()
		return ch
	}
	if len(wins) > 0 {
		next = fetch(wins[0])
	}
	for i, win := range wins {
		got := <-next
		next = nil
		if got.err != nil {
			return got.err
		}
		if i+1 < len(wins) {
			next = fetch(wins[i+1])
		}
		ahead := listings{lists: got.lists, found: found}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(planWorkers)
		for k := win.from; k < win.to; k++ {
			if bw.holds(sp, k) {
				g.Go(func() error { return fn(gctx, k, ahead) })
			}
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// rememberFiles lists the directories of ws (or looks up their few
// names, as planFiles) and sets the stamp of each one present that
// differs from view's. Where p.digests is not nil, it lists every
// directory and keeps the digest of each listing there (for recordDirs).
func (r *runner) rememberFiles(ctx context.Context, p *plan, ws []*want, view map[string]stamp, ahead listings) error {
	byDir := map[string][]*want{}
	for _, w := range ws {
		d := dirOf(w.name)
		byDir[d] = append(byDir[d], w)
	}
	if p.digests == nil {
		var err error
		if ahead, err = r.lookUpRest(ctx, ahead, byDir); err != nil {
			return err
		}
	}
	for d, dws := range byDir {
		var ents map[string]Entry
		found, looked := ahead.found[d]
		st, ok := stater(r.opts.Dst, ahead, d, len(dws))
		switch {
		case looked && p.digests == nil:
			ents = found
		case ok && p.digests == nil:
			var err error
			if ents, err = statNames(ctx, st, d, dws); err != nil {
				return err
			}
		default:
			list, err := ahead.list(ctx, r.opts.Dst, d)
			if err != nil {
				return err
			}
			if p.digests != nil {
				sum := remote.Digest(list)
				p.mu.Lock()
				p.digests[d] = sum
				p.mu.Unlock()
			}
			ents = byName(list)
		}
		for _, w := range dws {
			e, ok := ents[baseOf(w.name)]
			if !ok {
				continue
			}
			if st := (stamp{e.Size, e.ModTime.UnixNano(), w.content()}); view[w.name] != st {
				if err := r.opts.Checked.set(w.name, e, st.sum); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// stampedDigests returns, where the destination can fingerprint its
// directories (Digester), the digests of p's directories that remember
// does not list: those of buckets whose every file was stamped as it was
// renamed, but for the held files' directories; those taken behind the
// copy (copied) are not asked for again. Where the destination cannot, or
// the request fails, it returns none: recordDirs takes what is missing
// its own way.
func (r *runner) stampedDigests(ctx context.Context, p *plan, copied map[string][32]byte) (map[string][32]byte, error) {
	dg, ok := r.opts.Dst.(Digester)
	if !ok {
		return nil, nil
	}
	heldDirs := r.heldDirs()
	var dirs []string
	for _, d := range sortedKeys(p.dirs) {
		if _, ok := copied[d]; ok {
			continue
		}
		if k := bucketOf(d + "/-"); !heldDirs[d] && int(r.stamped[k].Load()) == p.spool.count(k) {
			dirs = append(dirs, d)
		}
	}
	if len(dirs) == 0 {
		return copied, nil
	}
	sums, err := dg.DirDigests(ctx, dirs)
	if err != nil {
		return copied, ctx.Err()
	}
	if copied == nil {
		copied = make(map[string][32]byte, len(dirs))
	}
	for i, d := range dirs {
		copied[d] = sums[i]
	}
	return copied, nil
}

// recordDirs takes the digest of each of rec's directories as listed now
// (planWorkers at once), unless known already (have, listed after the
// copy), and keeps rec as the set verified at the destination.
func (r *runner) recordDirs(ctx context.Context, rec *setRecord, have map[string][32]byte) error {
	rec.digests = make([][32]byte, len(rec.dirs))
	var rest []int // not known yet
	for i, d := range rec.dirs {
		if sum, ok := have[d]; ok {
			rec.digests[i] = sum
		} else {
			rest = append(rest, i)
		}
	}
	if dg, ok := r.opts.Dst.(Digester); ok && len(rest) > 0 {
		// Fingerprinted where they are, in a few requests; on any error
		// (a directory missing) each is listed below.
		dirs := make([]string, len(rest))
		for j, i := range rest {
			dirs[j] = rec.dirs[i]
		}
		sums, err := dg.DirDigests(ctx, dirs)
		switch {
		case err == nil:
			for j, i := range rest {
				rec.digests[i] = sums[j]
			}
			rest = nil
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNoDigest):
			// A destination that cannot fingerprint its directories
			// (SFTP alone without a shell, GNU find or base64): the next
			// run could not compare digests either (unchanged), so
			// listing every directory here to record them would be
			// time spent for nothing (7 s of a 10 s "nothing to do" at
			// 50 ms, bench/wan.md).
			return nil
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(planWorkers)
	for _, i := range rest {
		d := rec.dirs[i]
		g.Go(func() error {
			ents, err := r.opts.Dst.ReadDir(gctx, d)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			rec.digests[i] = remote.Digest(ents)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	r.opts.Checked.setRecord(rec)
	return nil
}

// wantStream hands out the files of a phase: the held ones, then (p set)
// the spooled ones to copy, bucket by bucket.
type wantStream struct {
	held []*want
	p    *plan
	k    int
	cur  []*want
	read int64 // of p's files to copy, those read into cur so far
}

// left is how many files the stream has still to hand out.
func (s *wantStream) left() int64 {
	n := int64(len(s.held) + len(s.cur))
	if s.p != nil {
		n += s.p.nTodo - s.read
	}
	return n
}

// next returns up to n more files; none at the end.
func (s *wantStream) next(n int) ([]*want, error) {
	var out []*want
	for len(out) < n {
		switch {
		case len(s.held) > 0:
			m := min(n-len(out), len(s.held))
			out, s.held = append(out, s.held[:m]...), s.held[m:]
		case len(s.cur) > 0:
			m := min(n-len(out), len(s.cur))
			out, s.cur = append(out, s.cur[:m]...), s.cur[m:]
		case s.p == nil || s.k >= numBuckets:
			return out, nil
		default:
			k := s.k
			s.k++
			if s.p.spool.count(k) == 0 {
				continue
			}
			data, err := s.p.spool.read(k)
			if err != nil {
				return nil, err
			}
			err = decodeWants(data, func(class byte, w *want) error {
				if class == classTodo {
					s.cur = append(s.cur, w)
					s.read++
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// copyPhase copies the files of st with Workers in flight; their
// directory entries must be durable before the next phase starts. Where
// the destination can sync a whole file system (FSSyncer), small files
// are copied in batches: written without fsync, one SyncFS, then renamed;
// one more SyncFS of the directories returned (unsynced), the caller's,
// makes the renames durable. Otherwise every file is fsynced before its
// rename and the directories are fsynced where the backend can.
func (r *runner) copyPhase(ctx context.Context, st *wantStream) (unsynced []string, err error) {
	if done, err := r.publishPhase(ctx, st); done || err != nil {
		return nil, err
	}
	dirs := map[string]bool{}
	next := func() ([]*want, error) {
		files, err := st.next(batchSize(st.left()))
		for _, w := range files {
			dirs[path.Dir(w.name)] = true
		}
		return files, err
	}
	files, err := next()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	batch, err := r.canBatch(ctx)
	if err != nil {
		return nil, err
	}
	if !batch {
		for len(files) > 0 {
			if _, err := r.writeFiles(ctx, files, false); err != nil {
				return nil, err
			}
			if files, err = next(); err != nil {
				return nil, err
			}
		}
		if ds, ok := r.opts.Dst.(DirSyncer); ok {
			for d := range dirs {
				if err := ds.SyncDir(ctx, d); err != nil {
					return nil, fmt.Errorf("fsync directory %s at %s: %w", d, r.opts.Dst, err)
				}
			}
		}
		return nil, nil
	}
	// Each batch is handed to finishBatch, in order, once written; the
	// finisher syncs and renames up to finishAhead batches at once, behind
	// the copy of the next. Once they all are, the renames are left to
	// the caller to make durable.
	for len(files) > 0 {
		pending, err := r.writeFiles(ctx, files, true)
		if err != nil {
			return nil, err // what is pending stays under temporary names
		}
		if err := r.finishBatch(ctx, pending); err != nil {
			return nil, err
		}
		if files, err = next(); err != nil {
			return nil, err
		}
	}
	if err := cmp.Or(r.streams.wait(), r.fin.wait()); err != nil {
		return nil, err
	}
	return sortedKeys(dirs), nil
}

// syncDirs makes the renames of a batched phase in dirs (copyPhase's
// unsynced) durable; nothing for none.
func (r *runner) syncDirs(ctx context.Context, dirs []string) error {
	if len(dirs) == 0 {
		return nil
	}
	return r.syncFS(ctx, dirs)
}

// StepPublisher is implemented by destinations that can, in one request,
// make what was written to the file systems holding some directories
// durable and then carry out several phases of a few small files one
// after the other, each as Publisher does and only once the one before is
// durable, the directories holding a phase's files made first (the SFTP
// helper). One that cannot at the moment (an older helper, SFTP alone)
// returns an error wrapping remote.ErrNotOffered. Once the phases are
// done, one that can lists the directories of list in the same request
// and returns their listings in list's order; one that cannot returns
// none (nil), and the caller lists them.
type StepPublisher interface {
	PublishSteps(ctx context.Context, sync []string, steps [][]remote.Published, list []string) ([]remote.DirList, error)
}

// publishTail copies the last phases (phases, each of a few small held
// files: indexes, the manifest, its signature) in one request where the
// destination can (StepPublisher), after making the renames in unsynced
// durable: one round trip at the end of a copy instead of one per phase
// and one for the SyncFS. The same request lists, once they are done, the
// held files' directories (kept in r.tailLists for remember) and pins/
// (for prune), which would otherwise be listed in a round trip of their
// own after it. done false: it cannot, nothing was written or synced, and
// copySet goes phase by phase.
func (r *runner) publishTail(ctx context.Context, phases [][]*want, unsynced []string) (done bool, err error) {
	sp, ok := r.opts.Dst.(StepPublisher)
	if !ok || r.noSteps {
		return false, nil
	}
	var steps [][]*want
	for _, ws := range phases {
		if len(ws) == 0 {
			continue
		}
		if !publishable(ws) {
			return false, nil
		}
		steps = append(steps, ws)
	}
	if len(steps) == 0 {
		return false, nil
	}
	files := make([][]remote.Published, len(steps))
	for i, ws := range steps {
		if files[i], err = r.published(ctx, ws); err != nil {
			return true, err
		}
	}
	list := sortedKeys(r.heldDirs())
	if !r.opts.NoPrune {
		list = append(list, manifest.PinsDirName)
	}
	lists, err := sp.PublishSteps(ctx, unsynced, files, list)
	if errors.Is(err, remote.ErrNotOffered) {
		r.noSteps = true // not asked again for the phases left
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("write the last %d phases at %s: %w", len(steps), r.opts.Dst, err)
	}
	if len(lists) == len(list) {
		r.tailLists = make(map[string][]Entry, len(list))
		addListings(r.tailLists, list, lists)
		if pins := lists[len(lists)-1]; !r.opts.NoPrune && (pins.Err == nil || errors.Is(pins.Err, fs.ErrNotExist)) {
			r.dst.put(manifest.PinsDirName, pins.Entries, pins.Err == nil)
		}
	}
	for i, ws := range steps {
		r.countPublished(ws, files[i])
	}
	return true, nil
}

// publishMax is the most files of a phase that publishPhase sends in one
// request (the last phases hold one to a few).
const publishMax = 64

// publishPhase copies a phase of a few small held files in one request
// where the destination can (Publisher: written, fsynced, renamed and
// their directories fsynced, one round trip instead of four). done false:
// it cannot, nothing was written, and copyPhase goes the usual way.
func (r *runner) publishPhase(ctx context.Context, st *wantStream) (done bool, err error) {
	pub, ok := r.opts.Dst.(Publisher)
	if !ok || st.p != nil || !publishable(st.held) {
		return false, nil
	}
	files, err := r.published(ctx, st.held)
	if err != nil {
		return true, err
	}
	err = pub.Publish(ctx, files)
	if errors.Is(err, remote.ErrNotOffered) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	r.countPublished(st.held, files)
	st.held = nil
	return true, nil
}

// publishable says whether ws can go in one Publish: one to publishMax
// small files, each of a known size.
func publishable(ws []*want) bool {
	if len(ws) == 0 || len(ws) > publishMax {
		return false
	}
	for _, w := range ws {
		if w.size > smallFile || w.data == nil && w.size < 0 {
			return false
		}
	}
	return true
}

// published is ws to publish: each one's data (read from the source where
// not held), checked against its sum and admitted by the bandwidth limit.
func (r *runner) published(ctx context.Context, ws []*want) ([]remote.Published, error) {
	files := make([]remote.Published, 0, len(ws))
	for _, w := range ws {
		data := w.data
		if data == nil {
			var err error
			if data, err = r.cp.readWhole(ctx, w.name, w.size, new([]byte)); err != nil {
				return nil, err
			}
		}
		f, err := r.admitted(ctx, w.name, data, w.checkSum())
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

// admitted is data as name's, checked (against sum if not "") and admitted
// by the bandwidth limit: a file for Publish or PublishSteps.
func (r *runner) admitted(ctx context.Context, name string, data []byte, sum string) (remote.Published, error) {
	if err := r.cp.admitData(ctx, name, data, sum); err != nil {
		return remote.Published{}, err
	}
	return remote.Published{Tmp: tmpName(name), Name: name, Data: data}, nil
}

// countPublished adds the files published (ws, written as files) to the
// progress and the result.
func (r *runner) countPublished(ws []*want, files []remote.Published) {
	r.addProgress(files)
	for _, w := range ws {
		r.count(w)
	}
}

// addProgress adds the bytes of the files published to the progress.
func (r *runner) addProgress(files []remote.Published) {
	if r.cp.progress == nil {
		return
	}
	for _, f := range files {
		r.cp.progress.Add(int64(len(f.Data)))
	}
}
