package mover

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"slices"
	"syscall"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// baseSet is a set known whole at the destination, to plan the newest set
// beside (loadSet's old): the one the record names, verified there by the
// run that recorded it and still published there unchanged.
type baseSet struct {
	rec *setRecord
	m   *manifest.Manifest
}

// baseSet returns the set rec names as the base of this run's plan, or nil
// for a full plan: with FullCompare, when FullCompareEvery has passed since
// the record's last full comparison (or it has none), and whenever the
// destination does not show that set published with the manifest recorded
// (its signature there: prune removes a set's signature first, then its
// manifest, and only then objects no kept set needs, so the objects of a
// set whose signature and manifest are there were not pruned). Anything
// that fails here is a full plan, never an error: if in doubt, every file
// is compared.
func (r *runner) baseSet(ctx context.Context, rec *setRecord) *baseSet {
	every := r.opts.FullCompareEvery
	if r.opts.FullCompare || r.opts.Checksum || every <= 0 || rec.fullAt.IsZero() || r.start.Sub(rec.fullAt) >= every || rec.fullAt.After(r.start) {
		return nil
	}
	mdata, _, m, err := readManifest(ctx, r.opts.Dst, rec.set, nil)
	if err != nil || sumString(string(mdata)) != rec.manifest || !m.Channel.Matches(r.channel) {
		return nil
	}
	if _, ok, err := r.dst.stat(ctx, setRel(rec.set, manifest.SignatureFileName)); err != nil || !ok {
		return nil
	}
	for _, t := range m.Trees {
		if t.Dir.SHA256 != "" {
			return &baseSet{rec: rec, m: m}
		}
	}
	return nil // no 2.0 tree: nothing to skip
}

// Stater is implemented by backends that can look up one name cheaply (a
// local lstat). For a directory of which a plan needs a few files, a
// look-up of each costs less than a listing of the whole directory: a
// 1% change of a million files needs ~40 of each objects/<aa>'s ~4000.
type Stater interface {
	// Stat returns name's entry; a missing name matches fs.ErrNotExist.
	Stat(ctx context.Context, name string) (Entry, error)
}

var _ Stater = (*Local)(nil)

// Stat is an lstat, as ReadDir's entries are.
func (l *Local) Stat(_ context.Context, name string) (Entry, error) {
	fi, err := os.Lstat(l.path(name))
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: fi.Name(), Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime()}, nil
}

// StatManyer is implemented by destinations that can look up the names
// of many directories in a few requests (the helper's), where a Stater
// costs a round trip per name over a far link: a plan beside the base set
// asks for the few names of each of a window's directories at once
// instead of listing them.
type StatManyer interface {
	// StatMany returns, for each of dirs in order, the entries of its
	// Names that exist (lstat'ed, as a listing of Dir shows them; a
	// missing name is left out) or, in Err, why Dir could not be looked
	// in: an error matching fs.ErrNotExist or errNotDir when Dir is
	// missing or below a file (a missing directory, as statNames has
	// it). One that cannot at the moment (an older helper) returns an
	// error wrapping remote.ErrNotOffered.
	StatMany(ctx context.Context, dirs []remote.DirNames) ([]remote.DirList, error)
}

// lookUp looks up names (by directory) at f in a few requests, where f
// can (a StatManyer; offered false otherwise, or from an older helper):
// the entries found, by directory, as statNames gives them (a nil map for
// a missing directory). A directory that could not be looked in for
// another reason is left out, to be listed on its own.
func lookUp(ctx context.Context, f FS, names map[string][]string) (found map[string]map[string]Entry, offered bool, err error) {
	sm, ok := f.(StatManyer)
	if !ok {
		return nil, false, nil
	}
	if len(names) == 0 {
		return nil, true, nil
	}
	dirs := make([]remote.DirNames, 0, len(names))
	for _, d := range slices.Sorted(maps.Keys(names)) {
		dirs = append(dirs, remote.DirNames{Dir: d, Names: names[d]})
	}
	res, err := sm.StatMany(ctx, dirs)
	if errors.Is(err, remote.ErrNotOffered) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	found = make(map[string]map[string]Entry, len(dirs))
	for i, d := range dirs {
		switch err := res[i].Err; {
		case err == nil:
			ents := make(map[string]Entry, len(res[i].Entries))
			for _, e := range res[i].Entries {
				ents[e.Name] = e
			}
			found[d.Dir] = ents
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir):
			found[d.Dir] = nil
		}
	}
	return found, true, nil
}

// errNotDir: a name below a file, missing as far as a listing goes.
var errNotDir error = syscall.ENOTDIR

// statMax is the most files of one directory that are looked up by name
// (Stater one by one; StatManyer many directories' at once) instead of
// listing the directory: a lookup each costs less
// up to about 0.8x the directory's entries at the destination (a listing
// with an lstat each) and 0.3x at the source (names only), and an
// objects/<aa> directory holds ~400 files at 100k, ~4000 at 1M (bench/scale.md,
// "Transfer push of a 1% change, session 4").
const statMax = 128

// stater returns f as a Stater when n names of dir are better looked up
// one by one than listed: f can, n is at most statMax, and no listing of
// dir was fetched ahead.
func stater(f FS, ahead listings, dir string, n int) (Stater, bool) {
	st, ok := f.(Stater)
	if !ok || n > statMax {
		return nil, false
	}
	if _, fetched := ahead.lists[dir]; fetched {
		return nil, false
	}
	return st, true
}

// statNames looks up each of ws (all in dir) at f: the entries found by
// name, as a listing of dir would give them, or nil if dir is missing.
func statNames(ctx context.Context, st Stater, dir string, ws []*want) (map[string]Entry, error) {
	ents := make(map[string]Entry, len(ws))
	for _, w := range ws {
		e, err := st.Stat(ctx, w.name)
		switch {
		case err == nil:
			ents[e.Name] = e
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir):
		default:
			return nil, err
		}
	}
	if len(ents) == 0 {
		if _, err := st.Stat(ctx, dir); errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	return ents, nil
}
