package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// prune mirrors the source's retention at the destination. A destination
// set is kept when the source still has it, when it is the set just copied,
// or when a pin (<dst>/pins/<set-id>, written by restore) names it. Removed
// sets lose their signature first, so they stop existing for readers before
// anything else goes. Then, if any set was removed, every object and
// Elasticsearch file that no kept set references and the source no longer
// has is removed too.
func (r *runner) prune(ctx context.Context, setID string, srcSets, dstSets []string) error {
	dst := r.opts.Dst
	srcHas := map[string]bool{}
	for _, id := range srcSets {
		srcHas[id] = true
	}
	pins, err := r.dst.dir(ctx, manifest.PinsDirName)
	if err != nil {
		return err
	}
	var keep, drop []string
	for _, id := range dstSets {
		_, pinned := pins[id]
		switch {
		case id == setID || srcHas[id]:
			keep = append(keep, id)
		case pinned:
			keep = append(keep, id)
			r.res.Kept = append(r.res.Kept, id)
		default:
			drop = append(drop, id)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if r.opts.DryRun {
		r.res.PrunedSets = drop
		return nil
	}
	for _, id := range drop {
		if err := r.removeSet(ctx, id); err != nil {
			return err
		}
		r.res.PrunedSets = append(r.res.PrunedSets, id)
	}
	// What the kept sets need, read from the destination's own manifests
	// into one spool, by bucket.
	spool := &bucketFiles{base: r.opts.Checked.spoolBase()}
	defer spool.close()
	var rec []byte
	for _, id := range keep {
		s, err := loadSet(ctx, dst, id, nil, nil, spool, "", nil)
		if err != nil {
			if errors.Is(err, manifest.ErrIncomplete) && id != setID {
				// A set that never arrived whole needs nothing yet; the
				// source still has it, so its files stay anyway.
				continue
			}
			return fmt.Errorf("prune at %s: read kept set %s: %w (nothing else was removed)", dst, id, err)
		}
		for _, w := range s.special {
			rec = appendWant(rec[:0], classFile, w)
			if err := spool.add(bucketOf(w.name), rec); err != nil {
				return err
			}
		}
	}
	return r.pruneTree(ctx, &needed{spool: spool, k: -1})
}

// needed says which names the kept sets need, from their spool, one
// bucket in memory at a time (pruneDir asks for the names of one directory
// after the other, and a directory is in one bucket).
type needed struct {
	spool *bucketFiles
	k     int
	names map[string]bool
}

func (n *needed) has(name string) (bool, error) {
	if k := bucketOf(name); k != n.k {
		n.k, n.names = -1, map[string]bool{}
		data, err := n.spool.read(k)
		if err != nil {
			return false, err
		}
		err = decodeWants(data, func(_ byte, w *want) error {
			n.names[w.name] = true
			return nil
		})
		if err != nil {
			return false, err
		}
		n.k = k
	}
	return n.names[name], nil
}

func (r *runner) removeSet(ctx context.Context, id string) error {
	dst := r.opts.Dst
	dir := manifest.SetsDirName + "/" + id
	ents, err := dst.ReadDir(ctx, dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// signature first: the set stops existing; then the rest.
	order := []string{manifest.SignatureFileName, manifest.ManifestFileName}
	for _, e := range ents {
		if e.Name != manifest.SignatureFileName && e.Name != manifest.ManifestFileName {
			order = append(order, e.Name)
		}
	}
	for _, name := range order {
		if err := dst.Remove(ctx, dir+"/"+name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("prune set %s at %s: %w", id, dst, err)
		}
	}
	if err := dst.Remove(ctx, dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("prune set %s at %s: %w", id, dst, err)
	}
	return nil
}

// pruneTree walks objects/ then es/ at the destination.
func (r *runner) pruneTree(ctx context.Context, need *needed) error {
	for _, top := range []string{manifest.ObjectsDirName, manifest.ESDirName} {
		if _, err := r.pruneDir(ctx, top, need); err != nil {
			return err
		}
	}
	return nil
}

// pruneDir removes unneeded files below dir and reports whether dir ended
// up empty.
func (r *runner) pruneDir(ctx context.Context, dir string, need *needed) (bool, error) {
	dst := r.opts.Dst
	ents, err := dst.ReadDir(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	left := len(ents)
	for _, e := range ents {
		name := path.Join(dir, e.Name)
		if e.Dir {
			empty, err := r.pruneDir(ctx, name, need)
			if err != nil {
				return false, err
			}
			if empty {
				if _, atSrc, err := r.src.stat(ctx, name); err != nil {
					return false, err
				} else if !atSrc {
					if err := dst.Remove(ctx, name); err == nil {
						left--
					}
				}
			}
			continue
		}
		if ok, err := need.has(name); err != nil {
			return false, err
		} else if ok {
			continue
		}
		if !strings.HasPrefix(e.Name, manifest.MoverTempPrefix) {
			_, atSrc, err := r.src.stat(ctx, name)
			if err != nil {
				return false, err
			}
			if atSrc {
				continue
			}
		}
		if err := dst.Remove(ctx, name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("prune %s at %s: %w", name, dst, err)
		}
		if err := r.opts.Checked.drop(name); err != nil {
			return false, err
		}
		r.res.PrunedFiles++
		left--
	}
	// The source's listing of dir is not needed again: a walk of the
	// whole destination does not keep every listing.
	r.src.forget(dir)
	return left == 0, nil
}
