package es

// Restore side of the es package (stage 6). Functions take the plain
// go-elasticsearch client so that they work with any caller's wrapper.
//
// Algorithm: (1) unregister and register the channel's es/ directory as a
// readonly fs repository, so the cluster reads the repository's current
// root generation (a mover may have brought newer index-N files since the
// last restore); (2) look the set's snapshot up: it must exist, be SUCCESS,
// have the set's uuid and contain every index the set names - otherwise
// ErrSnapshotMissing, before any index is touched; (3) plan: standby indices
// with the name of a restored index are replaced (deleted, or closed), and
// standby indices that match the configured patterns but are not in the set
// are deleted (prod no longer has them; dot-indices only match dot-patterns);
// (4) delete/close, then start the restore without waiting, with the index
// settings overrides (e.g. fewer replicas); (5) poll _cat/shards until every
// primary of the restored indices is STARTED, reporting progress, failing
// early on a primary that could not be allocated.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	"github.com/elastic/go-elasticsearch/v7/esapi"
)

// ErrSnapshotMissing is returned (wrapped) when the set's snapshot is not in
// the registered repository: the repository files did not all arrive, or the
// set names another repository. Nothing was changed.
var ErrSnapshotMissing = errors.New("snapshot not in the repository")

// ErrRestoreFailed is returned (wrapped) when Elasticsearch could not restore
// some shards.
var ErrRestoreFailed = errors.New("snapshot restore failed")

// RestoreProgress receives what RestoreSnapshot does. Calls come from one
// goroutine.
type RestoreProgress interface {
	// RestoreStep is one step: "delete index x", "close index y", "restore 3 indices".
	RestoreStep(msg string)
	// RestoreShards reports restored (started) primary shards of total.
	RestoreShards(started, total int)
}

type noRestoreProgress struct{}

func (noRestoreProgress) RestoreStep(string)     {}
func (noRestoreProgress) RestoreShards(int, int) {}

// Existing says what happens to a standby index that has the name of an index
// being restored.
const (
	ExistingDelete = "delete" // delete it first (works whatever its shard count)
	ExistingClose  = "close"  // close it; the restore overwrites it (same shard count only)
)

// RestoreOptions configures RestoreSnapshot.
type RestoreOptions struct {
	Repository string // name to register the channel's es/ directory under on this cluster
	Location   string // the es/ directory as this cluster's nodes see it (under path.repo)
	Snapshot   string
	UUID       string   // if set, the snapshot found must have this uuid
	Indices    []string // indices to restore (the manifest's list)
	// DeletePatterns: standby indices not in Indices whose names match one of
	// these (path.Match syntax, e.g. "squirro_*") are deleted, since prod no
	// longer has them. Names starting with "." match only patterns that do.
	DeletePatterns []string
	// Existing is ExistingDelete (default) or ExistingClose.
	Existing           string
	IncludeGlobalState bool
	// IndexSettings override the snapshot's index settings, e.g.
	// {"index.number_of_replicas": 0} on a standby with fewer nodes.
	IndexSettings map[string]any
	// WaitTimeout bounds the wait for the restored shards; 1 hour when zero.
	WaitTimeout time.Duration
	// PollInterval of the shard wait; 1s when zero.
	PollInterval time.Duration
	DryRun       bool
	Progress     RestoreProgress
}

// RestorePlan is what RestoreSnapshot does (or, with DryRun, would do).
type RestorePlan struct {
	Snapshot string   `json:"snapshot"`
	Restore  []string `json:"restore"`  // indices restored from the snapshot
	Replace  []string `json:"replace"`  // existing indices deleted or closed first
	Delete   []string `json:"delete"`   // indices no longer in prod, deleted
	Existing string   `json:"existing"` // what happens to Replace: delete or close
	Shards   int      `json:"shards"`   // primary shards restored
}

// RegisterReadonlyRepository (re-)registers location as an fs repository
// named name with readonly: true. An existing registration is removed first,
// so the cluster reads the repository's current generation afresh: the mover
// may have brought newer root files since the last restore.
func RegisterReadonlyRepository(ctx context.Context, c *elasticsearch.Client, name, location string) error {
	resp, err := c.Snapshot.DeleteRepository([]string{name}, c.Snapshot.DeleteRepository.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elasticsearch: unregister repository %s: %w", name, err)
	}
	if err := rsCheck(resp, "unregister repository "+name, 404); err != nil {
		return err
	}
	body := map[string]any{"type": "fs", "settings": map[string]any{"location": location, "readonly": true}}
	resp, err = c.Snapshot.CreateRepository(name, rsJSON(body), c.Snapshot.CreateRepository.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elasticsearch: register repository %s at %s: %w", name, location, err)
	}
	if err := rsCheck(resp, fmt.Sprintf("register repository %s at %s (is it under path.repo of every node?)", name, location)); err != nil {
		return err
	}
	return nil
}

// SnapshotInfo is what FindSnapshot returns.
type SnapshotInfo struct {
	Snapshot string   `json:"snapshot"`
	UUID     string   `json:"uuid"`
	State    string   `json:"state"`
	Indices  []string `json:"indices"`
}

// FindSnapshot returns the snapshot's description from the repository, or
// ErrSnapshotMissing.
func FindSnapshot(ctx context.Context, c *elasticsearch.Client, repo, snap string) (*SnapshotInfo, error) {
	resp, err := c.Snapshot.Get(repo, []string{snap}, c.Snapshot.Get.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: get snapshot %s/%s: %w", repo, snap, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: %s/%s: %s", ErrSnapshotMissing, repo, snap, bytes.TrimSpace(b))
	}
	var out struct {
		Snapshots []SnapshotInfo `json:"snapshots"`
	}
	if err := rsDecode(resp, "get snapshot "+repo+"/"+snap, &out); err != nil {
		return nil, err
	}
	for _, s := range out.Snapshots {
		if s.Snapshot == snap {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("%w: %s/%s", ErrSnapshotMissing, repo, snap)
}

// IndexState is one index of the cluster.
type IndexState struct {
	Index  string `json:"index"`
	Status string `json:"status"` // open or close
	Docs   int64  `json:"docs"`
}

// ListAllIndices returns every index of the cluster (hidden and closed ones
// too), sorted by name.
func ListAllIndices(ctx context.Context, c *elasticsearch.Client) ([]IndexState, error) {
	resp, err := c.Cat.Indices(c.Cat.Indices.WithContext(ctx), c.Cat.Indices.WithFormat("json"),
		c.Cat.Indices.WithH("index", "status", "docs.count"), c.Cat.Indices.WithExpandWildcards("all"))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: list indices: %w", err)
	}
	var rows []struct {
		Index  string `json:"index"`
		Status string `json:"status"`
		Docs   string `json:"docs.count"`
	}
	if err := rsDecode(resp, "list indices", &rows); err != nil {
		return nil, err
	}
	out := make([]IndexState, 0, len(rows))
	for _, r := range rows {
		ii := IndexState{Index: r.Index, Status: r.Status}
		fmt.Sscan(r.Docs, &ii.Docs)
		out = append(out, ii)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// CountDocuments refreshes the given indices and returns their document counts.
func CountDocuments(ctx context.Context, c *elasticsearch.Client, indices []string) (map[string]int64, error) {
	out := map[string]int64{}
	for _, idx := range indices {
		resp, err := c.Indices.Refresh(c.Indices.Refresh.WithContext(ctx), c.Indices.Refresh.WithIndex(idx))
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: refresh %s: %w", idx, err)
		}
		if err := rsCheck(resp, "refresh "+idx); err != nil {
			return nil, err
		}
		resp, err = c.Count(c.Count.WithContext(ctx), c.Count.WithIndex(idx))
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: count %s: %w", idx, err)
		}
		var cnt struct {
			Count int64 `json:"count"`
		}
		if err := rsDecode(resp, "count "+idx, &cnt); err != nil {
			return nil, err
		}
		out[idx] = cnt.Count
	}
	return out, nil
}

// rsMatch reports whether name matches one of patterns; a name starting with
// "." only matches patterns starting with ".".
func rsMatch(name string, patterns []string) bool {
	for _, p := range patterns {
		if strings.HasPrefix(name, ".") && !strings.HasPrefix(p, ".") {
			continue
		}
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// PlanRestore registers the repository, checks the snapshot is there (and
// SUCCESS, with the expected uuid and indices), and says what a restore would
// do. It changes no index.
func PlanRestore(ctx context.Context, c *elasticsearch.Client, opts RestoreOptions) (*RestorePlan, error) {
	if opts.Repository == "" || opts.Location == "" || opts.Snapshot == "" {
		return nil, errors.New("elasticsearch restore: repository name, location and snapshot are required")
	}
	if opts.Existing == "" {
		opts.Existing = ExistingDelete
	}
	if opts.Existing != ExistingDelete && opts.Existing != ExistingClose {
		return nil, fmt.Errorf("elasticsearch restore: existing indices: %q is neither %q nor %q", opts.Existing, ExistingDelete, ExistingClose)
	}
	for _, p := range opts.DeletePatterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("elasticsearch restore: delete pattern %q: %w", p, err)
		}
	}
	if err := RegisterReadonlyRepository(ctx, c, opts.Repository, opts.Location); err != nil {
		return nil, err
	}
	info, err := FindSnapshot(ctx, c, opts.Repository, opts.Snapshot)
	if err != nil {
		return nil, err
	}
	if opts.UUID != "" && info.UUID != opts.UUID {
		return nil, fmt.Errorf("%w: %s/%s has uuid %s, the set names %s (a different snapshot of the same name)", ErrSnapshotMissing, opts.Repository, opts.Snapshot, info.UUID, opts.UUID)
	}
	if info.State != "SUCCESS" {
		return nil, fmt.Errorf("%w: %s/%s is %s, not SUCCESS", ErrSnapshotMissing, opts.Repository, opts.Snapshot, info.State)
	}
	for _, idx := range opts.Indices {
		if !slices.Contains(info.Indices, idx) {
			return nil, fmt.Errorf("%w: %s/%s does not contain index %s", ErrSnapshotMissing, opts.Repository, opts.Snapshot, idx)
		}
	}
	existing, err := ListAllIndices(ctx, c)
	if err != nil {
		return nil, err
	}
	plan := &RestorePlan{Snapshot: opts.Snapshot, Restore: slices.Sorted(slices.Values(opts.Indices)), Existing: opts.Existing}
	for _, ii := range existing {
		switch {
		case slices.Contains(opts.Indices, ii.Index):
			plan.Replace = append(plan.Replace, ii.Index)
		case rsMatch(ii.Index, opts.DeletePatterns):
			plan.Delete = append(plan.Delete, ii.Index)
		}
	}
	return plan, nil
}

// RestoreSnapshot restores the snapshot into the cluster: it plans (see
// PlanRestore), deletes or closes the indices it replaces, deletes the
// indices prod no longer has, starts the restore and waits until every
// restored primary shard is started. With DryRun it returns the plan only.
func RestoreSnapshot(ctx context.Context, c *elasticsearch.Client, opts RestoreOptions) (*RestorePlan, error) {
	p := opts.Progress
	if p == nil {
		p = noRestoreProgress{}
	}
	plan, err := PlanRestore(ctx, c, opts)
	if err != nil || opts.DryRun {
		return plan, err
	}
	if len(plan.Replace) > 0 {
		if plan.Existing == ExistingClose {
			p.RestoreStep("close " + strings.Join(plan.Replace, ", "))
			if err := rsCloseIndices(ctx, c, plan.Replace); err != nil {
				return plan, err
			}
		} else {
			p.RestoreStep("delete (to be replaced) " + strings.Join(plan.Replace, ", "))
			if err := rsDeleteIndices(ctx, c, plan.Replace); err != nil {
				return plan, err
			}
		}
	}
	if len(plan.Delete) > 0 {
		p.RestoreStep("delete (gone from prod) " + strings.Join(plan.Delete, ", "))
		if err := rsDeleteIndices(ctx, c, plan.Delete); err != nil {
			return plan, err
		}
	}
	if len(plan.Restore) == 0 && !opts.IncludeGlobalState {
		return plan, nil
	}
	p.RestoreStep(fmt.Sprintf("restore %d indices from %s", len(plan.Restore), opts.Snapshot))
	body := map[string]any{
		"indices":              strings.Join(plan.Restore, ","),
		"include_global_state": opts.IncludeGlobalState,
		"include_aliases":      true,
	}
	if len(plan.Restore) == 0 {
		body["indices"] = "-*" // global state only
	}
	if len(opts.IndexSettings) > 0 {
		body["index_settings"] = opts.IndexSettings
	}
	resp, err := c.Snapshot.Restore(opts.Repository, opts.Snapshot, c.Snapshot.Restore.WithContext(ctx),
		c.Snapshot.Restore.WithBody(rsJSON(body)), c.Snapshot.Restore.WithWaitForCompletion(false))
	if err != nil {
		return plan, fmt.Errorf("elasticsearch: restore %s/%s: %w", opts.Repository, opts.Snapshot, err)
	}
	if err := rsCheck(resp, "restore "+opts.Repository+"/"+opts.Snapshot); err != nil {
		return plan, fmt.Errorf("%w: %w", ErrRestoreFailed, err)
	}
	n, err := rsWaitShards(ctx, c, plan.Restore, opts, p)
	plan.Shards = n
	return plan, err
}

// rsWaitShards polls _cat/shards until every primary shard of indices is
// STARTED, a primary failed to allocate, or the timeout ends.
func rsWaitShards(ctx context.Context, c *elasticsearch.Client, indices []string, opts RestoreOptions, p RestoreProgress) (int, error) {
	timeout := opts.WaitTimeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	iv := opts.PollInterval
	if iv <= 0 {
		iv = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := map[string]bool{}
	for _, i := range indices {
		want[i] = true
	}
	last := -1
	for {
		resp, err := c.Cat.Shards(c.Cat.Shards.WithContext(ctx), c.Cat.Shards.WithFormat("json"),
			c.Cat.Shards.WithH("index", "shard", "prirep", "state", "unassigned.reason", "unassigned.details"))
		if err != nil {
			return 0, fmt.Errorf("elasticsearch: wait for restored shards: %w", err)
		}
		var rows []struct {
			Index   string `json:"index"`
			Shard   string `json:"shard"`
			PriRep  string `json:"prirep"`
			State   string `json:"state"`
			Reason  string `json:"unassigned.reason"`
			Details string `json:"unassigned.details"`
		}
		if err := rsDecode(resp, "wait for restored shards", &rows); err != nil {
			return 0, err
		}
		total, started := 0, 0
		var failed []string
		for _, r := range rows {
			if !want[r.Index] || r.PriRep != "p" {
				continue
			}
			total++
			switch {
			case r.State == "STARTED":
				started++
			case r.State == "UNASSIGNED" && r.Reason == "ALLOCATION_FAILED":
				failed = append(failed, fmt.Sprintf("%s[%s]: %s", r.Index, r.Shard, r.Details))
			}
		}
		if started != last {
			p.RestoreShards(started, total)
			last = started
		}
		if len(failed) > 0 {
			return total, fmt.Errorf("%w: %d primary shards could not be restored: %s", ErrRestoreFailed, len(failed), strings.Join(failed, "; "))
		}
		if started == total {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, fmt.Errorf("%w: %d of %d primary shards started after %s; see GET _cat/recovery", ErrRestoreFailed, started, total, timeout)
		case <-time.After(iv):
		}
	}
}

// rsChunks splits names so that each request line stays well under
// Elasticsearch's 4 KB limit.
func rsChunks(names []string) [][]string {
	var out [][]string
	var cur []string
	n := 0
	for _, s := range names {
		if n+len(s) > 3000 && len(cur) > 0 {
			out = append(out, cur)
			cur, n = nil, 0
		}
		cur = append(cur, s)
		n += len(s) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func rsDeleteIndices(ctx context.Context, c *elasticsearch.Client, names []string) error {
	for _, ch := range rsChunks(names) {
		resp, err := c.Indices.Delete(ch, c.Indices.Delete.WithContext(ctx), c.Indices.Delete.WithExpandWildcards("none"))
		if err != nil {
			return fmt.Errorf("elasticsearch: delete indices %s: %w", strings.Join(ch, ","), err)
		}
		if err := rsCheck(resp, "delete indices "+strings.Join(ch, ","), 404); err != nil {
			return err
		}
	}
	return nil
}

func rsCloseIndices(ctx context.Context, c *elasticsearch.Client, names []string) error {
	for _, ch := range rsChunks(names) {
		resp, err := c.Indices.Close(ch, c.Indices.Close.WithContext(ctx), c.Indices.Close.WithExpandWildcards("none"))
		if err != nil {
			return fmt.Errorf("elasticsearch: close indices %s: %w", strings.Join(ch, ","), err)
		}
		if err := rsCheck(resp, "close indices "+strings.Join(ch, ",")); err != nil {
			return err
		}
	}
	return nil
}

func rsJSON(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// rsCheck consumes resp and returns an error for an error status, except the
// listed ones.
func rsCheck(resp *esapi.Response, what string, ok ...int) error {
	defer resp.Body.Close()
	if !resp.IsError() || slices.Contains(ok, resp.StatusCode) {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("elasticsearch: %s: %s: %s", what, resp.Status(), bytes.TrimSpace(b))
}

func rsDecode(resp *esapi.Response, what string, v any) error {
	defer resp.Body.Close()
	if resp.IsError() {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("elasticsearch: %s: %s: %s", what, resp.Status(), bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("elasticsearch: %s: decode answer: %w", what, err)
	}
	return nil
}
