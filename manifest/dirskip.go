package manifest

import (
	"context"
	"fmt"
	"slices"
)

// WalkBeside walks the 2.0 tree t like Walk, beside old, a tree whose
// content the caller knows the target holds (restore: the tree it last
// applied there). A directory whose list reference equals old's at the
// same path has the same content, every level below included (lists are
// addressed by their content and name their subdirectories' lists): fn
// gets its entry with same set and nothing below it. Other entries come
// with same false, in walk order, as Walk gives them.
//
// Old's lists are read only along the directories whose reference
// changed; one that cannot be read (pruned since, say) makes that subtree
// compared in full (no skip below it), never an error. Both trees must be
// 2.0 (Dir set): a 1.x tree has no per-directory references, and WalkBeside
// then walks t whole (same never set). If old's root equals t's, fn is
// called not at all and rootSame is true.
func (r TreeReader) WalkBeside(ctx context.Context, t, old Tree, fn func(e Entry, same bool) error) (rootSame bool, err error) {
	if t.Dir.SHA256 == "" || old.Dir.SHA256 == "" {
		return false, r.Walk(ctx, t, func(e Entry) error { return fn(e, false) })
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if t.Dir == old.Dir {
		return true, nil
	}
	var shape TreeShape
	var walk func(dir string, ref Ref, oldRef *Ref) error
	walk = func(dir string, ref Ref, oldRef *Ref) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		lines, err := r.readDir(t, dir, ref)
		if err != nil {
			return err
		}
		var olds []DirEntry
		if oldRef != nil && slices.ContainsFunc(lines, func(d DirEntry) bool { return d.Tree != nil }) {
			// Only a directory with subdirectories has anything to skip
			// (a leaf's old list is not read). Without the old list, this
			// subtree is compared in full.
			olds, _ = r.readDirQuiet(old, dir, *oldRef)
		}
		j := 0
		for i := range lines {
			d := &lines[i]
			e := d.entry(dir)
			if err := shape.Check(e); err != nil {
				return fmt.Errorf("tree %s: %w", t.Name, err)
			}
			var was *Ref
			for j < len(olds) && olds[j].Name < d.Name {
				j++
			}
			if j < len(olds) && olds[j].Name == d.Name && olds[j].Tree != nil {
				was = olds[j].Tree
			}
			same := d.Tree != nil && was != nil && *was == *d.Tree
			if err := fn(e, same); err != nil {
				return err
			}
			if d.Tree != nil && !same {
				if err := walk(e.Path, *d.Tree, was); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return false, walk("", t.Dir, &old.Dir)
}

// readDirQuiet reads an old tree's list for WalkBeside, without the List
// hook (it is not part of the tree being walked).
func (r TreeReader) readDirQuiet(t Tree, dir string, ref Ref) ([]DirEntry, error) {
	r.List = nil
	return r.readDir(t, dir, ref)
}
