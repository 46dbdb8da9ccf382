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
// with the name of a restored index are replaced (deleted, or closed), and a
// standby index that is not in the set is deleted only when the set says it
// is gone from prod (its scope covers it, Gone) and no keep pattern matches
// it; a system (dot) index never;
// (4) delete/close, then start the restore without waiting, with the index
// settings overrides (e.g. fewer replicas); (5) poll _cat/shards until every
// primary of the restored indices is STARTED, reporting progress, failing
// early on a primary that could not be allocated.
//
// A restore that an earlier run started and did not see to the end (the
// process was stopped) goes on inside Elasticsearch. Step (1) looks for it
// first: the repository cannot be re-registered while it is in use, so the
// plan names it (RestorePlan.InProgress) and RestoreSnapshot cancels it, by
// deleting the indices it restores, before deleting and restoring anything.
// A restore from another repository is left alone and refused.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/manifest"
)

// ErrSnapshotMissing is returned (wrapped) when the set's snapshot is not in
// the registered repository: the repository files did not all arrive, or the
// set names another repository. Nothing was changed.
var ErrSnapshotMissing = errors.New("snapshot not in the repository")

// ErrRestoreFailed is returned (wrapped) when Elasticsearch could not restore
// some shards.
var ErrRestoreFailed = errors.New("snapshot restore failed")

// restoreReport says what RestoreSnapshot does: each step to the log
// ("elasticsearch: delete index x"), the restored (started) primary shards
// to the progress. Calls come from one goroutine.
type restoreReport struct {
	log         *slog.Logger
	p           manifest.Progress
	total, last int
}

func newRestoreReport(opts RestoreOptions) *restoreReport {
	r := &restoreReport{log: opts.Log, p: opts.Progress}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.p == nil {
		r.p = manifest.NoProgress{}
	}
	return r
}

func (r *restoreReport) step(msg string) { r.log.Info("elasticsearch: " + msg) }

func (r *restoreReport) shards(started, total int) {
	if total != r.total {
		r.p.Begin("elasticsearch: restored primary shards", int64(total), "shards")
		r.total, r.last = total, 0
	}
	r.p.Add(int64(started - r.last))
	r.last = started
}

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
	// Gone reports whether a standby index that is not in Indices is gone
	// from the source (the set covers it: manifest.ESSnapshot.Covers); such
	// an index is deleted unless Keep matches it. Nil: the set does not say,
	// and no index is deleted for being absent. A name starting with "." is
	// never deleted for being absent, whatever Gone says.
	Gone func(index string) bool
	// Keep: patterns (path.Match syntax, e.g. "standby_*") of standby
	// indices never deleted for being absent from the set. Names starting
	// with "." match only patterns that do.
	Keep []string
	// Closed are indices of Indices that are closed on the source:
	// Elasticsearch restores them open, RestoreSnapshot closes them after.
	Closed []string
	// Unchanged are indices of Indices that the standby holds as the
	// snapshot has them (the caller proved it: manifest DESIGN.md, "Index
	// fingerprints"): they are kept as they are, neither replaced nor
	// restored. One the standby lacks, one closed on the source or one an
	// interrupted restore was restoring is restored all the same.
	Unchanged []string
	// Changing, if set, is called with the plan after it is made and
	// before the first index is changed; an error stops the restore.
	Changing func(*RestorePlan) error
	// Existing is ExistingDelete (default) or ExistingClose.
	Existing           string
	IncludeGlobalState bool
	// IndexSettings override the snapshot's index settings, e.g.
	// {"index.number_of_replicas": 0} on a standby with fewer nodes.
	IndexSettings map[string]any
	// Replicas set number_of_replicas per index pattern once the primaries
	// are restored (es-replicas); indices no rule matches keep prod's.
	Replicas []ReplicaRule
	// WaitTimeout bounds the wait for the restored shards; 1 hour when zero.
	WaitTimeout time.Duration
	// PollInterval of the shard wait; 1s when zero.
	PollInterval time.Duration
	// ReportInterval: while waiting for the shards, say every so often what
	// is still awaited; 30s when zero.
	ReportInterval time.Duration
	DryRun         bool
	// Log receives each step at Info, as "elasticsearch: <step>" (nil:
	// none); Progress counts the restored primary shards (nil: none).
	Log      *slog.Logger
	Progress manifest.Progress
}

// RestorePlan is what RestoreSnapshot does (or, with DryRun, would do).
type RestorePlan struct {
	Snapshot string   `json:"snapshot"`
	Restore  []string `json:"restore"`         // indices restored from the snapshot
	Replace  []string `json:"replace"`         // existing indices deleted or closed first
	Delete   []string `json:"delete"`          // indices no longer in prod, deleted
	Kept     []string `json:"kept,omitempty"`  // no longer in prod, but kept (es-keep)
	Close    []string `json:"close,omitempty"` // restored, then closed as on prod
	// Unchanged are indices of the snapshot the standby holds as it has
	// them: kept as they are, not restored.
	Unchanged []string `json:"unchanged,omitempty"`
	// Absent says what happens to standby indices the set does not hold.
	Absent   string `json:"absent"`
	Existing string `json:"existing"` // what happens to Replace: delete or close
	Shards   int    `json:"shards"`   // primary shards restored
	// Replicas: restored indices whose number_of_replicas a rule sets.
	Replicas map[string]int `json:"replicas,omitempty"`
	// InProgress is a restore from this repository still running in the
	// cluster, left by an earlier run that was stopped; RestoreSnapshot
	// cancels it first.
	InProgress *RestoreInProgress `json:"in_progress,omitempty"`
}

// RestoreInProgress is a snapshot restore the cluster is running.
type RestoreInProgress struct {
	Repository string   `json:"repository"`
	Snapshot   string   `json:"snapshot"`
	State      string   `json:"state"`
	Indices    []string `json:"indices"`
}

// RestoresInProgress returns the snapshot restores the cluster is running
// (the "restore" part of the cluster state).
func RestoresInProgress(ctx context.Context, c *elasticsearch.Client) ([]RestoreInProgress, error) {
	resp, err := c.Cluster.State(c.Cluster.State.WithContext(ctx), c.Cluster.State.WithFilterPath("restore.snapshots"))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: look for restores in progress: %w", err)
	}
	var out struct {
		Restore struct {
			Snapshots []RestoreInProgress `json:"snapshots"`
		} `json:"restore"`
	}
	if err := rsDecode(resp, "look for restores in progress", &out); err != nil {
		return nil, err
	}
	return out.Restore.Snapshots, nil
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
		_, _ = fmt.Sscan(r.Docs, &ii.Docs)
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
	for _, p := range opts.Keep {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("elasticsearch restore: keep pattern %q: %w", p, err)
		}
	}
	running, err := RestoresInProgress(ctx, c)
	if err != nil {
		return nil, err
	}
	var inProgress *RestoreInProgress
	for _, r := range running {
		if r.Repository != opts.Repository {
			return nil, fmt.Errorf("elasticsearch: a restore of snapshot %s/%s (indices %s) is in progress, not from this channel's repository %s; "+
				"wait for it to end, or cancel it by deleting those indices, then run again", r.Repository, r.Snapshot, strings.Join(r.Indices, ", "), opts.Repository)
		}
		inProgress = &r
	}
	if inProgress == nil {
		if err := RegisterReadonlyRepository(ctx, c, opts.Repository, opts.Location); err != nil {
			return nil, err
		}
	} // else the repository is in use and cannot be re-registered; it is already registered
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
	plan := &RestorePlan{Snapshot: opts.Snapshot, Existing: opts.Existing,
		Absent: "left alone: the set does not say which indices prod has (format 1.0)"}
	plan.Restore, plan.Unchanged = rsUnchanged(opts, existing, inProgress)
	plan.Replicas = replicasFor(plan.Restore, opts.Replicas)
	if opts.Gone != nil {
		plan.Absent = "deleted when the set's scope covers them (gone from prod), unless es-keep names them; system indices never"
	}
	plan.InProgress = inProgress
	for _, ix := range opts.Closed {
		if slices.Contains(opts.Indices, ix) {
			plan.Close = append(plan.Close, ix)
		}
	}
	restore, inSet := rsSet(plan.Restore), rsSet(opts.Indices)
	for _, ii := range existing {
		switch {
		case restore[ii.Index]:
			plan.Replace = append(plan.Replace, ii.Index)
		case inSet[ii.Index]:
			// unchanged: kept as it is
		case opts.Gone == nil || strings.HasPrefix(ii.Index, ".") || !opts.Gone(ii.Index):
			// not the set's to say
		case rsMatch(ii.Index, opts.Keep):
			plan.Kept = append(plan.Kept, ii.Index)
		default:
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
	p := newRestoreReport(opts)
	plan, err := PlanRestore(ctx, c, opts)
	if err != nil || opts.DryRun {
		return plan, err
	}
	if opts.Changing != nil {
		if err := opts.Changing(plan); err != nil {
			return plan, err
		}
	}
	if ip := plan.InProgress; ip != nil {
		p.step(fmt.Sprintf("a restore of %s/%s left running by an earlier run is still in progress: cancel it (delete %s)", ip.Repository, ip.Snapshot, strings.Join(ip.Indices, ", ")))
		if err := rsCancelRestore(ctx, c, *ip, opts); err != nil {
			return plan, err
		}
	}
	if len(plan.Replace) > 0 {
		if plan.Existing == ExistingClose {
			p.step("close " + strings.Join(plan.Replace, ", "))
			if err := rsCloseIndices(ctx, c, plan.Replace); err != nil {
				return plan, err
			}
		} else {
			p.step("delete (to be replaced) " + strings.Join(plan.Replace, ", "))
			if err := rsDeleteIndices(ctx, c, plan.Replace); err != nil {
				return plan, err
			}
		}
	}
	if len(plan.Delete) > 0 {
		p.step("delete (gone from prod) " + strings.Join(plan.Delete, ", "))
		if err := rsDeleteIndices(ctx, c, plan.Delete); err != nil {
			return plan, err
		}
	}
	if len(plan.Restore) == 0 && !opts.IncludeGlobalState {
		return plan, nil
	}
	p.step(fmt.Sprintf("restore %d indices from %s", len(plan.Restore), opts.Snapshot))
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
	if err == nil && len(plan.Replicas) > 0 {
		err = rsSetReplicas(ctx, c, plan.Replicas, p)
	}
	if err == nil && len(plan.Close) > 0 {
		p.step("close (closed on prod) " + strings.Join(plan.Close, ", "))
		err = rsCloseIndices(ctx, c, plan.Close)
	}
	return plan, err
}

// rsUnchanged splits the snapshot's indices (sorted) into those to restore
// and those opts.Unchanged keeps: an index is kept only when the standby has
// it open, it was not closed on the source and no interrupted restore was
// restoring it.
func rsUnchanged(opts RestoreOptions, existing []IndexState, inProgress *RestoreInProgress) (restore, unchanged []string) {
	keep := rsSet(opts.Unchanged)
	open := map[string]bool{}
	for _, ii := range existing {
		open[ii.Index] = ii.Status == "open"
	}
	for _, ix := range opts.Closed {
		delete(keep, ix)
	}
	if inProgress != nil {
		for _, ix := range inProgress.Indices {
			delete(keep, ix)
		}
	}
	for _, ix := range slices.Sorted(slices.Values(opts.Indices)) {
		if keep[ix] && open[ix] {
			unchanged = append(unchanged, ix)
		} else {
			restore = append(restore, ix)
		}
	}
	return restore, unchanged
}

func rsSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// rsWaitShards polls _cat/shards until every primary shard of indices is
// STARTED, a primary failed to allocate, or the timeout ends. Every
// ReportInterval it says what it still waits for; a poll that gets no
// answer (a hung or restarting node) is reported and retried until the
// timeout. When ctx is cancelled (the process is being stopped) it returns
// an error wrapping ctx's: the restore goes on inside Elasticsearch.
func rsWaitShards(ctx context.Context, c *elasticsearch.Client, indices []string, opts RestoreOptions, p *restoreReport) (int, error) {
	timeout := opts.WaitTimeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	iv := opts.PollInterval
	if iv <= 0 {
		iv = time.Second
	}
	every := opts.ReportInterval
	if every <= 0 {
		every = 30 * time.Second
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	want := map[string]bool{}
	for _, i := range indices {
		want[i] = true
	}
	p.step(fmt.Sprintf("restore started; waiting up to %s (es-timeout) for the primary shards of %d indices", timeout, len(indices)))
	last, total, started := -1, 0, 0
	lastReport := start
	var pending []string
	var lastErr error
	for {
		resp, err := c.Cat.Shards(c.Cat.Shards.WithContext(wctx), c.Cat.Shards.WithFormat("json"),
			c.Cat.Shards.WithH("index", "shard", "prirep", "state", "unassigned.reason", "unassigned.details"))
		var rows []struct {
			Index   string `json:"index"`
			Shard   string `json:"shard"`
			PriRep  string `json:"prirep"`
			State   string `json:"state"`
			Reason  string `json:"unassigned.reason"`
			Details string `json:"unassigned.details"`
		}
		if err == nil {
			err = rsDecode(resp, "wait for restored shards", &rows)
		}
		elapsed := time.Since(start).Round(time.Second)
		switch {
		case ctx.Err() != nil:
			return total, fmt.Errorf("elasticsearch: stopped while waiting for restored shards (%d of %d primary shards started after %s); "+
				"Elasticsearch goes on restoring, the next run cancels that restore and starts over: %w", started, total, elapsed, ctx.Err())
		case err != nil:
			lastErr = err
			if wctx.Err() == nil {
				p.step(fmt.Sprintf("waiting for restored shards: elasticsearch did not answer (%v); still waiting (%d of %d primary shards started, %s of %s)",
					err, started, total, elapsed, timeout))
				lastReport = time.Now()
			}
		default:
			lastErr = nil
			total, started, pending = 0, 0, pending[:0]
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
				default:
					pending = append(pending, fmt.Sprintf("%s[%s] %s", r.Index, r.Shard, r.State))
				}
			}
			if started != last {
				p.shards(started, total)
				last = started
			}
			if len(failed) > 0 {
				return total, fmt.Errorf("%w: %d primary shards could not be restored: %s", ErrRestoreFailed, len(failed), strings.Join(failed, "; "))
			}
			if started == total {
				return total, nil
			}
			if time.Since(lastReport) >= every {
				p.step(fmt.Sprintf("waiting for restored shards: %d of %d primary shards started (%s of %s); not yet: %s",
					started, total, elapsed, timeout, rsFirst(pending, 5)))
				lastReport = time.Now()
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				continue // reported as stopped above
			}
			why := "see GET _cat/recovery"
			if lastErr != nil {
				why = fmt.Sprintf("elasticsearch did not answer: %v", lastErr)
			}
			return total, fmt.Errorf("%w: %d of %d primary shards started after %s (es-timeout); %s", ErrRestoreFailed, started, total, timeout, why)
		case <-time.After(iv):
		}
	}
}

// rsFirst joins the first n items and says how many more there are.
func rsFirst(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// rsCancelRestore cancels a restore in progress by deleting the indices it
// restores (Elasticsearch's documented way), waits until the cluster no
// longer lists it, and registers the repository afresh.
func rsCancelRestore(ctx context.Context, c *elasticsearch.Client, ip RestoreInProgress, opts RestoreOptions) error {
	if err := rsDeleteIndices(ctx, c, ip.Indices); err != nil {
		return fmt.Errorf("cancel the restore of %s/%s: %w", ip.Repository, ip.Snapshot, err)
	}
	iv := opts.PollInterval
	if iv <= 0 {
		iv = time.Second
	}
	for range 60 {
		running, err := RestoresInProgress(ctx, c)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(running, func(r RestoreInProgress) bool { return r.Repository == ip.Repository }) {
			return RegisterReadonlyRepository(ctx, c, opts.Repository, opts.Location)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(iv):
		}
	}
	return fmt.Errorf("elasticsearch: the restore of %s/%s is still listed after its indices were deleted; see GET _cluster/state?filter_path=restore", ip.Repository, ip.Snapshot)
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
