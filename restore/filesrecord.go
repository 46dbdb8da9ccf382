package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// The files stage's record (doc/architecture.md, "Skipping unchanged
// directories"): after a tree was applied onto its target and the apply is
// durable, restore writes (atomically) the tree's root list reference, with
// the channel, the target and the options it was applied with. The next
// apply of that tree onto the same target walks the new set's tree beside
// the recorded one (manifest.TreeReader.WalkBeside) and skips every
// directory whose list reference equals the recorded one at that path:
// the same content, nothing in it to write or delete. Everything else
// compares every file: no record (the first restore, after a failed or
// interrupted files stage, after promote or demote), a record of another
// channel, target or options, --full-compare, the first restore
// full-compare-every after the last full comparison, --from another
// directory, a format 1.x set (one flat list), and a subtree whose
// recorded lists are no longer in the channel (pruned).

// filesRecordPrefix names the record files in the state directory, one per
// tree: files-applied-<tree>.json.
const filesRecordPrefix = "files-applied-"

// filesRecord is what the files stage recorded of a tree it applied.
type filesRecord struct {
	Tree    string       `json:"tree"`
	Channel string       `json:"channel"`
	Target  string       `json:"target"`  // the directory, and the host with files-via-ssh
	Options string       `json:"options"` // exclude and preserve-owner, as applied
	Dir     manifest.Ref `json:"dir"`     // the tree's root list
	Set     string       `json:"set"`
	Applied time.Time    `json:"applied"`
	// FullCompare is when the files stage last compared every file of
	// this tree with the target.
	FullCompare time.Time `json:"full_compare"`
}

func filesRecordPath(stateDir, tree string) string {
	return filepath.Join(stateDir, filesRecordPrefix+url.PathEscape(tree)+".json")
}

// filesTarget names a tree's target as the record keeps it.
func (r *restorer) filesTarget(dir string) string {
	if r.cfg.FilesViaSSH {
		return "ssh:" + r.cfg.SSH.Host + ":" + dir
	}
	return dir
}

func (r *restorer) filesOptions() string {
	return fmt.Sprintf("exclude=%q preserve-owner=%t", r.cfg.Exclude, r.cfg.PreserveOwner)
}

// readFilesRecords returns the records in the state directory.
func readFilesRecords(stateDir string) ([]filesRecord, error) {
	names, err := filepath.Glob(filepath.Join(stateDir, filesRecordPrefix+"*.json"))
	if err != nil {
		return nil, err
	}
	var recs []filesRecord
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		var rec filesRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// clearFilesRecords removes every tree's record, durably: the next files
// stage compares every file (promote, demote).
func clearFilesRecords(stateDir string) error {
	names, err := filepath.Glob(filepath.Join(stateDir, filesRecordPrefix+"*.json"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := removeDurably(n); err != nil {
			return err
		}
	}
	return nil
}

// removeDurably removes path and syncs its directory.
func removeDurably(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(path), err)
	}
	return nil
}

// filesBase returns the record to skip beside when applying tree t of
// channel onto dir, or nil and why every file is compared.
func (r *restorer) filesBase(stateDir, channel string, t manifest.Tree, dir string, now time.Time) (*filesRecord, string) {
	b, err := os.ReadFile(filesRecordPath(stateDir, t.Name))
	var rec filesRecord
	switch {
	case r.fullCompare:
		return nil, "--full-compare"
	case r.fromOther:
		return nil, "--from another directory"
	case t.Dir.SHA256 == "":
		return nil, "a format 1.x set (one list)"
	case r.cfg.FullCompareEvery <= 0:
		return nil, "full-compare-every = 0"
	case err != nil:
		return nil, "no record of the last restore of this tree"
	case json.Unmarshal(b, &rec) != nil:
		return nil, "the record of the last restore is not readable"
	case rec.Tree != t.Name || rec.Channel != channel || rec.Target != r.filesTarget(dir) || rec.Options != r.filesOptions():
		return nil, "the record is of another channel, target or options"
	case rec.Dir.SHA256 == "":
		return nil, "the last restore was of a format 1.x set"
	case now.Sub(rec.FullCompare) >= r.cfg.FullCompareEvery:
		return nil, fmt.Sprintf("the last full comparison was at %s, full-compare-every (%s) ago or more", rec.FullCompare.UTC().Format(time.RFC3339), r.cfg.FullCompareEvery)
	}
	return &rec, ""
}

// applyRecorded is the files stage for one tree: it applies t onto dir,
// skipping the directories unchanged since the recorded apply when the
// record allows it, and records the apply once it is durable. The record
// is removed first, so a files stage that fails or is interrupted leaves
// none (the next one compares every file).
func (r *restorer) applyRecorded(ctx context.Context, root, channel string, t manifest.Tree, dir string) (filetree.ApplyStats, error) {
	stateDir, err := r.cfg.stateDir()
	if err != nil {
		return filetree.ApplyStats{}, err
	}
	now := time.Now()
	base, why := r.filesBase(stateDir, channel, t, dir, now)
	if base == nil {
		r.log.Info("files: comparing every file", "tree", t.Name, "why", why)
	} else {
		r.log.Info("files: skipping directories unchanged since the last restore", "tree", t.Name, "set", base.Set, "full_compare", base.FullCompare.UTC().Format(time.RFC3339))
	}
	path := filesRecordPath(stateDir, t.Name)
	if err := removeDurably(path); err != nil {
		return filetree.ApplyStats{}, fmt.Errorf("remove the files record %s: %w", path, err)
	}
	store := objects.New(manifest.Layout{Root: root}.ObjectsDir())
	var st filetree.ApplyStats
	err = r.withTarget(ctx, dir, func(target filetree.Target) (err error) {
		r.rep.Begin("files: "+t.Name, t.Files, "files")
		defer r.rep.End()
		o := r.applyOptions(store, t, target)
		o.Progress = r.rep
		if base != nil {
			old := manifest.Tree{Name: t.Name + " (as last restored)", Dir: base.Dir}
			o.Beside = func(fn func(manifest.Entry, bool) error) (bool, error) {
				return store.Trees().WalkBeside(ctx, t, old, fn)
			}
		}
		st, err = filetree.Apply(ctx, o)
		return err
	})
	if err != nil {
		return st, err
	}
	// Apply returned: what it wrote is durable.
	rec := filesRecord{Tree: t.Name, Channel: channel, Target: r.filesTarget(dir), Options: r.filesOptions(),
		Dir: t.Dir, Applied: now.UTC(), FullCompare: now.UTC()}
	if base != nil {
		rec.FullCompare = base.FullCompare
		r.log.Info("files: directories skipped, unchanged since the last restore", "tree", t.Name, "dirs", st.SkippedDirs, "whole_tree", st.SkippedRoot)
	}
	if rec.Dir.SHA256 == "" {
		return st, nil // format 1.x: nothing to skip beside next time
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err == nil {
		err = manifest.WriteFileAtomic(path, append(b, '\n'), 0o600)
	}
	if err != nil {
		// the files are restored; the next restore compares every file
		r.log.Warn("could not record the restored tree; the next restore compares every file", "tree", t.Name, "err", err)
	}
	return st, nil
}
