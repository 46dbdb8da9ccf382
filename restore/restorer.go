package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/postcheck"
	"github.com/squirro-bcp/bcp/internal/redisx"
	"github.com/squirro-bcp/bcp/internal/restart"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// ErrStageFailed is returned (wrapped, with the stage's own error) when a
// restore stage failed after verification: the standby may be partly
// restored; the ledger and the report say which stages ran (exit 1).
var ErrStageFailed = errors.New("restore stage failed")

// ErrInterrupted is returned (wrapped, with the cancellation) when the run
// was stopped (SIGTERM, Ctrl-C) during a stage: the ledger records it as
// interrupted, with the stage; the next run starts over (exit 1).
var ErrInterrupted = errors.New("restore interrupted")

// ErrNotLeader: this node is not the standby's leader, so it does not restore.
var ErrNotLeader = errors.New("this node is not the standby's leader")

// Stage names, in order.
const (
	stageES        = "elasticsearch"
	stageMySQL     = "mysql"
	stageFiles     = "files"
	stageRedis     = "redis"
	stageRestart   = "restart"
	stagePostcheck = "postcheck"
	// stagePrepare is recorded, before stageOrder, only when it fails: the
	// checks before anything changes (plan, snapshot present, SSH set up).
	stagePrepare = "prepare"
)

var stageOrder = []string{stageES, stageMySQL, stageFiles, stageRedis, stageRestart, stagePostcheck}

// restorer carries out restores for one configuration.
type restorer struct {
	cfg settings
	log *slog.Logger
	rep ui.Reporter
	// fromESLocation: the request's FromESLocation, for esOptions.
	fromESLocation string
	// full: the request's Full, for esUnchanged.
	full bool
	// fullCompare: the request's FullCompare; fromOther: read --from a
	// directory other than the channel (filesrecord.go: both compare
	// every file).
	fullCompare, fromOther bool
}

func newRestorer(cfg settings, log *slog.Logger, rep ui.Reporter) *restorer {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if rep == nil {
		rep = ui.Nop{}
	}
	return &restorer{cfg: cfg, log: log, rep: rep}
}

// request is one restore: which set, from where.
type request struct {
	SetID      string // "" = newest
	From       string // "" = the configured channel
	DryRun     bool
	AllowOlder bool // restore a set that is not newer than what is live (by hand only)
	// FromESLocation is From's es/ as the standby's Elasticsearch nodes
	// see it ("" = From/es).
	FromESLocation string
	// Full restores every index of the set, also those the standby holds
	// unchanged.
	Full bool
	// FullCompare compares every file of the trees with the target, also
	// below directories whose list equals the one last applied there.
	FullCompare bool
}

func (q request) root(cfg settings) string {
	if q.From != "" {
		return q.From
	}
	return cfg.Channel
}

func (r *restorer) allowedSigners() (*sshsig.AllowedSigners, error) {
	a, err := sshsig.LoadAllowedSigners(r.cfg.AllowedSigners)
	if err != nil {
		return nil, fmt.Errorf("allowed signers %s: %w", r.cfg.AllowedSigners, err)
	}
	return a, nil
}

// expect is the channel identity sets must carry.
func (r *restorer) expect(root string) manifest.Channel {
	ch := manifest.Channel{Name: r.cfg.ChannelName, Source: r.cfg.Source, Target: r.cfg.Site}
	if ch.Name == "" && r.cfg.Channel != "" {
		if c, err := manifest.ReadChannel(r.cfg.Channel); err == nil {
			ch.Name = c.Name
		}
	}
	if ch.Name == "" {
		if c, err := manifest.ReadChannel(root); err == nil {
			ch.Name = c.Name
		}
	}
	return ch
}

// openLedger opens the ledger in the state directory.
func (r *restorer) openLedger() (*ledger.Ledger, error) {
	dir, err := r.cfg.stateDir()
	if err != nil {
		return nil, err
	}
	return ledger.Open(dir)
}

// live returns the live record for the channel (zero Record if none).
func (r *restorer) live(l *ledger.Ledger, channel string) (ledger.Record, error) {
	rec, err := l.Live(channel)
	if errors.Is(err, ledger.ErrNoRecord) {
		return ledger.Record{}, nil
	}
	return rec, err
}

// verify runs full verification of one set.
func (r *restorer) verify(ctx context.Context, root, setID string, after uint64) (*manifest.Report, error) {
	as, err := r.allowedSigners()
	if err != nil {
		return nil, err
	}
	if _, err := r.cfg.stateDir(); err != nil {
		return nil, err
	}
	seen, err := site.ReadSeenEpoch(r.cfg.seenEpochPath())
	if err != nil {
		return nil, err
	}
	rep, err := manifest.Verify(ctx, manifest.VerifyOptions{
		Root: root, SetID: setID, Expect: r.expect(root), AllowedSigners: as, After: after, MinEpoch: seen,
		Cache: r.cfg.cachePath(), Workers: r.cfg.VerifyWorkers, Progress: r.rep,
		MaxClockSkew: r.cfg.MaxClockSkew,
	})
	if err == nil {
		err = r.raiseSeenEpoch(rep)
	}
	return rep, err
}

// checkRole refuses unless this site is a standby.
func (r *restorer) checkRole() error {
	return site.Require(r.cfg.RoleFile, site.Standby, "restore")
}

// isLeader asks the leader source (leader-mode) whether this node leads
// the standby.
func (r *restorer) isLeader(ctx context.Context) (leader.Result, error) {
	o := r.cfg.Leader
	if o.Mode == "" {
		if err := o.Validate(); err != nil {
			return leader.Result{}, err
		}
	}
	return leader.Find(ctx, o)
}

// run restores one set: role check, lock, full verification, then stages
// 6-11, recording everything in the ledger. With DryRun it verifies and
// returns the plan without changing anything (Elasticsearch gets the
// channel's repository registered read-only, to check the snapshot).
func (r *restorer) run(ctx context.Context, q request) (*plan, error) {
	if err := r.checkRole(); err != nil {
		return nil, err
	}
	dir, err := r.cfg.stateDir()
	if err != nil {
		return nil, err
	}
	// The state directory may be shared by every standby node (see
	// doc/architecture.md): the lock names this node and carries a lease,
	// so a leader that died mid-restore does not block the next one.
	lk, err := lock.AcquireWith(dir, "restore", lock.Options{Program: program, Host: r.cfg.Leader.NodeName, Lease: r.cfg.LockLease})
	if err != nil {
		return nil, err
	}
	defer lk.ReleaseLogged(r.log)
	ctx = lk.Keep(ctx)
	l, err := r.openLedger()
	if err != nil {
		return nil, err
	}
	root := q.root(r.cfg)
	r.fromESLocation, r.full = q.FromESLocation, q.Full
	r.fullCompare, r.fromOther = q.FullCompare, q.From != "" && q.From != r.cfg.Channel
	exp := r.expect(root)
	live, err := r.live(l, exp.Name)
	if err != nil {
		return nil, err
	}
	after := live.Sequence
	if q.AllowOlder {
		after = 0
	}
	r.log.Info("verifying", "channel", root, "set", orNewest(q.SetID), "live", live.Set)
	rep, err := r.verify(ctx, root, q.SetID, after)
	r.rep.End()
	if err != nil {
		if errors.Is(err, manifest.ErrStale) {
			err = fmt.Errorf("%w (live is %s, sequence %d; to go back to an older set by hand, add --allow-older)", err, live.Set, live.Sequence)
		}
		return &plan{Verify: rep, From: root, DryRun: q.DryRun}, err
	}
	m := rep.Manifest
	p := &plan{Set: rep.SetID, Sequence: rep.Sequence, Created: m.Created, From: root, DryRun: q.DryRun, Verify: rep}
	r.log.Info("set verified", "set", rep.SetID, "files", rep.Files, "bytes", rep.Bytes, "hashed", rep.Hashed, "cached", rep.Cached, "signer", rep.Signer)
	if q.DryRun {
		return p, r.prepare(ctx, root, m, p, true)
	}

	// Every attempt is in the ledger from here on, one that fails before
	// changing anything (stage "prepare") too.
	run, err := l.Begin(ledger.Record{Set: rep.SetID, Sequence: rep.Sequence, Created: m.Created, Channel: m.Channel.Name, From: root})
	if err != nil {
		return p, err
	}
	if err := r.prepare(ctx, root, m, p, false); err != nil {
		if lerr := run.StageEnd(stagePrepare, "", err); lerr != nil {
			r.log.Error("ledger", "err", lerr)
		}
		if ferr := run.Finish(err); ferr != nil {
			r.log.Error("ledger", "err", ferr)
		}
		p.Stages = run.Record().Stages
		return p, err
	}
	pins := manifest.Layout{Root: r.cfg.Channel}.PinsDir()
	r.setPins(pins, map[string]string{rep.SetID: "restoring", live.Set: "live"})
	err = r.stages(ctx, root, m, p, run)
	if ferr := run.Finish(err); ferr != nil {
		r.log.Error("ledger", "err", ferr)
	}
	p.Stages = run.Record().Stages
	if err != nil {
		r.setPins(pins, map[string]string{live.Set: "live"})
		if errors.Is(err, ErrInterrupted) {
			r.log.Warn("restore interrupted; the next run starts over", "set", rep.SetID, "err", err)
		} else {
			r.alert(ctx, err, p)
		}
		return p, err
	}
	r.setPins(pins, map[string]string{rep.SetID: "live"})
	r.log.Info("restore complete", "set", rep.SetID, "sequence", rep.Sequence)
	return p, nil
}

func orNewest(id string) string {
	if id == "" {
		return "newest"
	}
	return id
}

func (r *restorer) setPins(dir string, keep map[string]string) {
	if r.cfg.Channel == "" {
		return
	}
	if err := ledger.SetPins(dir, keep); err != nil {
		r.log.Warn("could not update pins; movers might prune a set in use", "dir", dir, "err", err)
	}
}

func (r *restorer) alert(ctx context.Context, err error, p *plan) {
	if !r.cfg.Alert.Enabled() {
		return
	}
	host, _ := os.Hostname()
	var b strings.Builder
	for _, s := range p.Stages {
		fmt.Fprintf(&b, "%-13s %-8s %s %s\n", s.Name, s.Outcome, s.Detail, s.Error)
	}
	a := alert.Alert{Program: program, Command: "run", Host: host, Time: time.Now().UTC(), ExitCode: exitCode(err),
		Summary: fmt.Sprintf("restore of set %s into %s failed: %v", p.Set, r.cfg.Site, err), Detail: b.String()}
	if aerr := alert.Send(ctx, r.cfg.Alert, a); aerr != nil {
		r.log.Error("alert not delivered", "err", aerr)
	}
}

// esClient is a client whose requests fail when Elasticsearch sends no
// answer within es-request-timeout (a hung node), instead of waiting as long
// as the whole stage may take.
func (r *restorer) esClient() (*elasticsearch.Client, error) {
	c, err := r.esAPI()
	if err != nil {
		return nil, err
	}
	return c.Client, nil
}

// esAPI is esClient with internal/es's own calls and typed errors.
func (r *restorer) esAPI() (*es.Client, error) {
	if r.cfg.ESURL == "" {
		return nil, fmt.Errorf("the set has an Elasticsearch snapshot but no --es-url is configured")
	}
	return es.NewClient(es.Options{URLs: []string{r.cfg.ESURL}, Username: r.cfg.ESUsername, PasswordFile: r.cfg.ESPasswordFile,
		CACertFile: r.cfg.ESCAFile, Timeout: r.cfg.ESRequestTimeout})
}

// esHung says what a request timeout means.
func (r *restorer) esHung(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w (elasticsearch at %s sent no answer within %s, es-request-timeout: is the node hung or overloaded?)", err, r.cfg.ESURL, r.cfg.ESRequestTimeout)
	}
	return err
}

func (r *restorer) esOptions(root string, m *manifest.Manifest, dry bool) es.RestoreOptions {
	repo := r.cfg.ESRepository
	if repo == "" {
		repo = "bcp-" + m.Channel.Name
	}
	// es-repository-location says where Elasticsearch sees the channel's
	// es/; a set read --from elsewhere has its own (--from-es-location).
	loc := r.cfg.ESRepoLocation
	if root != r.cfg.Channel {
		loc = r.fromESLocation
	}
	if loc == "" {
		loc = filepath.Join(root, manifest.ESDirName)
	}
	return es.RestoreOptions{
		Repository: repo, Location: loc, Snapshot: m.Elasticsearch.Snapshot, UUID: m.Elasticsearch.UUID,
		Indices: m.Elasticsearch.Indices, Gone: esGone(m.Elasticsearch), Keep: r.cfg.ESKeep, Closed: m.Elasticsearch.Closed, Existing: r.cfg.ESExisting,
		IncludeGlobalState: r.cfg.ESGlobalState, IndexSettings: r.cfg.ESIndexSettings, Replicas: r.cfg.ESReplicas, WaitTimeout: r.cfg.ESTimeout, ReportInterval: r.cfg.esReportInterval,
		DryRun: dry, Log: r.log, Progress: r.rep,
	}
}

// esGone is the set's word on which absent indices prod no longer has: nil
// when the set does not say (format 1.0).
func esGone(s *manifest.ESSnapshot) func(string) bool {
	if len(s.Scope) == 0 {
		return nil
	}
	return s.Covers
}

// prepare fills the plan with everything that can be known before changing
// anything, and checks what must hold before stage 6 starts: the snapshot
// is in the repository, the tree targets are configured, the known_hosts
// file is readable when a stage needs SSH.
func (r *restorer) prepare(ctx context.Context, root string, m *manifest.Manifest, p *plan, dry bool) error {
	if err := r.preflight(ctx, root, m); err != nil {
		return err
	}
	if m.Elasticsearch != nil {
		c, err := r.esClient()
		if err != nil {
			return err
		}
		opts := r.esOptions(root, m, true)
		if opts.Unchanged, p.ESWhy, err = r.esUnchanged(ctx, c, m); err != nil {
			return r.esHung(err)
		}
		ep, err := es.PlanRestore(ctx, c, opts)
		if err != nil {
			return r.esHung(err)
		}
		p.ES = ep
	}
	if m.MySQL != nil {
		if r.cfg.MySQLDefaultsFile == "" {
			return fmt.Errorf("the set has a MySQL dump but no --mysql-defaults-file option file is configured")
		}
		p.MySQL = &mysqlPlan{Databases: m.MySQL.Databases, Tables: len(m.MySQL.Tables), DumpBytes: m.MySQL.Object.Size}
		if err := r.mysqlGone(ctx, m.MySQL, p.MySQL); err != nil {
			return err
		}
	}
	var ssh []string
	if r.cfg.FilesViaSSH && slices.ContainsFunc(m.Trees, func(t manifest.Tree) bool { return r.treeDir(t.Name) != "" }) {
		ssh = append(ssh, "files-via-ssh")
	}
	if r.cfg.MySQLViaSSH && m.MySQL != nil {
		ssh = append(ssh, "mysql-via-ssh")
	}
	if r.cfg.RestartCommand == "" {
		return cli.Usagef("no restart-command configured: stage 10 restarts Squirro on every standby node (restart-command, restart-nodes); "+
			"set restart-command = %q to restart nothing on purpose", restartNone)
	}
	if r.cfg.restarts() {
		ssh = append(ssh, "restart-command")
	}
	if err := r.cfg.checkKnownHosts(ssh); err != nil {
		return err
	}
	for _, t := range m.Trees {
		tp := treePlan{Tree: t.Name, Dir: r.treeDir(t.Name)}
		if tp.Dir == "" {
			tp.Skipped = "no target directory configured for this tree"
		} else if err := r.planTree(ctx, root, t, &tp, dry); err != nil {
			return err
		}
		p.Trees = append(p.Trees, tp)
	}
	if r.cfg.RedisAddr != "" {
		p.Redis = []string{"all"}
		if len(r.cfg.RedisDBs) > 0 {
			p.Redis = nil
			for _, d := range r.cfg.RedisDBs {
				p.Redis = append(p.Redis, fmt.Sprint(d))
			}
		}
	}
	if r.cfg.restarts() {
		p.Restart = r.cfg.RestartNodes
	}
	p.Checks = append(p.Checks, r.cfg.HealthURLs...)
	if r.cfg.ESURL != "" {
		p.Checks = append(p.Checks, "elasticsearch >= yellow")
	}
	if r.cfg.MySQLDefaultsFile != "" {
		p.Checks = append(p.Checks, "mysql answers")
	}
	return nil
}

func (r *restorer) treeDir(name string) string {
	switch name {
	case "storage":
		return r.cfg.StorageRoot
	case "config":
		return r.cfg.ConfigRoot
	}
	return ""
}

// stages runs 6-11 in order; the first failure stops the rest (marked skipped).
func (r *restorer) stages(ctx context.Context, root string, m *manifest.Manifest, p *plan, run *ledger.Run) error {
	store := objects.New(manifest.Layout{Root: root}.ObjectsDir())
	steps := map[string]func() (string, error){
		stageES: func() (string, error) {
			if m.Elasticsearch == nil {
				return "", errSkip("the set has no Elasticsearch snapshot")
			}
			c, err := r.esClient()
			if err != nil {
				return "", err
			}
			opts := r.esOptions(root, m, false)
			if opts.Unchanged, p.ESWhy, err = r.esUnchanged(ctx, c, m); err != nil {
				return "", r.esHung(err)
			}
			l, err := r.openLedger()
			if err != nil {
				return "", err
			}
			opts.Changing = esForget(l)
			ep, err := es.RestoreSnapshot(ctx, c, opts)
			if ep != nil {
				p.ES = ep
			}
			r.rep.End()
			if err != nil {
				return "", r.esHung(err)
			}
			if err := r.esRecord(ctx, c, m, ep); err != nil {
				r.log.Warn("could not record the restored indices' fingerprints; the next restore restores them again", "err", err)
			}
			return fmt.Sprintf("%d indices (%d primary shards) restored, %d unchanged, %d replaced, %d deleted",
				len(ep.Restore), ep.Shards, len(ep.Unchanged), len(ep.Replace), len(ep.Delete)), nil
		},
		stageMySQL: func() (string, error) {
			if m.MySQL == nil {
				return "", errSkip("the set has no MySQL dump")
			}
			return r.restoreMySQL(ctx, store, m.MySQL)
		},
		stageFiles: func() (string, error) {
			if len(m.Trees) == 0 {
				return "", errSkip("the set has no file trees")
			}
			var parts []string
			p.Trees = nil
			for _, t := range m.Trees {
				tp := treePlan{Tree: t.Name, Dir: r.treeDir(t.Name)}
				if tp.Dir == "" {
					tp.Skipped = "no target directory configured for this tree"
					p.Trees = append(p.Trees, tp)
					parts = append(parts, t.Name+": not configured, left alone")
					continue
				}
				st, err := r.applyRecorded(ctx, root, m.Channel.Name, t, tp.Dir)
				tp.fill(st)
				p.Trees = append(p.Trees, tp)
				if err != nil {
					return strings.Join(parts, "; "), fmt.Errorf("tree %s into %s: %w", t.Name, tp.Dir, err)
				}
				parts = append(parts, fmt.Sprintf("%s: %d added, %d replaced, %d removed, %d unchanged", t.Name, st.Added, st.Replaced, st.Removed, st.Unchanged))
			}
			return strings.Join(parts, "; "), nil
		},
		stageRedis: func() (string, error) {
			if r.cfg.RedisAddr == "" {
				return "", errSkip("no Redis configured")
			}
			dbs, err := redisx.Flush(ctx, redisx.Options{Addr: r.cfg.RedisAddr, PasswordFile: r.cfg.RedisPasswordFile, DBs: r.cfg.RedisDBs})
			return "flushed " + strings.Join(dbs, ","), err
		},
		stageRestart: func() (string, error) {
			if !r.cfg.restarts() {
				return "", errSkip("restart-command = \"none\": no restart, on purpose")
			}
			var nodes []restart.Node
			for _, n := range r.cfg.RestartNodes {
				nodes = append(nodes, restart.Node{Name: n, SSH: r.cfg.nodeSSH(n)})
			}
			res, err := restart.Run(ctx, restart.Options{Nodes: nodes, Command: r.cfg.RestartCommand, Timeout: r.cfg.RestartTimeout})
			p.Restarts = res
			ok := 0
			for _, x := range res {
				if x.OK {
					ok++
				}
			}
			return fmt.Sprintf("%d of %d nodes restarted", ok, len(res)), err
		},
		stagePostcheck: func() (string, error) {
			opts := postcheck.Options{URLs: r.cfg.HealthURLs, Timeout: r.cfg.PostcheckTimeout}
			if r.cfg.ESURL != "" {
				c, err := r.esClient()
				if err != nil {
					return "", err
				}
				opts.ES = c
			}
			if r.cfg.MySQLDefaultsFile != "" {
				dsn, err := mysqlx.OptionFileDSN(r.cfg.MySQLDefaultsFile)
				if err != nil {
					return "", err
				}
				opts.MySQLDSN = dsn
			}
			if len(opts.URLs) == 0 && opts.ES == nil && opts.MySQLDSN == "" {
				return "", errSkip("nothing to check configured")
			}
			res, err := postcheck.Run(ctx, opts)
			p.PostChecks = res
			return fmt.Sprintf("%d checks", len(res)), err
		},
	}
	for i, name := range stageOrder {
		if err := ctx.Err(); err != nil {
			for _, rest := range stageOrder[i:] {
				_ = run.StageSkipped(rest, "not run: the restore was stopped")
			}
			return stageError(i, err)
		}
		start := time.Now()
		_ = run.StageStart(name)
		r.log.Info("stage start", "stage", name)
		detail, err := steps[name]()
		var skip skipError
		if errors.As(err, &skip) {
			r.markSkipped(run, name, string(skip))
			continue
		}
		if lerr := run.StageEnd(name, detail, err); lerr != nil {
			r.log.Error("ledger", "err", lerr)
		}
		if err != nil {
			why := "not run: stage " + name + " failed"
			if errors.Is(err, context.Canceled) {
				why = "not run: the restore was stopped during stage " + name
			}
			r.log.Error("stage failed", "stage", name, "err", err)
			for _, rest := range stageOrder[i+1:] {
				_ = run.StageSkipped(rest, why)
			}
			return stageError(i, err)
		}
		r.log.Info("stage done", "stage", name, "took", time.Since(start).Round(time.Millisecond).String(), "detail", detail)
	}
	return nil
}

// stageError is the error of a run that stopped at stageOrder[i]: failed,
// or interrupted when err is a cancellation (the process was stopped).
func stageError(i int, err error) error {
	name, before, after := stageOrder[i], strings.Join(stageOrder[:i], ", "), strings.Join(stageOrder[i:], ", ")
	if before == "" {
		before = "nothing"
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w during stage %s: %w; restored before it: %s; not restored: %s; the next run starts over",
			ErrInterrupted, name, err, before, after)
	}
	return fmt.Errorf("%w: %s: %w; restored before it: %s; not restored: %s; run restore again to start over",
		ErrStageFailed, name, err, before, after)
}

// markSkipped turns the running stage record into a skipped one.
func (r *restorer) markSkipped(run *ledger.Run, name, why string) {
	if err := run.StageSkipped(name, why); err != nil {
		r.log.Error("ledger", "err", err)
	}
	r.log.Info("stage skipped", "stage", name, "why", why)
}

type skipError string

func (s skipError) Error() string { return string(s) }

func errSkip(why string) error { return skipError(why) }

func (r *restorer) restoreMySQL(ctx context.Context, store *objects.Store, d *manifest.MySQLDump) (string, error) {
	f, err := store.Open(d.Object.SHA256)
	if err != nil {
		return "", fmt.Errorf("open dump object: %w", err)
	}
	defer f.Close()
	var gone mysqlPlan
	if err := r.mysqlGone(ctx, d, &gone); err != nil {
		return "", err
	}
	opts := mysqlx.LoadOptions{Dump: f, Compression: d.Compression, Databases: d.Databases, Drop: gone.Drop, Client: r.cfg.MySQLClient, DefaultsFile: r.cfg.MySQLDefaultsFile}
	if r.cfg.MySQLViaSSH {
		c, err := sshx.Dial(ctx, r.cfg.SSH)
		if err != nil {
			return "", err
		}
		defer c.Close()
		opts.SSH, opts.DefaultsFile = c, r.cfg.MySQLRemoteDefaults
	}
	st, err := mysqlx.Load(ctx, opts)
	if err != nil {
		return "", err
	}
	dsn, err := mysqlx.OptionFileDSN(r.cfg.MySQLDefaultsFile)
	if err != nil {
		return "", err
	}
	db, err := openDB(dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if err := mysqlx.CheckRowCounts(ctx, db, d.Tables); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d databases, %d tables, %d SQL bytes; row counts match; %d dropped (gone from prod), %d kept", len(d.Databases), len(d.Tables), st.Bytes, len(gone.Drop), len(gone.Kept)), nil
}

// mysqlGone fills p with what happens to the standby's databases that the
// set does not hold: when the dump holds all of prod's databases, those not
// named by mysql-keep are dropped (prod no longer has them); otherwise they
// are left alone. System schemas are never listed.
func (r *restorer) mysqlGone(ctx context.Context, d *manifest.MySQLDump, p *mysqlPlan) error {
	if !d.AllDatabases {
		p.Absent = "left alone: the set holds only the databases it names"
		return nil
	}
	p.Absent = "dropped (the set holds all of prod's databases), unless mysql-keep names them; system schemas never"
	dsn, err := mysqlx.OptionFileDSN(r.cfg.MySQLDefaultsFile)
	if err != nil {
		return err
	}
	db, err := openDB(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	have, err := mysqlx.Databases(ctx, db)
	if err != nil {
		return fmt.Errorf("list the standby's databases: %w", err)
	}
	for _, name := range have {
		switch {
		case slices.Contains(d.Databases, name):
		case slices.ContainsFunc(r.cfg.MySQLKeep, func(k string) bool { ok, _ := path.Match(k, name); return ok }):
			p.Kept = append(p.Kept, name)
		default:
			p.Drop = append(p.Drop, name)
		}
	}
	return nil
}

// planTree fills tp before any change: in a dry run what applying tree t
// would change, and in any case whether it fits on its target (checkSpace).
// With files-via-ssh both run over one SSH connection and helper.
func (r *restorer) planTree(ctx context.Context, root string, t manifest.Tree, tp *treePlan, dry bool) error {
	need := t.Bytes // at most every file of the tree
	if !r.cfg.FilesViaSSH {
		if dry {
			st, err := r.applyTree(ctx, root, t, tp.Dir, true)
			if err != nil {
				return err
			}
			tp.fill(st)
			need = st.Bytes // what the plan writes: no second walk when it fits
		}
		return r.checkSpace(ctx, root, t, tp.Dir, need)
	}
	store := objects.New(manifest.Layout{Root: root}.ObjectsDir())
	return r.withTarget(ctx, tp.Dir, func(target filetree.Target) error {
		if dry {
			st, err := r.applyOn(ctx, store, t, target, true)
			if err != nil {
				return err
			}
			tp.fill(st)
			need = st.Bytes
		}
		return r.spaceOn(ctx, store, t, target, need)
	})
}

// applyTree brings dir to tree t of the set, locally or over SFTP.
func (r *restorer) applyTree(ctx context.Context, root string, t manifest.Tree, dir string, dry bool) (filetree.ApplyStats, error) {
	store := objects.New(manifest.Layout{Root: root}.ObjectsDir())
	if dry && !r.cfg.FilesViaSSH {
		if _, err := os.Stat(dir); err != nil {
			// nothing there yet: every entry would be added
			return r.dryRunEmpty(store, t)
		}
	}
	var st filetree.ApplyStats
	err := r.withTarget(ctx, dir, func(target filetree.Target) (err error) {
		st, err = r.applyOn(ctx, store, t, target, dry)
		return err
	})
	return st, err
}

// applyOn applies tree t onto an open target.
func (r *restorer) applyOn(ctx context.Context, store *objects.Store, t manifest.Tree, target filetree.Target, dry bool) (filetree.ApplyStats, error) {
	r.rep.Begin("files: "+t.Name, t.Files, "files")
	defer r.rep.End()
	o := r.applyOptions(store, t, target)
	o.DryRun, o.Progress = dry, r.rep
	return filetree.Apply(ctx, o)
}

// checkSpace refuses, before the first stage, a tree that does not fit on
// its target (filetree.CheckSpace: what the restore would write against
// the file system's free space); need bounds what it writes.
func (r *restorer) checkSpace(ctx context.Context, root string, t manifest.Tree, dir string, need int64) error {
	store := objects.New(manifest.Layout{Root: root}.ObjectsDir())
	if _, err := os.Stat(dir); err != nil && !r.cfg.FilesViaSSH {
		// Not made yet: every file is added, onto the file system of the
		// nearest directory that exists.
		for dir = filepath.Dir(dir); dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
			if _, err := os.Stat(dir); err == nil {
				break
			}
		}
		if err := filetree.CheckSpaceAt(dir, need); err != nil {
			return fmt.Errorf("files: tree %s: %w", t.Name, err)
		}
		return nil
	}
	return r.withTarget(ctx, dir, func(target filetree.Target) error {
		return r.spaceOn(ctx, store, t, target, need)
	})
}

// spaceOn refuses tree t when what it writes (at most need) does not fit on
// an open target's file system.
func (r *restorer) spaceOn(ctx context.Context, store *objects.Store, t manifest.Tree, target filetree.Target, need int64) error {
	if err := filetree.CheckSpace(ctx, r.applyOptions(store, t, target), need); err != nil {
		return fmt.Errorf("files: tree %s: %w", t.Name, err)
	}
	return nil
}

// withTarget opens the target directory of a tree (local, or over SFTP
// with files-via-ssh) for fn.
func (r *restorer) withTarget(ctx context.Context, dir string, fn func(filetree.Target) error) error {
	if !r.cfg.FilesViaSSH {
		lt, err := filetree.NewLocalTarget(dir)
		if err != nil {
			return err
		}
		defer lt.Close()
		return fn(lt)
	}
	c, err := sshx.Dial(ctx, r.cfg.SSH)
	if err != nil {
		return err
	}
	defer c.Close()
	if r.cfg.RemoteTransfer == "none" {
		sc, err := c.SFTP()
		if err != nil {
			return err
		}
		defer sc.Close()
		return fn(filetree.NewSFTPTarget(sc, dir))
	}
	h, err := remote.Start(ctx, c.Client, r.cfg.RemoteTransfer+" serve "+sshx.Quote(dir))
	if err != nil {
		return fmt.Errorf("files-via-ssh: %s on %s: %w; install transfer there (every standby node needs it) or name it with remote-transfer; "+
			"remote-transfer = \"none\" writes over plain SFTP instead, whose server follows symlinks", r.cfg.RemoteTransfer, r.cfg.SSH.Host, err)
	}
	defer h.Close()
	return fn(filetree.NewHelperTarget(h, fmt.Sprintf("ssh:%s:%s", r.cfg.SSH.Host, dir)))
}

// applyOptions are filetree.Apply's options for tree t onto target.
func (r *restorer) applyOptions(store *objects.Store, t manifest.Tree, target filetree.Target) filetree.ApplyOptions {
	return filetree.ApplyOptions{
		Target: target, Objects: storeObjects{store}, Exclude: r.cfg.Exclude, Owner: r.cfg.PreserveOwner,
		Entries: func(fn func(manifest.Entry) error) error {
			return store.Trees().Walk(context.Background(), t, fn)
		},
	}
}

func (r *restorer) dryRunEmpty(store *objects.Store, t manifest.Tree) (filetree.ApplyStats, error) {
	var st filetree.ApplyStats
	err := store.Trees().Walk(context.Background(), t, func(e manifest.Entry) error {
		st.Added++
		st.Bytes += e.Size
		if len(st.Changes) < 1000 {
			st.Changes = append(st.Changes, filetree.Change{Op: filetree.OpAdd, Path: e.Path, Type: e.Type, Bytes: e.Size})
		}
		return nil
	})
	return st, err
}

// storeObjects adapts the object store to filetree.Objects.
type storeObjects struct{ s *objects.Store }

func (o storeObjects) Open(sha string) (io.ReadCloser, error) { return o.s.Open(sha) }

// ObjectsDir lets Apply open objects relative to their fan-out directory
// (filetree.ObjectDir) when it writes a local target.
func (o storeObjects) ObjectsDir() string { return o.s.Root() }
