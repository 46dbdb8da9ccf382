package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/redisx"
	"github.com/squirro-bcp/bcp/manifest"
)

// ErrPreflight: a check before the restore's first change failed, so
// nothing was changed (exit 3). The *PreflightError lists every failed
// check, not only the first.
var ErrPreflight = errors.New("restore preflight failed, nothing was changed")

// PreflightError lists the failed checks.
type PreflightError struct{ Failed []string }

func (e *PreflightError) Error() string {
	return fmt.Sprintf("%v: %d check(s) failed:\n  - %s", ErrPreflight, len(e.Failed), strings.Join(e.Failed, "\n  - "))
}

func (e *PreflightError) Is(target error) bool { return target == ErrPreflight }

// preflight checks what the stages need of the standby before any of them
// changes anything: Elasticsearch's version can read the set's snapshot
// and every node can read the repository (repository verify), MySQL and
// Redis answer. It warns about an even number of master-eligible
// Elasticsearch nodes or standby application nodes (restart-nodes), which
// cannot break a tied vote. Free space for the trees is checked in
// prepare (filetree.CheckSpace).
func (r *restorer) preflight(ctx context.Context, root string, m *manifest.Manifest) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var failed []string
	fail := func(format string, args ...any) { failed = append(failed, fmt.Sprintf(format, args...)) }
	if m.Elasticsearch != nil && r.cfg.ESURL != "" {
		r.preflightES(ctx, root, m, fail)
	}
	if m.MySQL != nil && r.cfg.MySQLDefaultsFile != "" {
		if err := pingMySQL(ctx, r.cfg.MySQLDefaultsFile); err != nil {
			fail("mysql (%s): %v: check the server is up and the option file's host, port, user and password", r.cfg.MySQLDefaultsFile, err)
		}
	}
	if r.cfg.RedisAddr != "" {
		if err := redisx.Ping(ctx, redisx.Options{Addr: r.cfg.RedisAddr, PasswordFile: r.cfg.RedisPasswordFile}); err != nil {
			fail("%v", err)
		}
	}
	if r.cfg.restarts() {
		n := len(slices.Compact(slices.Sorted(slices.Values(r.cfg.RestartNodes))))
		if w := leader.EvenWarning("standby application nodes (restart-nodes)", n); w != "" {
			r.log.Warn(w)
		}
	}
	r.warnLocalState()
	if len(failed) > 0 {
		return &PreflightError{Failed: failed}
	}
	return nil
}

// warnLocalState warns when a standby of several nodes (a leader mode is
// set) keeps its memory on a local file system: a node that becomes
// leader would not know what is live and would accept an older set.
func (r *restorer) warnLocalState() {
	mode := r.cfg.Leader.Mode
	if mode == "" && r.cfg.Leader.URL != "" {
		mode = leader.ModeHTTP
	}
	if mode == "" || mode == leader.ModeNone || r.cfg.StateDir == "" {
		return
	}
	if shared, fstype, ok := sharedFS(r.cfg.StateDir); ok && !shared {
		r.log.Warn(fmt.Sprintf("state-dir %s is on a local file system (type %#x) while the standby has several nodes (leader-mode %s): "+
			"a node that becomes leader would not know what is live; put state-dir on storage every standby node mounts (doc/architecture.md)",
			r.cfg.StateDir, fstype, mode))
	}
}

func (r *restorer) preflightES(ctx context.Context, root string, m *manifest.Manifest, fail func(string, ...any)) {
	c, err := r.esAPI()
	if err != nil {
		fail("elasticsearch: %v", err)
		return
	}
	info, err := c.Info(ctx)
	if err != nil {
		fail("%v", r.esHung(err))
		return
	}
	if src := m.Elasticsearch.Source; src != nil {
		if err := es.CanRestore(src.Version, info.Version); err != nil {
			fail("elasticsearch at %s: %v", r.cfg.ESURL, err)
		}
		if src.Nodes > info.Nodes {
			r.log.Info("restoring onto a smaller cluster: replicas that cannot be assigned leave indices yellow unless es-replicas lowers them",
				"source_nodes", src.Nodes, "standby_nodes", info.Nodes, "es_replicas", len(r.cfg.ESReplicas))
		}
	}
	if w := leader.EvenWarning("master-eligible Elasticsearch nodes on the standby", info.MasterEligible); w != "" {
		r.log.Warn(w)
	}
	o := r.esOptions(root, m, true)
	running, err := es.RestoresInProgress(ctx, c.Client)
	if err != nil {
		fail("elasticsearch at %s: %v", r.cfg.ESURL, r.esHung(err))
		return
	}
	// A restore left running by a stopped run holds the repository: it
	// cannot be registered again (stage 6 cancels that restore first), and
	// the nodes are reading it, so there is nothing to verify.
	if slices.ContainsFunc(running, func(ip es.RestoreInProgress) bool { return ip.Repository == o.Repository }) {
		return
	}
	if err := es.RegisterReadonlyRepository(ctx, c.Client, o.Repository, o.Location); err != nil {
		fail("elasticsearch at %s: repository %s at %s: %v: the location must be below path.repo of every node", r.cfg.ESURL, o.Repository, o.Location, err)
		return
	}
	nodes, err := c.VerifyRepository(ctx, o.Repository)
	switch {
	case err != nil:
		fail("elasticsearch at %s: not every node can read repository %s at %s: %v: mount the channel on every Elasticsearch node at the same path (es-repository-location) and list it in path.repo",
			r.cfg.ESURL, o.Repository, o.Location, err)
	case len(nodes) < info.Nodes:
		fail("elasticsearch at %s: repository %s verified by %d of %d nodes (%s)", r.cfg.ESURL, o.Repository, len(nodes), info.Nodes, strings.Join(nodes, ", "))
	}
}

func pingMySQL(ctx context.Context, defaults string) error {
	dsn, err := mysqlx.OptionFileDSN(defaults)
	if err != nil {
		return err
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}
