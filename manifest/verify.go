package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// Status classifies a set. The zero value is StatusUnknown: verification
// did not get far enough to classify (an I/O or configuration error).
type Status int

// Statuses, from the best to the most alarming.
const (
	StatusUnknown      Status = iota
	StatusComplete            // all there, intact, authentic, for us, newer
	StatusIncomplete          // something is missing: wait (ErrIncomplete)
	StatusCorrupt             // something does not match: alert (ErrCorrupt)
	StatusNotAuthentic        // signature invalid or key not trusted (ErrNotAuthentic)
	StatusNotForUs            // another channel or direction (ErrNotForUs)
	StatusStale               // not newer than After (ErrStale)
)

var statusNames = [...]string{"unknown", "complete", "incomplete", "corrupt", "not-authentic", "not-for-us", "stale"}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// MarshalText makes a Status appear as its name in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a Status written by MarshalText.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown verification status %q: %w", b, ErrInvalid)
}

// Err is the sentinel error of the status (nil for complete and unknown).
func (s Status) Err() error {
	switch s {
	case StatusIncomplete:
		return ErrIncomplete
	case StatusCorrupt:
		return ErrCorrupt
	case StatusNotAuthentic:
		return ErrNotAuthentic
	case StatusNotForUs:
		return ErrNotForUs
	case StatusStale:
		return ErrStale
	}
	return nil
}

// DefaultMaxListed caps Report.Missing and Report.Corrupt.
const DefaultMaxListed = 100

// VerifyOptions says what to verify and against what.
type VerifyOptions struct {
	// Root is the channel directory; it may be read-only (nothing is
	// written below it).
	Root string
	// SetID is the set to verify; "" means the newest set that has a
	// signature file.
	SetID string
	// Expect is the channel the reader expects; empty fields are not checked.
	Expect Channel
	// AllowedSigners decides which keys may sign manifests. Required.
	AllowedSigners *sshsig.AllowedSigners
	// After refuses (ErrStale) a set whose sequence is not above it; 0 = no check.
	After uint64
	// MinEpoch is the highest fencing epoch the reader has seen on its own
	// (kept outside the channel, so deleting records cannot lower it). A
	// set whose epoch is below it or below the channel's recorded epoch
	// (ReadEpoch, with AllowedSigners) is refused: ErrSuperseded.
	MinEpoch uint64
	// Cache is the path of the file-identity cache ("" = none). It must not
	// be inside Root.
	Cache string
	// CacheMax bounds the entries kept in the cache (0 = DefaultCacheMax).
	CacheMax int
	// Workers hash files in parallel (0 = number of CPUs).
	Workers int
	// MaxListed caps Report.Missing and Report.Corrupt (0 = DefaultMaxListed).
	MaxListed int
	// Now is the time at which signing keys must be valid and against
	// which the set's creation time is checked (zero = now).
	Now time.Time
	// MaxClockSkew refuses (ErrFuture, a kind of ErrStale) a set created
	// more than this after Now (0 = DefaultMaxClockSkew; negative = no check).
	MaxClockSkew time.Duration
	// Progress receives progress reports (nil = none): the task "verify:
	// existence" (a stat of every file, total in files) and then "verify:
	// hashing" (total in bytes, Add for each file hashed or vouched for by
	// the cache). The totals are what the manifest announces for its trees
	// and Elasticsearch files plus the MySQL dump (lists are not counted).
	Progress Progress
}

// Report is the result of Verify.
type Report struct {
	SetID    string    `json:"set_id"`
	Sequence uint64    `json:"sequence"`
	Status   Status    `json:"status"`
	Manifest *Manifest `json:"-"`
	// Signer is the principals of the allowed_signers line that trusts the
	// signing key.
	Signer string `json:"signer,omitempty"`
	// Missing and Corrupt list what is missing or does not match, as paths
	// relative to the channel root with what references them, capped at
	// MaxListed; MissingCount and CorruptCount are the full counts.
	Missing      []string `json:"missing,omitempty"`
	Corrupt      []string `json:"corrupt,omitempty"`
	MissingCount int64    `json:"missing_count,omitempty"`
	CorruptCount int64    `json:"corrupt_count,omitempty"`
	// Files and Bytes count the files verified and their bytes (every
	// reference: a file whose content another file of the set shares counts
	// each time); Hashed counts the files read and Cached those the identity
	// cache vouched for. Files - Hashed - Cached were deduplicated.
	Files  int64 `json:"files"`
	Bytes  int64 `json:"bytes"`
	Hashed int64 `json:"hashed"`
	Cached int64 `json:"cached"`
	// Epoch is the channel's epoch the set was checked against: the
	// highest of its trusted epoch records and MinEpoch. EpochRecord is
	// that record (nil: none); EpochIgnored lists records not accepted.
	Epoch        uint64       `json:"epoch,omitempty"`
	EpochRecord  *EpochRecord `json:"epoch_record,omitempty"`
	EpochIgnored []string     `json:"epoch_ignored,omitempty"`
	// Superseded counts Elasticsearch repository metadata files of this set
	// that a newer repository generation replaced (see esGeneration); they
	// are not checked.
	Superseded int64 `json:"superseded,omitempty"`
}

// Verify classifies one set of the channel at opts.Root. The checks run
// cheapest first, and a set that fails one is not read further:
//
//  1. the manifest and its signature are there (else incomplete) and the
//     signature is valid and by a trusted key (else not authentic); nothing
//     from an unsigned manifest is trusted to drive any reading;
//  2. the manifest parses and is for the expected channel (not for us),
//     newer than opts.After (stale) and not created in the future beyond
//     opts.MaxClockSkew (ErrFuture, a kind of stale);
//  3. every referenced object and repository file exists with the right
//     size (else incomplete, listing what is missing; a wrong size is corrupt);
//  4. every file's SHA-256 matches, hashed in parallel (else corrupt).
//
// The returned report is non-nil whenever a set was looked at; the error is
// nil only for a complete set and otherwise wraps the status's sentinel
// (ErrNoSet when the channel has no set).
func Verify(ctx context.Context, opts VerifyOptions) (*Report, error) {
	if opts.AllowedSigners == nil {
		return nil, errors.New("verify: no allowed signers configured: cannot tell an authentic set")
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = DefaultMaxListed
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.Progress == nil {
		opts.Progress = NoProgress{}
	}
	if opts.Cache != "" && inside(opts.Cache, opts.Root) {
		return nil, fmt.Errorf("verify: cache %s is inside the channel %s; put it outside (the channel may be read-only and is copied by movers)", opts.Cache, opts.Root)
	}
	root, err := os.OpenRoot(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("verify: open channel: %w", err)
	}
	defer root.Close()
	v := &verifier{opts: opts, root: root, rep: &Report{}}
	if opts.Cache != "" {
		v.cache = openCache(opts.Cache, opts.CacheMax)
	}
	err = v.run(ctx)
	v.closeDirs()
	if v.cache != nil {
		if v.rep.Status == StatusUnknown {
			v.cache.close()
		} else if cerr := v.cache.finish(); cerr != nil && err == nil {
			err = fmt.Errorf("verify: set %s is complete, but saving the cache failed: %w", v.rep.SetID, cerr)
		}
	}
	if v.rep.SetID == "" {
		return nil, err
	}
	return v.rep, err
}

type verifier struct {
	opts  VerifyOptions
	root  *os.Root
	rep   *Report
	cache *idCache

	mu      sync.Mutex
	seenSHA map[[sha256.Size]byte]struct{} // objects hashed in this run (bounded)

	dirMu   sync.Mutex
	objDirs map[string]*os.File // objects/<aa>, opened on first use
}

// maxSeen bounds the set of objects remembered to avoid hashing a
// deduplicated object twice (about 3 MiB): past it, another reference to
// an object already hashed is hashed again.
const maxSeen = 1 << 16

func (v *verifier) fail(st Status, format string, a ...any) error {
	v.rep.Status = st
	return fmt.Errorf("set %s in %s: %s: %w", v.rep.SetID, v.opts.Root, fmt.Sprintf(format, a...), st.Err())
}

func (v *verifier) run(ctx context.Context) error {
	id := v.opts.SetID
	if id == "" {
		sets, err := List(v.opts.Root)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if len(sets) == 0 {
			return fmt.Errorf("verify: channel %s has no set: %w", v.opts.Root, ErrNoSet)
		}
		id = sets[len(sets)-1].ID
		for i := len(sets) - 1; i >= 0; i-- {
			if sets[i].HasSignature {
				id = sets[i].ID
				break
			}
		}
	}
	seq, err := ParseSetID(id)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.rep.SetID, v.rep.Sequence = id, seq
	setDir := SetsDirName + "/" + id

	// 1. Signature first: nothing unsigned drives any reading.
	data, err := v.readSmall(setDir+"/"+ManifestFileName, MaxManifestSize)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := v.root.Stat(setDir); serr != nil && v.opts.SetID != "" {
			return fmt.Errorf("verify: set %s not found in %s: %w", id, v.opts.Root, ErrNoSet)
		}
		return v.fail(StatusIncomplete, "manifest.json missing (a mover may still be copying)")
	}
	if err != nil {
		return v.classifyRead(err, "manifest.json")
	}
	sig, err := v.readSmall(setDir+"/"+SignatureFileName, 64<<10)
	if errors.Is(err, fs.ErrNotExist) {
		return v.fail(StatusIncomplete, "signature missing (manifest.json.sig; a mover may still be copying, or the producer died before signing)")
	}
	if err != nil {
		return v.classifyRead(err, "manifest.json.sig")
	}
	signer, err := v.opts.AllowedSigners.Verify(sig, bytes.NewReader(data), Namespace, v.opts.Now)
	if err != nil {
		return v.fail(StatusNotAuthentic, "signature not accepted: %v", err)
	}
	v.rep.Signer = signer

	// 2. Content, channel, staleness.
	m, err := Decode(data)
	if err != nil {
		v.rep.Status = StatusCorrupt
		return fmt.Errorf("set %s in %s: signed manifest unreadable: %w: %w", id, v.opts.Root, err, ErrCorrupt)
	}
	v.rep.Manifest = m
	if got := SetID(m.Sequence, m.Created); got != id {
		return v.fail(StatusNotAuthentic, "manifest belongs to set %s, not to the directory it is in (a copied or replayed manifest)", got)
	}
	if !m.Channel.Matches(v.opts.Expect) {
		return v.fail(StatusNotForUs, "set is for channel %s, expected %s", m.Channel, v.opts.Expect)
	}
	if cdata, err := v.readSmall(ChannelFileName, maxChannelFile); err == nil {
		ch, err := decodeChannel(ChannelFileName, cdata)
		if err != nil {
			return fmt.Errorf("verify: %s: %w", v.opts.Root, err)
		}
		if ch != m.Channel {
			return v.fail(StatusNotForUs, "set is for channel %s but this directory is channel %s", m.Channel, ch)
		}
	}
	if v.opts.After > 0 && m.Sequence <= v.opts.After {
		return v.fail(StatusStale, "sequence %d is not newer than %d (old or replayed set)", m.Sequence, v.opts.After)
	}
	if err := CheckCreated(id, m.Created, v.opts.Now, v.opts.MaxClockSkew); err != nil {
		v.rep.Status = StatusStale
		return fmt.Errorf("set %s in %s: %w", id, v.opts.Root, err)
	}
	if err := v.checkEpoch(m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// 3. Existence (and size), 4. content.
	if err := v.check(ctx, m); err != nil {
		return err
	}
	switch {
	case v.rep.CorruptCount > 0:
		return v.fail(StatusCorrupt, "%d file(s) do not match the manifest: %s", v.rep.CorruptCount, v.summary(v.rep.Corrupt, v.rep.CorruptCount))
	case v.rep.MissingCount > 0:
		return v.fail(StatusIncomplete, "%d file(s) missing: %s", v.rep.MissingCount, v.summary(v.rep.Missing, v.rep.MissingCount))
	}
	v.rep.Status = StatusComplete
	return nil
}

// checkEpoch refuses a set made in an epoch older than the channel's
// (DESIGN.md, "Fencing").
func (v *verifier) checkEpoch(m *Manifest) error {
	ce, err := readEpoch(v.root, v.opts.Root, m.Channel, v.opts.AllowedSigners, v.opts.Now)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	v.rep.EpochRecord, v.rep.EpochIgnored = ce.Record, ce.Ignored
	v.rep.Epoch = max(ce.Epoch(), v.opts.MinEpoch)
	if m.Epoch >= v.rep.Epoch {
		return nil
	}
	v.rep.Status = StatusStale
	why := fmt.Sprintf("this reader has seen epoch %d", v.opts.MinEpoch)
	if ce.Epoch() == v.rep.Epoch {
		why = "the channel records " + ce.Record.String()
	}
	return fmt.Errorf("set %s in %s: made in epoch %d, but %s: a set from a site that was superseded (a late set from the old active site) is never restored; the active site's next set will be: %w",
		v.rep.SetID, v.opts.Root, m.Epoch, why, ErrSuperseded)
}

func (v *verifier) summary(list []string, n int64) string {
	const show = 3
	s := strings.Join(list[:min(len(list), show)], ", ")
	if n > show {
		s += fmt.Sprintf(" and %d more", n-show)
	}
	return s
}

// classifyRead turns a read error of a set file into a status.
func (v *verifier) classifyRead(err error, what string) error {
	if errors.Is(err, ErrInvalid) {
		return v.fail(StatusCorrupt, "%s: %v", what, err)
	}
	return fmt.Errorf("verify: set %s in %s: %s: %w", v.rep.SetID, v.opts.Root, what, err)
}

// readSmall reads a small regular file below the root.
func (v *verifier) readSmall(rel string, limit int64) ([]byte, error) {
	f, err := v.open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, rel, limit)
}

// open opens a regular file below the root; os.Root refuses any path that
// leaves the root, through ".." or a symbolic link. O_NONBLOCK keeps a
// planted FIFO from blocking the open.
func (v *verifier) open(rel string) (*os.File, error) {
	f, _, err := v.openIn(v.root, rel)
	return f, err
}

// openFile opens f: an object as one name below its fan-out directory
// (objDir), anything else through the channel's root.
func (v *verifier) openFile(f file) (readStatCloser, fs.FileInfo, error) {
	if !f.object {
		fh, fi, err := v.openIn(v.root, f.rel)
		if err != nil {
			return nil, nil, err
		}
		return fh, fi, nil
	}
	d, err := v.objDir(f.sha)
	if err != nil {
		return nil, nil, err
	}
	return openAt(d, f.sha)
}

func (v *verifier) statFileInfo(f file) (fs.FileInfo, error) {
	if !f.object {
		return v.root.Stat(f.rel)
	}
	d, err := v.objDir(f.sha)
	if err != nil {
		return nil, err
	}
	return LstatAt(d, f.sha)
}

// objDir returns the descriptor of objects/<aa> for object sha, opened
// once through the channel's root (so neither it nor a directory above
// it may lead out of the channel). An object is then one name below it,
// opened and stat'ed without following a symbolic link: one system call
// each, not one per path element.
func (v *verifier) objDir(sha string) (int, error) {
	aa := sha[:2]
	v.dirMu.Lock()
	defer v.dirMu.Unlock()
	if d, ok := v.objDirs[aa]; ok {
		return int(d.Fd()), nil
	}
	d, err := v.root.Open(ObjectsDirName + "/" + aa)
	if err != nil {
		return -1, err
	}
	if fi, err := d.Stat(); err != nil || !fi.IsDir() {
		_ = d.Close()
		return -1, fmt.Errorf("%s/%s is not a directory: %w", ObjectsDirName, aa, ErrInvalid)
	}
	if v.objDirs == nil {
		v.objDirs = make(map[string]*os.File)
	}
	v.objDirs[aa] = d
	return int(d.Fd()), nil
}

func (v *verifier) closeDirs() {
	for _, d := range v.objDirs {
		_ = d.Close()
	}
}

// readStatCloser is an open file: *os.File or a rawFile.
type readStatCloser interface {
	io.ReadCloser
	Stat() (fs.FileInfo, error)
}

func (v *verifier) openIn(root *os.Root, rel string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := statRegular(f, rel)
	if err != nil {
		return nil, nil, err
	}
	return f, fi, nil
}

// statRegular stats an open file; anything but a regular file is an error
// wrapping ErrInvalid. f is closed on any error.
func statRegular(f readStatCloser, name string) (fs.FileInfo, error) {
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %v, not a regular file: %w", name, fi.Mode().Type(), ErrInvalid)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return fi, nil
}

func (v *verifier) addMissing(what string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rep.MissingCount++
	if len(v.rep.Missing) < v.opts.MaxListed {
		v.rep.Missing = append(v.rep.Missing, what)
	}
}

func (v *verifier) addCorrupt(what string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rep.CorruptCount++
	if len(v.rep.Corrupt) < v.opts.MaxListed {
		v.rep.Corrupt = append(v.rep.Corrupt, what)
	}
}

// file is one thing to check: a path below the root, its expected size and
// SHA-256, and what references it (for messages).
type file struct {
	rel    string
	size   int64
	sha    string
	object bool
	ref    string
	skip   bool // superseded repository metadata: not checked
}

func (f file) describe() string {
	if f.ref == "" {
		return f.rel
	}
	return f.rel + " (" + f.ref + ")"
}

// statFile checks that f exists below the root with its size. It reports
// missing or corrupt files and returns whether f is there and sized right;
// other errors (I/O) are returned.
func (v *verifier) statFile(f file) (bool, error) {
	fi, err := v.statFileInfo(f)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.addMissing(f.describe())
		return false, nil
	case err != nil:
		// A path escaping the root, a symlink loop, a non-directory on
		// the way: the file is not where the manifest says.
		v.addCorrupt(fmt.Sprintf("%s: %v", f.describe(), err))
		return false, nil
	case !fi.Mode().IsRegular():
		v.addCorrupt(fmt.Sprintf("%s: is a %v, not a regular file", f.describe(), fi.Mode().Type()))
		return false, nil
	case fi.Size() != f.size:
		v.addCorrupt(fmt.Sprintf("%s: %d bytes, manifest says %d", f.describe(), fi.Size(), f.size))
		return false, nil
	}
	return true, nil
}

// hashFile checks f's content, using the identity cache. It reports a
// mismatch as corrupt and returns I/O errors.
func (v *verifier) hashFile(ctx context.Context, f file, buf []byte) error {
	var sum [sha256.Size]byte
	if f.object {
		if _, err := hex.Decode(sum[:], []byte(f.sha)); err != nil {
			v.addCorrupt(fmt.Sprintf("%s: not an object name", f.describe()))
			return nil
		}
	}
	if f.object && v.seen(sum) {
		// Deduplicated content, verified already in this run.
		v.mu.Lock()
		v.rep.Files++
		v.rep.Bytes += f.size
		v.mu.Unlock()
		v.opts.Progress.Add(f.size)
		return nil
	}
	fh, before, err := v.openFile(f)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		v.addMissing(f.describe())
		return nil
	case errors.Is(err, ErrInvalid):
		v.addCorrupt(fmt.Sprintf("%s: %v", f.describe(), err))
		return nil
	case err != nil:
		return err
	}
	defer fh.Close()
	if v.cache != nil && v.cache.lookup(before, f.sha) {
		v.count(f, sum, true, true)
		return nil
	}
	if before.Size() != f.size {
		v.count(f, sum, false, false)
		v.addCorrupt(fmt.Sprintf("%s: %d bytes, manifest says %d", f.describe(), before.Size(), f.size))
		return nil
	}
	// The size is known: read exactly that much, no read to find the end.
	h := sha256.New()
	var n int64
	for n < f.size {
		if err := ctx.Err(); err != nil {
			return err
		}
		m, err := fh.Read(buf[:min(int64(len(buf)), f.size-n)])
		if m == 0 && err == nil {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // shorter than its stat said: the hash tells
			}
			return fmt.Errorf("read %s: %w", f.rel, err)
		}
		h.Write(buf[:m])
		n += int64(m)
	}
	got := hex.EncodeToString(h.Sum(nil))
	ok := got == f.sha && n == f.size
	v.count(f, sum, false, ok)
	if !ok {
		v.addCorrupt(fmt.Sprintf("%s: content has SHA-256 %s and %d bytes, manifest says %s and %d", f.describe(), got, n, f.sha, f.size))
		return nil
	}
	if v.cache != nil {
		if after, err := fh.Stat(); err == nil && sameIdentity(before, after) {
			v.cache.add(after, f.sha)
		}
	}
	return nil
}

func (v *verifier) seen(sum [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.seenSHA[sum]
	return ok
}

func (v *verifier) count(f file, sum [sha256.Size]byte, cached, ok bool) {
	v.mu.Lock()
	v.rep.Files++
	v.rep.Bytes += f.size
	if cached {
		v.rep.Cached++
	} else {
		v.rep.Hashed++
	}
	if ok && f.object && len(v.seenSHA) < maxSeen {
		v.seenSHA[sum] = struct{}{}
	}
	v.mu.Unlock()
	v.opts.Progress.Add(f.size)
}

// check runs phases 3 and 4 over everything m references. Lists are
// objects too: each is verified (size and hash) before its lines are
// trusted, then streamed once per phase, so memory does not depend on how
// many files a set has.
func (v *verifier) check(ctx context.Context, m *Manifest) error {
	v.seenSHA = make(map[[sha256.Size]byte]struct{})
	type list struct {
		f    file
		es   bool
		tree string
		t    *Tree // a 2.0 tree: f is its root directory's list
	}
	var tops []file
	var lists []list
	var totalFiles, totalBytes int64
	if d := m.MySQL; d != nil {
		tops = append(tops, objFile(d.Object.SHA256, d.Object.Size, "mysql dump"))
		totalFiles++
		totalBytes += d.Object.Size
	}
	if es := m.Elasticsearch; es != nil {
		lists = append(lists, list{f: objFile(es.Files.SHA256, es.Files.Size, "elasticsearch file list"), es: true})
		totalFiles += es.FileCount
		totalBytes += es.Bytes
	}
	for i, t := range m.Trees {
		if t.Dir.SHA256 != "" {
			lists = append(lists, list{f: objFile(t.Dir.SHA256, t.Dir.Size, "tree "+t.Name+" root directory list"), tree: t.Name, t: &m.Trees[i]})
			totalFiles += t.Dirs
		} else {
			lists = append(lists, list{f: objFile(t.List.SHA256, t.List.Size, "tree "+t.Name+" file list"), tree: t.Name})
		}
		totalFiles += t.Files
		totalBytes += t.Bytes
	}

	// The lists themselves: present, right size, right hash (the cache's
	// first section).
	var good []list
	buf := make([]byte, 1<<20)
	if v.cache != nil {
		v.cache.begin()
	}
	for _, l := range lists {
		ok, err := v.statFile(l.f)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		before := v.rep.CorruptCount + v.rep.MissingCount
		if err := v.hashFile(ctx, l.f, buf); err != nil {
			return err
		}
		if v.rep.CorruptCount+v.rep.MissingCount == before {
			good = append(good, l)
		}
	}
	if v.cache != nil {
		v.cache.end()
	}
	// Elasticsearch rewrites index.latest and replaces the repository's
	// metadata files (index-N, shard index-*) with every snapshot; see
	// esGeneration.
	var esSuperseded, esSkipLatest bool
	if m.Elasticsearch != nil {
		esSuperseded, esSkipLatest = v.esGeneration(m.Elasticsearch.Generation)
	}

	// each streams the files of every good list.
	each := func(fn func(file) error) error {
		for _, l := range good {
			if l.t != nil {
				if err := v.eachInTree(ctx, *l.t, fn); err != nil {
					return err
				}
				continue
			}
			fh, err := v.open(l.f.rel)
			if err != nil {
				return err
			}
			if l.es {
				err = ReadESFiles(fh, func(e ESFile) error {
					f := file{rel: ESDirName + "/" + e.Path, size: e.Size, sha: e.SHA256, ref: "elasticsearch"}
					f.skip = esSuperseded && IsESMetadata(e.Path) || esSkipLatest && e.Path == ESIndexLatest
					return fn(f)
				})
			} else {
				err = ReadEntries(fh, func(e Entry) error {
					if e.Type != TypeFile {
						return nil
					}
					f := objFile(e.Object, e.Size, "tree "+l.tree+": "+e.Path)
					return fn(f)
				})
			}
			_ = fh.Close()
			if errors.Is(err, ErrInvalid) {
				// The list hashed right, so the producer wrote a bad list.
				v.addCorrupt(fmt.Sprintf("%s: %v", l.f.describe(), err))
				continue
			}
			if err != nil {
				return err
			}
		}
		return nil
	}

	// Phase 3: existence and size. Stats wait on the file server more
	// than on the CPU, so more of them run at once than hashes.
	v.opts.Progress.Begin("verify: existence", totalFiles, "files")
	// The files the lists name are also spooled, compactly, to an unlinked
	// temporary file outside the channel, so that phase 4 need not parse
	// the lists a second time. Without a usable temporary directory the
	// lists are simply parsed again.
	sp := newSpool()
	defer sp.close()
	err := pool(ctx, max(4*v.opts.Workers, 16), func(feed func(file) error) error {
		for _, f := range tops {
			if err := feed(f); err != nil {
				return err
			}
		}
		return each(func(f file) error {
			sp.add(f)
			return feed(f)
		})
	}, func(ctx context.Context, f file, _ []byte) error {
		if f.skip {
			v.mu.Lock()
			v.rep.Superseded++
			v.mu.Unlock()
			return nil
		}
		_, err := v.statFile(f)
		return err
	}, 0)
	v.opts.Progress.End()
	if err != nil {
		return fmt.Errorf("verify: set %s in %s: %w", v.rep.SetID, v.opts.Root, err)
	}
	if v.rep.MissingCount > 0 || v.rep.CorruptCount > 0 {
		return nil
	}

	// Phase 4: content, on a pool of workers fed by the streamed lists.
	// With the identity cache, in cacheSections passes over the spool,
	// each hashing the files of one section of the cache (the first hex
	// digit of their SHA-256), so that only that section is in memory.
	v.opts.Progress.Begin("verify: hashing", totalBytes, "bytes")
	defer v.opts.Progress.End()
	passes := 1
	if v.cache != nil {
		if sp.rewind() {
			passes = cacheSections
		} else {
			v.cache.close() // no spool: the lists are read once more, without the cache
			v.cache = nil
		}
	}
	for k := range passes {
		in := func(f file) bool { return passes == 1 || sectionOf(f.sha) == k }
		if passes > 1 {
			v.cache.begin()
			v.seenSHA = make(map[[sha256.Size]byte]struct{}) // a sha is in one section only
		}
		err = pool(ctx, v.opts.Workers, func(feed func(file) error) error {
			for _, f := range tops {
				if in(f) {
					if err := feed(f); err != nil {
						return err
					}
				}
			}
			if !sp.rewind() {
				return each(func(f file) error {
					if !in(f) {
						return nil
					}
					return feed(f)
				})
			}
			if passes == 1 {
				return sp.each(feed)
			}
			return sp.eachIn(k, feed)
		}, func(ctx context.Context, f file, buf []byte) error {
			if f.skip {
				return nil
			}
			return v.hashFile(ctx, f, buf)
		}, 1<<20)
		if err != nil {
			return fmt.Errorf("verify: set %s in %s: %w", v.rep.SetID, v.opts.Root, err)
		}
		if passes > 1 {
			v.cache.end()
		}
	}
	return nil
}

// eachInTree calls fn for every file of a 2.0 tree and for every directory
// list below its root (the root's list was checked with the manifest's
// other lists), decoding Workers lists at a time (WalkDirs). Walk checks each list's hash before reading its lines; a
// missing list is reported missing, a damaged one corrupt, and the walk
// of that tree stops there.
func (v *verifier) eachInTree(ctx context.Context, t Tree, fn func(file) error) error {
	r := TreeReader{
		Open: func(ref Ref) (io.ReadCloser, error) { return v.open(ObjectRel(ref.SHA256)) },
		List: func(ref Ref) error {
			if ref == t.Dir {
				return nil
			}
			return fn(objFile(ref.SHA256, ref.Size, "tree "+t.Name+" directory list"))
		},
	}
	err := r.WalkDirs(ctx, t, v.opts.Workers, func(e Entry) error {
		if e.Type != TypeFile {
			return nil
		}
		return fn(objFile(e.Object, e.Size, "tree "+t.Name+": "+e.Path))
	})
	switch {
	case errors.Is(err, ErrIncomplete):
		v.addMissing(err.Error())
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrInvalid):
		v.addCorrupt(err.Error())
	default:
		return err
	}
	return nil
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// esGeneration compares the repository generation in the channel's
// es/index.latest (8 bytes, big endian) with the generation gen a set was
// taken at:
//
//   - newer, and es/index-<newer> is there: the set's metadata files have
//     been superseded; Elasticsearch deleted or rewrote them, and the newer
//     generation lists every snapshot not deleted. They are skipped
//     (superseded = true); the set's data blobs are still checked.
//   - newer but es/index-<newer> is missing, or older: a mover is between
//     the repository root files; reported as missing (incomplete), and
//     index.latest is not checked further (skipLatest = true).
//   - equal, absent or unreadable: the files are checked like any other.
func (v *verifier) esGeneration(gen int64) (superseded, skipLatest bool) {
	data, err := v.readSmall(ESDirName+"/"+ESIndexLatest, 8)
	if err != nil {
		return false, false
	}
	live, ok := ESGeneration(data)
	if !ok {
		return false, false
	}
	switch {
	case live > gen:
		fi, err := v.root.Stat(ESDirName + "/" + ESGenerationFile(live))
		if err == nil && fi.Mode().IsRegular() {
			return true, false
		}
		v.addMissing(fmt.Sprintf("%s/%s (named by %s/%s)", ESDirName, ESGenerationFile(live), ESDirName, ESIndexLatest))
		return false, true
	case live < gen:
		v.addMissing(fmt.Sprintf("%s/%s names generation %d, this set needs %d (the mover has not copied the repository root yet)", ESDirName, ESIndexLatest, live, gen))
		return false, true
	}
	return false, false
}

// pool runs work on every file that produce feeds, on n goroutines, each
// with its own buffer of bufSize bytes. The first error stops everything.
// Files go to the workers poolBatch at a time: one channel hop per batch,
// not per file.
func pool(ctx context.Context, n int, produce func(feed func(file) error) error, work func(context.Context, file, []byte) error, bufSize int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan []file, 2*n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var buf []byte
			if bufSize > 0 {
				buf = make([]byte, bufSize)
			}
			for fs := range jobs {
				for _, f := range fs {
					if ctx.Err() != nil {
						break // drain
					}
					if err := work(ctx, f, buf); err != nil {
						cancel(err)
					}
				}
			}
		})
	}
	batch := make([]file, 0, poolBatch)
	send := func() error {
		select {
		case jobs <- batch:
			batch = make([]file, 0, poolBatch)
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	err := produce(func(f file) error {
		batch = append(batch, f)
		if len(batch) < poolBatch {
			return nil
		}
		return send()
	})
	if err == nil && len(batch) > 0 {
		err = send()
	}
	close(jobs)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && err == nil {
		err = cause
	}
	return err
}

const poolBatch = 64

func objFile(sha string, size int64, ref string) file {
	return file{rel: ObjectRel(sha), size: size, sha: sha, object: true, ref: ref}
}
