package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// ErrStage wraps a failure inside a stage (exit 1): the message says which.
var ErrStage = errors.New("backup stage failed")

// backupOptions is what runBackup needs (`backup run` fills it).
type backupOptions struct {
	cfg      *config
	dryRun   bool
	progress manifest.Progress
	log      *slog.Logger
	now      func() time.Time
}

// runResult is what a run did.
type runResult struct {
	SetID    string             `json:"set_id,omitempty"`
	Skipped  bool               `json:"skipped,omitempty"` // not the leader
	DryRun   bool               `json:"dry_run,omitempty"`
	Note     string             `json:"note,omitempty"`
	Plan     []string           `json:"plan,omitempty"`
	Stages   []metrics.Stage    `json:"-"`
	Manifest *manifest.Manifest `json:"-"`
	Checks   []Check            `json:"checks,omitempty"`
}

// runState is kept in the state dir between runs.
type runState struct {
	SetID      string    `json:"set_id"`
	Time       time.Time `json:"time"`
	AddedBytes int64     `json:"added_bytes"` // bytes the run stored anew
}

func stateFile(channel string) string { return "state-" + channel + ".json" }
func cacheFile(channel, tree string) string {
	return "capture-" + channel + "-" + tree + ".cache"
}

// runBackup runs stages 1-4 and publishes the set.
func runBackup(ctx context.Context, o backupOptions) (*runResult, error) {
	cfg := o.cfg
	if o.progress == nil {
		o.progress = manifest.NoProgress{}
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	t0 := o.now()
	pre, err := runPreflight(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if !pre.Leader {
		return &runResult{Skipped: true, Note: pre.LeaderNote}, nil
	}
	for _, c := range pre.Checks {
		if c.Warn {
			o.log.Warn("preflight: "+c.Name, "detail", c.Detail)
		}
	}
	layout := manifest.Layout{Root: cfg.Channel}
	if o.dryRun {
		return &runResult{DryRun: true, Checks: pre.Checks, Plan: plan(cfg, pre)}, nil
	}
	lk, err := lock.AcquireWith(layout.LocksDir(), "backup", lock.Options{Program: program, Host: cfg.Leader.NodeName, Lease: cfg.LockLease})
	if err != nil {
		return nil, err
	}
	defer lk.ReleaseLogged(o.log)
	// Renewed while the run lives; lost (taken over after the lease
	// expired) cancels the run before it publishes.
	ctx = lk.Keep(ctx)
	// Under the lock, the newest set is final.
	sets, err := manifest.List(cfg.Channel)
	if err != nil {
		return nil, err
	}
	var seq uint64 = 1
	if n := len(sets); n > 0 {
		seq = sets[n-1].Sequence + 1
	}
	prev := newestSigned(cfg.Channel, sets)
	created := o.now().UTC().Truncate(time.Second)
	id := manifest.SetID(seq, created)
	host, _ := os.Hostname()
	if cfg.Leader.NodeName != "" {
		host = cfg.Leader.NodeName
	}
	m := &manifest.Manifest{
		Version: manifest.Version, Channel: pre.Channel, Sequence: seq, Created: created, Epoch: pre.Epoch,
		Producer: manifest.Producer{Host: host, Program: program, Version: version},
	}
	store := objects.New(layout.ObjectsDir())
	res := &runResult{SetID: id, Manifest: m}
	var added int64
	o.log.Info("backup start", "set", id, "channel", pre.Channel.String())

	stage := func(name string, f func() (int64, error)) error {
		st := o.now()
		n, err := f()
		if err != nil {
			return fmt.Errorf("%w: %s: %w; no set was published", ErrStage, name, err)
		}
		d := o.now().Sub(st)
		res.Stages = append(res.Stages, metrics.Stage{Name: name, Duration: d, Bytes: n})
		o.log.Info("stage done", "stage", name, "bytes", n, "duration", d.Round(time.Millisecond).String())
		return nil
	}
	// MySQL and files come before Elasticsearch on purpose: a failure in
	// them then leaves the repository's generation (and so every earlier
	// set) untouched; the snapshot is the last step before publishing.
	if cfg.has(stageMySQL) {
		if err := stage(stageMySQL, func() (int64, error) {
			d, err := dumpMySQL(ctx, cfg, pre.Databases, store, o.progress)
			if err != nil {
				return 0, err
			}
			m.MySQL = d
			added += d.Object.Size
			return d.Object.Size, nil
		}); err != nil {
			return nil, err
		}
	}
	var caches []*savedCache
	defer func() {
		for _, c := range caches {
			c.cache.Remove() // not saved: the set was not published
		}
	}()
	if cfg.has(stageFiles) {
		if err := stage(stageFiles, func() (int64, error) {
			trees, cs, read, err := captureFiles(ctx, cfg, pre.Channel.Name, sets, store, o.progress, o.log)
			if err != nil {
				return 0, err
			}
			m.Trees, caches = trees, cs
			added += read
			return read, nil
		}); err != nil {
			return nil, err
		}
	}
	if cfg.has(stageES) {
		if err := stage(stageES, func() (int64, error) {
			s, hashed, err := snapshotES(ctx, cfg, pre, id, prev, store, o.progress, o.log)
			if err != nil {
				return 0, err
			}
			m.Elasticsearch = s
			added += hashed
			return hashed, nil
		}); err != nil {
			return nil, err
		}
	}
	st := o.now()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("no set was published: %w", err)
	}
	if _, err := manifest.Publish(ctx, layout, m, pre.Signer); err != nil {
		return nil, fmt.Errorf("publish set %s: %w", id, err)
	}
	res.Stages = append(res.Stages, metrics.Stage{Name: "publish", Duration: o.now().Sub(st)})
	// Caches and state belong to the published set.
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		o.log.Warn("state dir", "err", err)
	}
	for _, c := range caches {
		c.cache.SetID = id
		if err := c.cache.Save(c.path); err != nil {
			o.log.Warn("save capture cache (the next run re-reads files)", "path", c.path, "err", err)
		}
	}
	stb, _ := json.Marshal(runState{SetID: id, Time: o.now().UTC(), AddedBytes: added})
	if err := manifest.WriteFileAtomic(filepath.Join(cfg.StateDir, stateFile(pre.Channel.Name)), stb, 0o600); err != nil {
		o.log.Warn("save state", "err", err)
	}
	o.log.Info("backup done", "set", id, "added_bytes", added, "duration", o.now().Sub(t0).Round(time.Millisecond).String())
	return res, nil
}

// plan says what a run would do (--dry-run).
func plan(cfg *config, pre *preflight) []string {
	var p []string
	next := uint64(1)
	if n := len(pre.Sets); n > 0 {
		next = pre.Sets[n-1].Sequence + 1
	}
	if cfg.has(stageMySQL) {
		where := "locally"
		if cfg.MySQLViaSSH {
			where = "on " + cfg.SSH.Addr() + " over SSH"
		}
		p = append(p, fmt.Sprintf("dump MySQL databases %s %s with mysqldump --single-transaction, zstd, into %s", strings.Join(pre.Databases, ", "), where, filepath.Join(cfg.Channel, "objects")))
	}
	if cfg.has(stageFiles) {
		for _, r := range fileRoots(cfg) {
			p = append(p, fmt.Sprintf("capture %s (%s) incrementally", r.Name, r.Path))
		}
	}
	if cfg.has(stageES) {
		reg := ""
		if !pre.RepoExists {
			reg = fmt.Sprintf(" (registering %s at %s)", pre.Repo, cfg.ESRepoLocation)
		}
		p = append(p, fmt.Sprintf("snapshot Elasticsearch into repository %s%s", pre.Repo, reg))
	}
	p = append(p, fmt.Sprintf("publish set with sequence %d, signed", next))
	return p
}

// countWriter counts bytes and reports them.
type countWriter struct {
	n int64
	p manifest.Progress
}

func (c *countWriter) Write(b []byte) (int, error) {
	atomic.AddInt64(&c.n, int64(len(b)))
	c.p.Add(int64(len(b)))
	return len(b), nil
}

// dumpSeam lets tests put a writer between the compressor and the object
// store (disk-full injection is done with a real small file system instead).
var dumpSeam = func(w io.Writer) io.Writer { return w }

func dumpMySQL(ctx context.Context, cfg *config, dbs []string, store *objects.Store, p manifest.Progress) (*manifest.MySQLDump, error) {
	if len(dbs) == 0 {
		return nil, fmt.Errorf("mysql: no database to dump (configure mysql-databases or create one)")
	}
	o := cfg.mysqlOptions()
	tables, err := listTables(ctx, o, dbs)
	if err != nil {
		return nil, err
	}
	p.Begin("mysqldump", 0, "bytes")
	defer p.End()
	pr, pw := io.Pipe()
	type result struct {
		counts map[mysqlx.TableKey]int64
		err    error
	}
	done := make(chan result, 1)
	go func() {
		zw, err := zstd.NewWriter(dumpSeam(pw), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			pw.CloseWithError(err)
			done <- result{err: err}
			return
		}
		cw := &countWriter{p: p}
		counts, err := o.Dump(ctx, mysqlx.DumpOptions{Databases: dbs}, io.MultiWriter(zw, cw))
		if cerr := zw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
		done <- result{counts, err}
	}()
	ref, perr := store.Put(ctx, pr)
	if perr != nil {
		pr.CloseWithError(fmt.Errorf("object store: %w", perr)) // stops mysqldump
	} else {
		_ = pr.Close()
	}
	r := <-done
	if r.err != nil && !errors.Is(r.err, io.ErrClosedPipe) {
		return nil, fmt.Errorf("mysql: %w", r.err)
	}
	if perr != nil {
		return nil, fmt.Errorf("mysql: store the dump: %w", perr)
	}
	if r.err != nil {
		return nil, fmt.Errorf("mysql: %w", r.err)
	}
	for i, t := range tables {
		tables[i].Rows = r.counts[mysqlx.TableKey{Database: t.Database, Table: t.Table}]
		delete(r.counts, mysqlx.TableKey{Database: t.Database, Table: t.Table})
	}
	for k, n := range r.counts { // tables created during the dump
		tables = append(tables, manifest.TableCount{Database: k.Database, Table: k.Table, Rows: n})
	}
	sort.Slice(tables, func(i, j int) bool {
		if tables[i].Database != tables[j].Database {
			return tables[i].Database < tables[j].Database
		}
		return tables[i].Table < tables[j].Table
	})
	// without mysql-databases, dbs are all the non-system databases prod has
	all := len(cfg.MySQLDatabases) == 0
	return &manifest.MySQLDump{Object: ref, Compression: manifest.CompressionZstd, Databases: dbs, Tables: tables, AllDatabases: all}, nil
}

// listTables lists the base tables of dbs, through SQL or, over SSH, the
// mysql client on the leader.
func listTables(ctx context.Context, o mysqlx.Options, dbs []string) ([]manifest.TableCount, error) {
	if o.SSH == nil {
		db, err := mysqlx.Open(ctx, o)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return mysqlx.Tables(ctx, db, dbs)
	}
	var q []string
	for _, d := range dbs {
		q = append(q, "'"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(d)+"'")
	}
	var out strings.Builder
	err := o.RunClient(ctx, "mysql", []string{"--batch", "--skip-column-names", "--raw", "-e",
		"SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema IN (" + strings.Join(q, ",") + ")"}, nil, &out)
	if err != nil {
		return nil, fmt.Errorf("mysql: list tables: %w", err)
	}
	var tables []manifest.TableCount
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.SplitN(l, "\t", 2); len(f) == 2 {
			tables = append(tables, manifest.TableCount{Database: f[0], Table: f[1]})
		}
	}
	return tables, nil
}

// snapshotName is the snapshot of set id: the set id in lower case
// (Elasticsearch snapshot names must be lower case).
func snapshotName(id string) string { return strings.ToLower(id) }

// isSetSnapshot reports whether a snapshot name is one backup made.
func isSetSnapshot(name string) bool {
	_, err := manifest.ParseSetID(strings.ToUpper(name))
	return err == nil && name == strings.ToLower(name)
}

// savedCache is a capture cache to save once the set is published.
type savedCache struct {
	path  string
	cache *filetree.CaptureCache
}

// captureSeam wraps each tree's source (tests count what is read).
var captureSeam = func(s filetree.Source) filetree.Source { return s }

func captureFiles(ctx context.Context, cfg *config, channel string, sets []manifest.SetInfo, store *objects.Store, p manifest.Progress, log *slog.Logger) ([]manifest.Tree, []*savedCache, int64, error) {
	roots := fileRoots(cfg)
	if len(roots) == 0 {
		return nil, nil, 0, nil
	}
	published := map[string]bool{}
	for _, s := range sets {
		published[s.ID] = s.HasManifest && s.HasSignature
	}
	var mkSource func(dir string) filetree.Source
	if cfg.FilesViaSSH {
		c, err := sshx.Dial(ctx, cfg.SSH)
		if err != nil {
			return nil, nil, 0, err
		}
		defer c.Close()
		sc, err := c.SFTP()
		if err != nil {
			return nil, nil, 0, err
		}
		defer sc.Close()
		mkSource = func(dir string) filetree.Source { return &filetree.SFTPSource{Client: sc, Dir: dir} }
	} else {
		mkSource = func(dir string) filetree.Source { return &filetree.LocalSource{Dir: dir} }
	}
	var trees []manifest.Tree
	var caches []*savedCache
	var read int64
	// A run killed while capturing left its next cache half-written; this
	// run holds the lock, and a capture writes its own all the time.
	if gone, err := filetree.RemoveStaleCacheTemps(cfg.StateDir, time.Hour); err != nil {
		log.Warn("stale capture cache", "err", err)
	} else if len(gone) > 0 {
		log.Info("removed capture caches a killed run left half-written", "files", gone)
	}
	for _, r := range roots {
		cp := filepath.Join(cfg.StateDir, cacheFile(channel, r.Name))
		cache, err := filetree.LoadCaptureCache(cp)
		if err != nil {
			log.Warn("capture cache unreadable; reading every file", "err", err)
			cache = nil
		}
		if cache != nil && !published[cache.SetID] {
			log.Info("capture cache is for a set that is gone; reading every file", "tree", r.Name, "cache_set", cache.SetID)
			cache = nil
		}
		tree, next, st, err := filetree.Capture(ctx, filetree.CaptureOptions{
			Name: r.Name, Root: r.Path, Source: captureSeam(mkSource(r.Path)), Store: store,
			Include: r.Include, Exclude: r.Exclude, Cache: cache, CacheDir: cfg.StateDir, Workers: cfg.Workers, Progress: p,
		})
		if err != nil {
			return nil, nil, 0, err
		}
		if st.CacheErr != nil {
			log.Warn("capture cache damaged; files after the damage were read again", "err", st.CacheErr)
		}
		log.Info("captured", "tree", r.Name, "files", st.Files, "bytes", st.Bytes, "read_files", st.ReadFiles, "read_bytes", st.ReadBytes, "reused", st.Reused, "skipped", st.Skipped)
		trees = append(trees, tree)
		caches = append(caches, &savedCache{path: cp, cache: next})
		read += st.ReadBytes
	}
	return trees, caches, read, nil
}

func snapshotES(ctx context.Context, cfg *config, pre *preflight, id string, prev *prevSet, store *objects.Store, p manifest.Progress, log *slog.Logger) (*manifest.ESSnapshot, int64, error) {
	c := pre.ES
	repo := pre.Repo
	if !pre.RepoExists {
		if err := c.RegisterRepository(ctx, repo, cfg.ESRepoLocation, false); err != nil {
			return nil, 0, err
		}
		log.Info("registered snapshot repository", "repository", repo, "location", cfg.ESRepoLocation)
	}
	// A run killed while its snapshot was running leaves it running; abort
	// it (we hold the lock, so no other run owns it). Then delete, through
	// the API, finished snapshots no signed set references (pruned sets,
	// failed runs), so that this set's file list is the repository as it
	// stays.
	if snaps, err := c.Snapshots(ctx, repo); err == nil {
		for _, s := range snaps {
			if isSetSnapshot(s.Name) && s.State == "IN_PROGRESS" {
				log.Warn("aborting a snapshot left running by an earlier run", "snapshot", s.Name)
				if err := c.DeleteSnapshot(ctx, repo, s.Name); err != nil {
					return nil, 0, fmt.Errorf("abort orphaned snapshot %s: %w", s.Name, err)
				}
			}
		}
	}
	if _, err := deleteOrphanSnapshots(ctx, c, repo, cfg.Channel, log); err != nil {
		return nil, 0, err
	}
	name := snapshotName(id)
	snap, err := c.CreateSnapshot(ctx, repo, name, es.SnapshotOptions{Indices: cfg.ESIndices, IncludeGlobalState: cfg.ESGlobalState, Progress: p})
	if err != nil {
		if errors.Is(err, es.ErrSnapshotFailed) {
			// A failed snapshot is useless; delete it through the API.
			if derr := c.DeleteSnapshot(context.WithoutCancel(ctx), repo, name); derr != nil {
				log.Warn("delete failed snapshot", "snapshot", name, "err", derr)
			}
		}
		return nil, 0, err
	}
	dir := filepath.Join(cfg.Channel, manifest.ESDirName)
	gen, err := es.Generation(dir)
	if err != nil {
		return nil, 0, err
	}
	known := map[string]manifest.ESFile{}
	if prev != nil && prev.M.Elasticsearch != nil {
		if f, err := store.Open(prev.M.Elasticsearch.Files.SHA256); err == nil {
			_ = manifest.ReadESFiles(f, func(e manifest.ESFile) error { known[e.Path] = e; return nil })
			_ = f.Close()
		}
	}
	p.Begin("elasticsearch repository files", 0, "bytes")
	files, hashed, err := es.RepoFiles(ctx, dir, gen, known, p.Add)
	p.End()
	if err != nil {
		return nil, 0, err
	}
	var total int64
	ref, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, f := range files {
			total += f.Size
			if err := lw.WriteESFile(f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	indices := append([]string(nil), snap.Indices...)
	sort.Strings(indices)
	return &manifest.ESSnapshot{
		Repository: repo, Snapshot: snap.Name, UUID: snap.UUID, State: snap.State, Indices: indices,
		Generation: gen, Files: ref, FileCount: int64(len(files)), Bytes: total,
		Scope:        es.Scope(cfg.ESIndices), // CreateSnapshot checked the snapshot holds every index in it
		Closed:       snap.Closed,
		Fingerprints: snap.Fingerprints, // the indices no operation reached while the snapshot was taken
		Source:       esSource(pre),
	}, hashed, nil
}
