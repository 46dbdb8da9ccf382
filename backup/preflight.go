package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// ErrPreflight: one or more preflight checks failed; nothing was changed
// (exit 3). The *PreflightError lists every failed check.
var ErrPreflight = errors.New("preflight failed")

// Check is the result of one preflight check.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Warn   bool   `json:"warning,omitempty"` // passed, but someone should look
	Detail string `json:"detail,omitempty"`  // what was found
	Fix    string `json:"fix,omitempty"`     // what to do when it failed
	Err    error  `json:"-"`
}

// PreflightError lists every failed check. errors.Is matches ErrPreflight
// and each check's own error (so a wrong direction maps to exit 6).
type PreflightError struct{ Failed []Check }

func (e *PreflightError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "preflight: %d check(s) failed, nothing was changed:", len(e.Failed))
	for _, c := range e.Failed {
		fmt.Fprintf(&b, "\n  - %s: %v", c.Name, c.Err)
		if c.Fix != "" {
			fmt.Fprintf(&b, "\n    what to do: %s", c.Fix)
		}
	}
	return b.String()
}

func (e *PreflightError) Is(target error) bool { return target == ErrPreflight }

func (e *PreflightError) Unwrap() []error {
	var errs []error
	for _, c := range e.Failed {
		errs = append(errs, c.Err)
	}
	return errs
}

// preflight is what stage 1 found.
type preflight struct {
	Leader     bool
	LeaderNote string
	Channel    manifest.Channel
	Checks     []Check
	Prev       *prevSet // newest signed set, nil if none
	Sets       []manifest.SetInfo
	Estimate   int64 // bytes the next set is expected to add
	Free       int64
	Signer     ssh.Signer
	ES         *es.Client
	ESInfo     *es.ClusterInfo // the source cluster's version and size, recorded in the set
	Repo       string
	RepoExists bool
	Databases  []string
	Epoch      uint64 // the fencing epoch this site's sets carry
}

func (p *preflight) add(c Check) *Check {
	c.OK = c.Err == nil
	p.Checks = append(p.Checks, c)
	return &p.Checks[len(p.Checks)-1]
}

func (p *preflight) failed() []Check {
	var f []Check
	for _, c := range p.Checks {
		if !c.OK {
			f = append(f, c)
		}
	}
	return f
}

// prevSet is the newest signed set of the channel.
type prevSet struct {
	ID string
	M  *manifest.Manifest
}

// runPreflight runs stage 1. It changes nothing. It returns the findings
// and, if any check failed, a *PreflightError. A non-leader node returns
// p.Leader == false and no error after the role and leader checks.
func runPreflight(ctx context.Context, cfg *config) (*preflight, error) {
	p := &preflight{}
	// Role: a standby site never backs up.
	if err := site.Require(cfg.RoleFile, site.Active, "backup"); err != nil {
		c := p.add(Check{Name: "site role", Err: err, Fix: "backup runs only on the active site; on failover run `restore promote` on the new active site"})
		if errors.Is(err, site.ErrNoRole) || errors.Is(err, site.ErrBadRole) {
			c.Fix = fmt.Sprintf("write \"active\" into %s on the active site (\"standby\" on the other)", cfg.RoleFile)
		}
	} else {
		p.add(Check{Name: "site role", Detail: "active"})
	}

	lr, err := leader.Find(ctx, cfg.Leader)
	if err != nil {
		p.add(Check{Name: "cluster leader", Err: err, Fix: "check the leader-mode settings and that the leader source answers"})
	} else {
		p.Leader, p.LeaderNote = lr.Leader, lr.Note
		if !lr.Leader {
			if f := p.failed(); len(f) > 0 {
				return p, &PreflightError{Failed: f}
			}
			return p, nil
		}
		p.add(Check{Name: "cluster leader", Detail: lr.Note})
	}

	if n := len(cfg.ClusterNodes); n > 0 {
		c := Check{Name: "application nodes", Detail: fmt.Sprintf("%d node(s): %s", n, strings.Join(cfg.ClusterNodes, ", "))}
		if w := leader.EvenWarning("application nodes (cluster-nodes)", n); w != "" {
			c.Warn, c.Detail = true, w
		}
		p.add(c)
	}
	checkChannel(ctx, cfg, p)
	checkEpoch(cfg, p)
	if cfg.has(stageES) {
		checkES(ctx, cfg, p)
	}
	if cfg.has(stageMySQL) {
		checkMySQL(ctx, cfg, p)
	}
	if cfg.has(stageFiles) {
		checkFiles(ctx, cfg, p)
	}
	if signer, err := loadSigner(cfg); err != nil {
		p.add(Check{Name: "signing key", Err: err, Fix: "set sign-key to the private key file, or load the key into ssh-agent"})
	} else {
		p.Signer = signer
		p.add(Check{Name: "signing key", Detail: ssh.FingerprintSHA256(signer.PublicKey())})
	}
	if f := p.failed(); len(f) > 0 {
		return p, &PreflightError{Failed: f}
	}
	return p, nil
}

// checkEpoch finds the epoch this site's sets carry, and fails when another
// site was promoted after it (manifest/DESIGN.md, "Fencing"): the channel's
// epoch records and, when configured, the reverse channel's (which the
// other site's mover fills) name the active site.
func checkEpoch(cfg *config, p *preflight) {
	if p.Channel.Name == "" {
		return // no channel: already a failed check
	}
	var chans []manifest.ChannelEpoch
	var as *sshsig.AllowedSigners
	for _, root := range []string{cfg.Channel, cfg.ReverseChannel} {
		if root == "" {
			continue
		}
		ch, err := manifest.ReadChannel(root)
		if err != nil {
			p.add(Check{Name: "fencing epoch", Err: fmt.Errorf("channel %s: %w", root, err),
				Fix: "create both channels on day one (backup init), or fix reverse-channel"})
			return
		}
		if ents, _ := os.ReadDir(manifest.Layout{Root: root}.EpochsDir()); len(ents) > 0 && as == nil {
			if cfg.AllowedSigners == "" {
				p.add(Check{Name: "fencing epoch", Err: fmt.Errorf("channel %s holds epoch records but allowed-signers is not set, so backup cannot tell whether another site was promoted", root),
					Fix: "set allowed-signers (the file trusting both sites' keys for epoch@squirro-bcp) in backup.toml"})
				return
			}
			if as, err = sshsig.LoadAllowedSigners(cfg.AllowedSigners); err != nil {
				p.add(Check{Name: "fencing epoch", Err: err, Fix: "fix allowed-signers"})
				return
			}
		}
		ce, err := manifest.ReadEpoch(root, ch, as, time.Now())
		if err != nil {
			p.add(Check{Name: "fencing epoch", Err: err, Fix: "check the channel is mounted and readable"})
			return
		}
		chans = append(chans, ce)
	}
	epoch, err := site.ProducerEpoch(cfg.Site, chans...)
	if err != nil {
		p.add(Check{Name: "fencing epoch", Err: err, Fix: "this site was replaced as the active one: run `restore demote` here and disable this backup (doc/runbook.md)"})
		return
	}
	p.Epoch = epoch
	p.add(Check{Name: "fencing epoch", Detail: fmt.Sprintf("epoch %d", epoch)})
}

func loadSigner(cfg *config) (ssh.Signer, error) {
	if cfg.SignKey == "" {
		return sshsig.AgentSigner(cfg.SignAgent)
	}
	return sshsig.LoadSigner(cfg.SignKey)
}

func checkChannel(ctx context.Context, cfg *config, p *preflight) {
	root := cfg.Channel
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		if err == nil {
			err = fmt.Errorf("%s is not a directory", root)
		}
		p.add(Check{Name: "channel exists", Err: fmt.Errorf("channel %s: %w", root, err),
			Fix: "mount the NFS share, or create the channel once with `backup init`"})
		return
	}
	ch, err := manifest.ReadChannel(root)
	if err != nil {
		p.add(Check{Name: "channel identity", Err: fmt.Errorf("channel %s: %w", root, err),
			Fix: "create the channel identity once with `backup init --target <standby site>`"})
		return
	}
	p.Channel = ch
	if ch.Source != cfg.Site {
		p.add(Check{Name: "channel direction", Err: fmt.Errorf("%w: channel %s is %s; its source is %s but this site is %s: backup writes only into the channel whose source is this site",
			manifest.ErrNotForUs, root, ch, ch.Source, cfg.Site), Fix: "point --channel at this site's outgoing channel (e.g. prod-to-bcp on prod)"})
	} else {
		p.add(Check{Name: "channel direction", Detail: ch.String()})
	}
	// Writable: create and remove a temporary file (ignored by every reader).
	f, err := os.CreateTemp(root, manifest.TempPrefix+"preflight-*")
	if err == nil {
		_, err = f.WriteString("preflight\n")
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		_ = os.Remove(f.Name())
	}
	if err != nil {
		p.add(Check{Name: "channel writable", Err: fmt.Errorf("channel %s: cannot write: %w", root, err),
			Fix: "mount the share read-write and let this user write into it"})
	} else {
		p.add(Check{Name: "channel writable"})
	}
	sets, err := manifest.List(root)
	if err != nil {
		p.add(Check{Name: "channel sets", Err: err})
		return
	}
	p.Sets = sets
	p.Prev = newestSigned(root, sets)
	// Room: what the last set added, plus the margin, plus min-free.
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil {
		p.add(Check{Name: "channel space", Err: fmt.Errorf("statfs %s: %w", root, err)})
		return
	}
	p.Free = int64(st.Bavail) * int64(st.Bsize)
	if p.Prev != nil {
		p.Estimate = estimateAdded(cfg, p.Prev.M)
	}
	need := p.Estimate*int64(100+cfg.SpaceMargin)/100 + cfg.MinFree
	if p.Free < need {
		p.add(Check{Name: "channel space", Err: fmt.Errorf("channel %s has %s free; the next set needs about %s (last run's growth %s + %d%% + min-free %s)",
			root, ui.Bytes(p.Free), ui.Bytes(need), ui.Bytes(p.Estimate), cfg.SpaceMargin, ui.Bytes(cfg.MinFree)),
			Fix: "free space on the share (backup prune) or grow it"})
	} else {
		p.add(Check{Name: "channel space", Detail: fmt.Sprintf("%s free, about %s needed", ui.Bytes(p.Free), ui.Bytes(need))})
	}
}

// newestSigned returns the newest set with a manifest and signature whose
// manifest decodes (backup trusts its own channel for incremental hints
// only; a bad hint only costs re-reading).
func newestSigned(root string, sets []manifest.SetInfo) *prevSet {
	l := manifest.Layout{Root: root}
	for i := len(sets) - 1; i >= 0; i-- {
		s := sets[i]
		if !s.HasManifest || !s.HasSignature {
			continue
		}
		data, err := os.ReadFile(l.ManifestPath(s.ID))
		if err != nil {
			continue
		}
		m, err := manifest.Decode(data)
		if err != nil {
			continue
		}
		return &prevSet{ID: s.ID, M: m}
	}
	return nil
}

// estimateAdded guesses the bytes the next set adds: the last dump (always
// new) plus what the last run stored anew (recorded in the state dir).
func estimateAdded(cfg *config, m *manifest.Manifest) int64 {
	var n int64
	if m.MySQL != nil {
		n += m.MySQL.Object.Size
	}
	var st runState
	if b, err := os.ReadFile(filepath.Join(cfg.StateDir, stateFile(m.Channel.Name))); err == nil && json.Unmarshal(b, &st) == nil {
		n += st.AddedBytes
	}
	return n
}

func checkES(ctx context.Context, cfg *config, p *preflight) {
	c, err := es.NewClient(cfg.ES)
	if err != nil {
		p.add(Check{Name: "elasticsearch", Err: err, Fix: "check es-url and the credentials"})
		return
	}
	p.ES = c
	h, err := c.ClusterHealth(ctx)
	if err != nil {
		p.add(Check{Name: "elasticsearch health", Err: err, Fix: "start Elasticsearch or fix es-url / credentials"})
		return
	}
	un, uerr := c.UnassignedPrimaries(ctx, cfg.ESIndices)
	switch {
	case uerr != nil:
		p.add(Check{Name: "elasticsearch health", Err: uerr})
	case len(un) > 0:
		var names []string
		for _, u := range un {
			names = append(names, fmt.Sprintf("%s[%s] (%s)", u.Index, u.Shard, u.Reason))
		}
		p.add(Check{Name: "elasticsearch health", Err: fmt.Errorf("elasticsearch at %s: cluster %s is %s: unassigned primary shards %s; a snapshot would be PARTIAL",
			c.Addr, h.ClusterName, strings.ToUpper(h.Status), strings.Join(names, ", ")), Fix: "fix the allocation (GET _cluster/allocation/explain) or leave those indices out of es-indices"})
	case h.Status == "red":
		p.add(Check{Name: "elasticsearch health", Warn: true, Detail: "red, but no index backed up here lacks a primary"})
	default:
		p.add(Check{Name: "elasticsearch health", Detail: fmt.Sprintf("%s, %d node(s)", h.Status, h.NumberOfNodes)})
	}
	if name, host, err := c.Master(ctx); err != nil {
		p.add(Check{Name: "elasticsearch master", Err: err, Fix: "check the cluster's discovery settings"})
	} else {
		p.add(Check{Name: "elasticsearch master", Detail: name + " on " + host})
	}
	if info, err := c.Info(ctx); err == nil {
		p.ESInfo = &info
	}
	if n, err := c.MasterEligible(ctx); err == nil {
		c := Check{Name: "elasticsearch quorum", Detail: fmt.Sprintf("%d master-eligible node(s)", n)}
		if w := leader.EvenWarning("master-eligible Elasticsearch nodes", n); w != "" {
			c.Warn, c.Detail = true, w
		}
		p.add(c)
	}
	name := p.Channel.Name
	if name == "" {
		name = filepath.Base(cfg.Channel)
	}
	p.Repo = cfg.repoName(name)
	loc := cfg.ESRepoLocation
	if repos, err := c.PathRepo(ctx); err == nil {
		for node, roots := range repos {
			if !under(loc, roots) {
				p.add(Check{Name: "elasticsearch path.repo", Err: fmt.Errorf("%w: %s is not below path.repo %v of node %s", es.ErrOutsidePathRepo, loc, roots, node),
					Fix: "add the channel's parent directory to path.repo in elasticsearch.yml on every node and restart them"})
				break
			}
		}
	}
	r, err := c.GetRepository(ctx, p.Repo)
	switch {
	case errors.Is(err, es.ErrNotFound):
		p.add(Check{Name: "elasticsearch repository", Detail: p.Repo + " not registered yet: backup run registers it at " + loc})
	case err != nil:
		p.add(Check{Name: "elasticsearch repository", Err: err})
	case r.Location != loc || r.ReadOnly:
		p.add(Check{Name: "elasticsearch repository", Err: fmt.Errorf("repository %s is registered at %s (readonly %v), want %s writable", p.Repo, r.Location, r.ReadOnly, loc),
			Fix: "delete that registration (DELETE _snapshot/" + p.Repo + ") or set es-repository to another name"})
	default:
		p.RepoExists = true
		p.add(Check{Name: "elasticsearch repository", Detail: p.Repo + " at " + r.Location})
	}
}

// esSource is what the set records of the source cluster (nil: unknown).
func esSource(p *preflight) *manifest.ESSource {
	if p.ESInfo == nil || p.ESInfo.Version == "" || p.ESInfo.Nodes < 1 {
		return nil
	}
	return &manifest.ESSource{Version: p.ESInfo.Version, Nodes: p.ESInfo.Nodes}
}

func under(p string, roots []string) bool {
	for _, r := range roots {
		rel, err := filepath.Rel(r, p)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

func checkMySQL(ctx context.Context, cfg *config, p *preflight) {
	o := cfg.mysqlOptions()
	if o.SSH != nil {
		var out strings.Builder
		err := o.RunClient(ctx, "mysql", []string{"--batch", "--skip-column-names", "-e", "SELECT schema_name FROM information_schema.schemata"}, nil, &out)
		if err != nil {
			p.add(Check{Name: "mysql", Err: fmt.Errorf("%w: %v", mysqlx.ErrConnect, err), Fix: "check the MySQL credentials and SSH access to the leader"})
			return
		}
		var dbs []string
		for _, l := range strings.Fields(out.String()) {
			if !mysqlx.IsSystemSchema(l) {
				dbs = append(dbs, l)
			}
		}
		p.databases(cfg, dbs)
		return
	}
	db, err := mysqlx.Open(ctx, o)
	if err != nil {
		p.add(Check{Name: "mysql", Err: err, Fix: "check mysql-host/port and the user and password file"})
		return
	}
	defer db.Close()
	dbs, err := mysqlx.Databases(ctx, db)
	if err != nil {
		p.add(Check{Name: "mysql", Err: err})
		return
	}
	p.databases(cfg, dbs)
}

func (p *preflight) databases(cfg *config, have []string) {
	if len(cfg.MySQLDatabases) == 0 {
		p.Databases = have
		p.add(Check{Name: "mysql", Detail: fmt.Sprintf("databases %s", strings.Join(have, ", "))})
		return
	}
	set := map[string]bool{}
	for _, d := range have {
		set[d] = true
	}
	var missing []string
	for _, d := range cfg.MySQLDatabases {
		if !set[d] {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		p.add(Check{Name: "mysql", Err: fmt.Errorf("configured databases %s do not exist", strings.Join(missing, ", ")), Fix: "fix mysql-databases"})
		return
	}
	p.Databases = cfg.MySQLDatabases
	p.add(Check{Name: "mysql", Detail: fmt.Sprintf("databases %s", strings.Join(p.Databases, ", "))})
}

func checkFiles(ctx context.Context, cfg *config, p *preflight) {
	roots := fileRoots(cfg)
	if len(roots) == 0 {
		return
	}
	if cfg.FilesViaSSH {
		c, err := sshx.Dial(ctx, cfg.SSH)
		if err != nil {
			p.add(Check{Name: "files", Err: err, Fix: "check ssh-host, ssh-key and ssh-known-hosts"})
			return
		}
		defer c.Close()
		sc, err := c.SFTP()
		if err != nil {
			p.add(Check{Name: "files", Err: err})
			return
		}
		defer sc.Close()
		for _, r := range roots {
			if fi, err := sc.Stat(r.Path); err != nil || !fi.IsDir() {
				p.add(Check{Name: "files " + r.Name, Err: fmt.Errorf("%s on %s: not a readable directory (%v)", r.Path, cfg.SSH.Addr(), err), Fix: "fix " + r.Name + "-root"})
			} else {
				p.add(Check{Name: "files " + r.Name, Detail: "sftp:" + r.Path})
			}
		}
		return
	}
	for _, r := range roots {
		if fi, err := os.Stat(r.Path); err != nil || !fi.IsDir() {
			p.add(Check{Name: "files " + r.Name, Err: fmt.Errorf("%s: not a readable directory (%v)", r.Path, err), Fix: "fix " + r.Name + "-root"})
		} else {
			p.add(Check{Name: "files " + r.Name, Detail: r.Path})
		}
	}
}

// fileRoot is one configured tree.
type fileRoot struct {
	Name, Path       string
	Include, Exclude []string
}

func fileRoots(cfg *config) []fileRoot {
	var r []fileRoot
	if cfg.StorageRoot != "" {
		r = append(r, fileRoot{Name: "storage", Path: cfg.StorageRoot, Exclude: cfg.StorageExclude})
	}
	if cfg.ConfigRoot != "" {
		r = append(r, fileRoot{Name: "config", Path: cfg.ConfigRoot, Include: cfg.ConfigInclude, Exclude: cfg.ConfigExclude})
	}
	return r
}
