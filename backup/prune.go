package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// pruneOptions is what `backup prune` needs.
type pruneOptions struct {
	cfg    *config
	keep   int           // newest signed sets to keep (>= 1)
	within time.Duration // also keep sets newer than this (0: none)
	grace  time.Duration // never delete an object or temp file younger than this
	esNow  bool          // delete Elasticsearch snapshots now instead of in the next run
	dryRun bool
	now    func() time.Time
	log    *slog.Logger
}

// pruneResult says what prune did (or would do).
type pruneResult struct {
	Kept        []string `json:"kept"`
	Deleted     []string `json:"deleted_sets"`
	Snapshots   []string `json:"deleted_snapshots,omitempty"`
	Objects     int      `json:"deleted_objects"`
	ObjectBytes int64    `json:"deleted_object_bytes"`
	Temps       int      `json:"deleted_temp_files"`
	DryRun      bool     `json:"dry_run,omitempty"`
}

// prune applies retention. Sets are deleted signature first (the set
// stops existing), then manifest and directory; then objects that no
// retained or pinned set references and that are older than the grace
// period. Elasticsearch snapshots of deleted sets are deleted through the
// API by the next run, right before its own snapshot, so that the newest
// set always lists the repository generation that is on disk; --es-now
// deletes them at once (the newest set then waits for the next run).
func prune(ctx context.Context, o pruneOptions) (*pruneResult, error) {
	if o.keep < 1 {
		return nil, fmt.Errorf("%w: --keep must be at least 1 (the newest set is always kept)", errUsage)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	root := o.cfg.Channel
	l := manifest.Layout{Root: root}
	if _, err := manifest.ReadChannel(root); err != nil {
		return nil, fmt.Errorf("prune %s: %w", root, err)
	}
	// The channel's one lock, with the node and a lease like a run's, so a
	// prune whose node died does not block the next backup for good.
	lk, err := lock.AcquireWith(l.LocksDir(), "backup", lock.Options{Program: program + " prune", Host: o.cfg.Leader.NodeName, Lease: o.cfg.LockLease})
	if err != nil {
		return nil, err
	}
	defer lk.ReleaseLogged(o.log)
	ctx = lk.Keep(ctx)

	sets, err := manifest.List(root)
	if err != nil {
		return nil, err
	}
	now := o.now()
	pinned, err := l.Pinned()
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	var signed []manifest.SetInfo
	for _, s := range sets {
		if s.HasManifest && s.HasSignature {
			signed = append(signed, s)
		}
	}
	for i := len(signed) - 1; i >= 0 && len(signed)-i <= o.keep; i-- {
		keep[signed[i].ID] = true
	}
	for _, s := range sets {
		t, _ := manifest.SetIDTime(s.ID)
		switch {
		case pinned[s.ID]:
			keep[s.ID] = true
		case o.within > 0 && s.HasSignature && now.Sub(t) <= o.within:
			keep[s.ID] = true
		case !s.HasSignature && now.Sub(t) < o.grace:
			keep[s.ID] = true // maybe being published right now elsewhere
		}
	}
	res := &pruneResult{DryRun: o.dryRun}
	// Everything the kept sets reference; any doubt stops the prune.
	refs := map[string]bool{}
	for _, s := range sets {
		if !keep[s.ID] {
			continue
		}
		res.Kept = append(res.Kept, s.ID)
		if !s.HasManifest {
			continue
		}
		if err := setObjects(ctx, l, s.ID, refs); err != nil {
			return nil, fmt.Errorf("prune: kept set %s: %w; nothing was deleted", s.ID, err)
		}
	}
	for _, s := range sets {
		if keep[s.ID] {
			continue
		}
		res.Deleted = append(res.Deleted, s.ID)
		if o.dryRun {
			continue
		}
		for _, p := range []string{l.SignaturePath(s.ID), l.ManifestPath(s.ID)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return res, fmt.Errorf("prune set %s: %w", s.ID, err)
			}
		}
		if err := os.RemoveAll(l.SetDir(s.ID)); err != nil {
			return res, fmt.Errorf("prune set %s: %w", s.ID, err)
		}
		o.log.Info("pruned set", "set", s.ID)
	}
	if o.esNow && !o.dryRun {
		c, err := es.NewClient(o.cfg.ES)
		if err != nil {
			return res, err
		}
		ch, _ := manifest.ReadChannel(root)
		deleted, err := deleteOrphanSnapshots(ctx, c, o.cfg.repoName(ch.Name), root, o.log)
		res.Snapshots = deleted
		if err != nil {
			return res, err
		}
	}
	store := objects.New(l.ObjectsDir())
	err = store.Walk(func(sha string) error {
		if refs[sha] {
			return nil
		}
		fi, err := store.Stat(sha)
		if err != nil || now.Sub(fi.ModTime()) < o.grace {
			return nil
		}
		res.Objects++
		res.ObjectBytes += fi.Size()
		if o.dryRun {
			return nil
		}
		return store.Remove(sha)
	})
	if err != nil {
		return res, fmt.Errorf("prune objects: %w", err)
	}
	// Temporary files of crashed writers.
	_ = filepath.WalkDir(l.ObjectsDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), manifest.TempPrefix) {
			return nil
		}
		if fi, err := d.Info(); err == nil && now.Sub(fi.ModTime()) >= o.grace {
			res.Temps++
			if !o.dryRun {
				_ = os.Remove(p)
			}
		}
		return nil
	})
	return res, nil
}

// setObjects adds every object set id references to refs.
func setObjects(ctx context.Context, l manifest.Layout, id string, refs map[string]bool) error {
	data, err := os.ReadFile(l.ManifestPath(id))
	if err != nil {
		return err
	}
	m, err := manifest.Decode(data)
	if err != nil {
		return err
	}
	store := objects.New(l.ObjectsDir())
	if m.MySQL != nil {
		refs[m.MySQL.Object.SHA256] = true
	}
	if m.Elasticsearch != nil {
		refs[m.Elasticsearch.Files.SHA256] = true
	}
	trees := store.Trees()
	trees.List = func(ref manifest.Ref) error { refs[ref.SHA256] = true; return nil }
	for _, t := range m.Trees {
		err := trees.Walk(ctx, t, func(e manifest.Entry) error {
			if e.Type == manifest.TypeFile {
				refs[e.Object] = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("tree %s: %w", t.Name, err)
		}
	}
	return nil
}

// deleteOrphanSnapshots deletes, through the API, the finished snapshots of
// repo that are named like a set but that no signed set of the channel
// references (pruned sets, failed or killed runs).
func deleteOrphanSnapshots(ctx context.Context, c *es.Client, repo, root string, log *slog.Logger) ([]string, error) {
	snaps, err := c.Snapshots(ctx, repo)
	if errors.Is(err, es.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sets, err := manifest.List(root)
	if err != nil {
		return nil, err
	}
	l := manifest.Layout{Root: root}
	used := map[string]bool{}
	for _, s := range sets {
		if !s.HasSignature {
			continue
		}
		data, err := os.ReadFile(l.ManifestPath(s.ID))
		if err != nil {
			return nil, err
		}
		m, err := manifest.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("set %s: %w; not deleting any snapshot", s.ID, err)
		}
		if m.Elasticsearch != nil {
			used[m.Elasticsearch.Snapshot] = true
		}
	}
	var deleted []string
	for _, s := range snaps {
		if !isSetSnapshot(s.Name) || used[s.Name] || s.State == "IN_PROGRESS" {
			continue
		}
		if err := c.DeleteSnapshot(ctx, repo, s.Name); err != nil {
			return deleted, fmt.Errorf("delete snapshot %s: %w", s.Name, err)
		}
		log.Info("deleted snapshot no set references", "snapshot", s.Name)
		deleted = append(deleted, s.Name)
	}
	return deleted, nil
}
