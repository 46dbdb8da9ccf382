package mover

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/manifest"
)

// Copy phases, in the order the write-order rules require: data first
// (objects and Elasticsearch data blobs), then the repository's root
// generation file index-N, then index.latest, then the manifest, and the
// signature last, which is what makes the set exist for readers.
const (
	phaseData = iota
	phaseIndexN
	phaseIndexLatest
	phaseManifest
	phaseSignature
	numPhases
)

// indexLatest is the channel path of the repository's generation file.
const indexLatest = manifest.ESDirName + "/" + manifest.ESIndexLatest

// want is one file a set needs.
type want struct {
	name  string // relative to the channel root
	size  int64
	sum   string // hex SHA-256
	phase int
	data  []byte // content known in advance (manifest, signature, index.latest)
}

// content is the SHA-256 the file must have: its list's, or for the
// manifest and its signature (which have none of their own) that of the
// data itself.
func (w *want) content() string {
	if w.sum == "" && w.data != nil {
		return sumString(string(w.data))
	}
	return w.sum
}

// checkSum is the SHA-256 the data written for w is checked against: none
// for the manifest and its signature (the signature covers the manifest;
// it has no hash of its own).
func (w *want) checkSum() string {
	if w.phase >= phaseManifest {
		return ""
	}
	return w.sum
}

// setFiles is what one set needs, deduplicated by name. The files whose
// content is not known in advance and that go with the objects (phase
// data: objects, lists, Elasticsearch blobs) - all but a handful - are
// spooled to disk by bucket (see bucketFiles), so that a set of a million
// files is not a million names in memory; the rest (the repository's root
// files, the manifest, its signature) is held.
type setFiles struct {
	id      string
	m       *manifest.Manifest
	raw     []byte // manifest.json
	spool   *bucketFiles
	special []*want
	keep    func(m *manifest.Manifest, name string) bool // nil keeps every file
	rec     []byte                                       // scratch for one record
	// beside is set when the set's 2.0 trees were walked beside an older
	// set's (loadSet's old): the files below skipped directories (whose
	// list reference is the old set's) were not enumerated.
	beside  bool
	skipped int64 // directories skipped so
}

func (s *setFiles) add(w *want) error {
	if s.keep != nil && !s.keep(s.m, w.name) {
		return nil
	}
	if w.phase == phaseData && w.data == nil {
		s.rec = appendWant(s.rec[:0], classFile, w)
		return s.spool.add(bucketOf(w.name), s.rec)
	}
	for i, o := range s.special {
		if o.name == w.name {
			s.special[i] = w
			return nil
		}
	}
	s.special = append(s.special, w)
	return nil
}

// close removes the spool.
func (s *setFiles) close() {
	if s != nil && s.spool != nil {
		s.spool.close()
	}
}

func setRel(id, file string) string { return manifest.SetsDirName + "/" + id + "/" + file }

// readSmall reads a whole small file from f.
func readSmall(ctx context.Context, f FS, name string, limit int64) ([]byte, error) {
	r, err := f.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s at %s: %w", name, f, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s at %s is larger than %d bytes: %w", name, f, limit, ErrCorrupt)
	}
	return data, nil
}

// loadSet reads and checks one set's manifest and signature from f and
// enumerates every file it needs, reading its lists (each checked against
// its SHA-256 while read). verify checks the signature; nil skips that (for
// sets already at the destination, which only decide what to keep). keep,
// if not nil, leaves out the files it says no to. The files are spooled
// into sp, or into a spool of their own under base if sp is nil (the
// caller closes the set).
//
// old, if not nil, is a set the caller knows whole at the destination
// (baseSet): each 2.0 tree of the set is walked beside old's tree of the
// same name (manifest.TreeReader.WalkBeside) and the files below a
// directory whose list reference equals old's are left out - they, and
// the lists naming them, are old's and already there.
func loadSet(ctx context.Context, f FS, id string, verify func(data, sig []byte) error, keep func(*manifest.Manifest, string) bool, sp *bucketFiles, base string, old *manifest.Manifest) (_ *setFiles, err error) {
	mdata, sig, m, err := readManifest(ctx, f, id, verify)
	if err != nil {
		return nil, err
	}
	own := sp == nil
	if own {
		sp = &bucketFiles{base: base}
	}
	s := &setFiles{id: id, m: m, raw: mdata, spool: sp, keep: keep}
	defer func() {
		if err != nil && own {
			s.close()
		}
	}()
	var w want
	obj := func(r manifest.Ref) error {
		w = want{name: manifest.ObjectRel(r.SHA256), size: r.Size, sum: r.SHA256, phase: phaseData}
		return s.add(&w)
	}
	addObj := func(sha string, size int64) error { return obj(manifest.Ref{SHA256: sha, Size: size}) }
	if es := m.Elasticsearch; es != nil {
		if err := obj(es.Files); err != nil {
			return nil, err
		}
		err := readList(ctx, f, es.Files, func(r io.Reader) error {
			return readLines(r, func(line []byte) error {
				var e manifest.ESFile
				if err := json.Unmarshal(line, &e); err != nil {
					return fmt.Errorf("%w: %w", manifest.ErrInvalid, err)
				}
				if err := e.Validate(); err != nil {
					return err
				}
				w := &want{name: manifest.ESDirName + "/" + e.Path, size: e.Size, sum: e.SHA256, phase: phaseData}
				switch {
				case e.Path == manifest.ESIndexLatest:
					w.phase = phaseIndexLatest
					// The source's may already point at a newer
					// generation, so write the one this set needs.
					b := manifest.ESIndexLatestContent(es.Generation)
					if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == e.SHA256 {
						w.data = b
					}
				case manifest.IsESGenerationFile(e.Path):
					w.phase = phaseIndexN
				}
				return s.add(w)
			})
		})
		if err != nil {
			return nil, fmt.Errorf("set %s: elasticsearch file list: %w", id, err)
		}
	}
	if d := m.MySQL; d != nil {
		if err := obj(d.Object); err != nil {
			return nil, err
		}
	}
	for _, t := range m.Trees {
		if t.Dir.SHA256 != "" {
			// Format 2.0: a list per directory, each checked against its
			// name before its lines are used; the lists are objects to
			// copy like the files they name.
			r := manifest.TreeReader{
				Open: func(ref manifest.Ref) (io.ReadCloser, error) { return f.Open(ctx, manifest.ObjectRel(ref.SHA256)) },
				List: obj,
			}
			file := func(e manifest.Entry) error {
				if e.Type == manifest.TypeFile {
					return addObj(e.Object, e.Size)
				}
				return nil
			}
			var err error
			if ot, ok := oldTree(old, t.Name); ok {
				s.beside = true
				var rootSame bool
				rootSame, err = r.WalkBeside(ctx, t, ot, func(e manifest.Entry, same bool) error {
					if same {
						s.skipped++
						return nil
					}
					return file(e)
				})
				if rootSame {
					s.skipped++
				}
			} else {
				// (A first copy, or a full comparison: the lists read
				// and decoded planWorkers at a time.)
				err = r.WalkDirs(ctx, t, planWorkers, file)
			}
			if err != nil {
				return nil, fmt.Errorf("set %s at %s: %w", id, f, err)
			}
			continue
		}
		if err := obj(t.List); err != nil {
			return nil, err
		}
		err := readList(ctx, f, t.List, func(r io.Reader) error {
			// Only what the copy needs, checked cheaply: the list's hash
			// (checked at its end, before anything is copied) ties it to
			// the signed manifest; restore validates every field.
			var e struct {
				Type   string `json:"type"`
				Size   int64  `json:"size"`
				Object string `json:"object"`
			}
			return readLines(r, func(line []byte) error {
				if o, size, ok := fastEntry(line); ok {
					if o != "" {
						return addObj(o, size)
					}
					return nil
				}
				e.Type, e.Size, e.Object = "", 0, ""
				if err := json.Unmarshal(line, &e); err != nil {
					return fmt.Errorf("%w: %w", manifest.ErrInvalid, err)
				}
				if e.Type != manifest.TypeFile {
					return nil
				}
				if !manifest.ValidSHA256(e.Object) || e.Size < 0 {
					return fmt.Errorf("file list entry with object %q size %d: %w", e.Object, e.Size, manifest.ErrInvalid)
				}
				return obj(manifest.Ref{SHA256: e.Object, Size: e.Size})
			})
		})
		if err != nil {
			return nil, fmt.Errorf("set %s: tree %s file list: %w", id, t.Name, err)
		}
	}
	if err := s.add(&want{name: setRel(id, manifest.ManifestFileName), size: int64(len(mdata)), phase: phaseManifest, data: mdata}); err != nil {
		return nil, err
	}
	if sig != nil {
		if err := s.add(&want{name: setRel(id, manifest.SignatureFileName), size: int64(len(sig)), phase: phaseSignature, data: sig}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// oldTree is old's 2.0 tree named name, if it has one.
func oldTree(old *manifest.Manifest, name string) (manifest.Tree, bool) {
	if old == nil {
		return manifest.Tree{}, false
	}
	for _, t := range old.Trees {
		if t.Name == name && t.Dir.SHA256 != "" {
			return t, true
		}
	}
	return manifest.Tree{}, false
}

// readManifest reads set id's manifest and, unless verify is nil, its
// signature, which verify checks.
func readManifest(ctx context.Context, f FS, id string, verify func(data, sig []byte) error) (mdata, sig []byte, m *manifest.Manifest, err error) {
	mdata, err = readSmall(ctx, f, setRel(id, manifest.ManifestFileName), manifest.MaxManifestSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, nil, fmt.Errorf("set %s at %s: no manifest yet: %w", id, f, manifest.ErrIncomplete)
		}
		return nil, nil, nil, err
	}
	if verify != nil {
		sig, err = readSmall(ctx, f, setRel(id, manifest.SignatureFileName), 64<<10)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil, nil, fmt.Errorf("set %s at %s: no signature yet: %w", id, f, manifest.ErrIncomplete)
			}
			return nil, nil, nil, err
		}
		if err := verify(mdata, sig); err != nil {
			return nil, nil, nil, fmt.Errorf("set %s at %s: %w", id, f, err)
		}
	}
	m, err = manifest.Decode(mdata)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("set %s at %s: %w", id, f, err)
	}
	if got := manifest.SetID(m.Sequence, m.Created); got != id {
		return nil, nil, nil, fmt.Errorf("set %s at %s: manifest says it is set %s: %w", id, f, got, manifest.ErrCorrupt)
	}
	return mdata, sig, m, nil
}

// readList opens the list object ref at f and passes a reader to fn that
// checks size and SHA-256 at the end.
func readList(ctx context.Context, f FS, ref manifest.Ref, fn func(io.Reader) error) error {
	name := manifest.ObjectRel(ref.SHA256)
	r, err := f.Open(ctx, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("list object %s missing at %s: %w", name, f, manifest.ErrIncomplete)
		}
		return err
	}
	defer r.Close()
	h := sha256.New()
	tr := io.TeeReader(io.LimitReader(r, ref.Size+1), h)
	if err := fn(tr); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil { // the rest, if fn stopped early
		return fmt.Errorf("read %s at %s: %w", name, f, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return fmt.Errorf("list object %s at %s: %w: content does not match its name", name, f, manifest.ErrCorrupt)
	}
	return nil
}

var (
	keyType   = []byte(`"type":"`)
	keySize   = []byte(`"size":`)
	keyObject = []byte(`"object":"`)
)

// fastEntry reads type, size and object from a file-list line as
// json.Marshal writes it, without reflection (a 100k-entry list is read on
// every run, also when there is nothing to do). An unescaped quote always
// delimits a JSON string, so these keys cannot match inside a value. It
// returns ok false for anything unusual; the caller then decodes the line
// properly. obj is "" for entries that are not files.
func fastEntry(line []byte) (obj string, size int64, ok bool) {
	i := bytes.Index(line, keyType)
	if i < 0 || bytes.Count(line, keyType) != 1 {
		return "", 0, false
	}
	rest := line[i+len(keyType):]
	if !bytes.HasPrefix(rest, []byte(manifest.TypeFile+`"`)) {
		if bytes.HasPrefix(rest, []byte(manifest.TypeDir+`"`)) || bytes.HasPrefix(rest, []byte(manifest.TypeSymlink+`"`)) {
			return "", 0, true
		}
		return "", 0, false
	}
	j := bytes.Index(line, keyObject)
	k := bytes.Index(line, keySize)
	if j < 0 || k < 0 || len(line) < j+len(keyObject)+65 || line[j+len(keyObject)+64] != '"' {
		return "", 0, false
	}
	obj = string(line[j+len(keyObject) : j+len(keyObject)+64])
	if !manifest.ValidSHA256(obj) {
		return "", 0, false
	}
	digits := line[k+len(keySize):]
	n := 0
	for n < len(digits) && n < 19 && digits[n] >= '0' && digits[n] <= '9' {
		size = size*10 + int64(digits[n]-'0')
		n++
	}
	if n == 0 || n == 19 || n < len(digits) && digits[n] != ',' && digits[n] != '}' {
		return "", 0, false
	}
	return obj, size, true
}

// readLines calls fn with each line of r (without the newline).
func readLines(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, manifest.MaxListLine)
	for n := 1; ; n++ {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("list line %d: longer than %d bytes: %w", n, manifest.MaxListLine, manifest.ErrInvalid)
		case err == io.EOF:
			if len(line) > 0 {
				return fmt.Errorf("list line %d: no newline at the end: %w", n, manifest.ErrInvalid)
			}
			return nil
		case err != nil:
			return err
		}
		if err := fn(line[:len(line)-1]); err != nil {
			return fmt.Errorf("list line %d: %w", n, err)
		}
	}
}

// dirLister lists each directory of an FS once and remembers the result, so
// deciding what is present costs one request per directory, never one per
// file.
type dirLister struct {
	f        FS
	names    bool // list names only where the backend can (sizes are -1)
	mu       sync.Mutex
	m        map[string]map[string]Entry // dir -> name -> entry; nil map: missing dir
	inflight map[string]chan struct{}    // listings under way, closed when done
}

func newDirLister(f FS) *dirLister {
	return &dirLister{f: f, m: map[string]map[string]Entry{}, inflight: map[string]chan struct{}{}}
}

// dir lists dir once: a caller that asks while another lists it waits for
// that listing (and lists again itself if that one failed).
func (l *dirLister) dir(ctx context.Context, dir string) (map[string]Entry, error) {
	for {
		l.mu.Lock()
		d, ok := l.m[dir]
		if ok {
			l.mu.Unlock()
			return d, nil
		}
		wait, busy := l.inflight[dir]
		if !busy {
			done := make(chan struct{})
			l.inflight[dir] = done
			l.mu.Unlock()
			d, err := l.list(ctx, dir)
			l.mu.Lock()
			delete(l.inflight, dir)
			l.mu.Unlock()
			close(done)
			return d, err
		}
		l.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (l *dirLister) list(ctx context.Context, dir string) (map[string]Entry, error) {
	var ents []Entry
	var err error
	if nl, ok := l.f.(NameLister); ok && l.names {
		ents, err = nl.ReadDirNames(ctx, dir)
	} else {
		ents, err = l.f.ReadDir(ctx, dir)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return l.put(dir, ents, err == nil), nil
}

// put keeps ents as dir's listing, or dir as missing (there false), and
// returns it by name.
func (l *dirLister) put(dir string, ents []Entry, there bool) map[string]Entry {
	var d map[string]Entry
	if there {
		d = make(map[string]Entry, len(ents))
		for _, e := range ents {
			d[e.Name] = e
		}
	}
	l.mu.Lock()
	l.m[dir] = d
	l.mu.Unlock()
	return d
}

// prefetchDirs lists the directories that are not known yet, with up to
// workers listings in flight.
func (l *dirLister) prefetchDirs(ctx context.Context, dirs []string, workers int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, d := range dirs {
		l.mu.Lock()
		_, known := l.m[d]
		l.mu.Unlock()
		if known {
			continue
		}
		g.Go(func() error {
			_, err := l.dir(gctx, d)
			return err
		})
	}
	return g.Wait()
}

// stat returns the entry for name, ok false when absent.
func (l *dirLister) stat(ctx context.Context, name string) (Entry, bool, error) {
	dir, base := path.Split(name)
	d, err := l.dir(ctx, path.Clean(dir))
	if err != nil {
		return Entry{}, false, err
	}
	e, ok := d[base]
	return e, ok, nil
}

// forget drops what is known about dir, to list it again.
func (l *dirLister) forget(dir string) {
	l.mu.Lock()
	delete(l.m, dir)
	l.mu.Unlock()
}
