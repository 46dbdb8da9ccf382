package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// ClusterProfile says how many Elasticsearch and application nodes each
// site of a cluster world has.
type ClusterProfile struct {
	ProdES, ProdApps int
	BCPES, BCPApps   int
}

var (
	// ProfileCluster is a 3-node prod and the reduced 1-node standby of
	// the seed ("instead of 3 nodes, only 1 node").
	ProfileCluster = ClusterProfile{ProdES: 3, ProdApps: 3, BCPES: 1, BCPApps: 1}
	// ProfileCluster3 is a 3-node prod and a 3-node standby.
	ProfileCluster3 = ClusterProfile{ProdES: 3, ProdApps: 3, BCPES: 3, BCPApps: 3}
)

// AppNode is one Squirro application node of a cluster site, standing for
// a host of its own: its own sshd, home directory (its storage lives
// below it), role file and local state directory.
type AppNode struct {
	Name     string // e.g. prod-app-2; the cluster service names it
	SSH      *SSHServer
	Home     string
	Storage  string // Home/storage: the node's /var/lib/squirro/storage
	RoleFile string
	StateDir string // local state (backup's capture caches)
}

// ClusterSite is one site of the cluster world: an Elasticsearch cluster,
// application nodes, a MariaDB primary with a replica, a Redis primary
// with a replica, and shared storage (NFS) every node mounts.
type ClusterSite struct {
	Name string
	Dir  string
	NFS  string // every ES node's path.repo; channels below it
	// Shared is shared storage every node of the site mounts, apart from
	// the channels: the standby's memory (restore's state-dir) lives here.
	Shared         string
	ES             []*ES
	Apps           []*AppNode
	MariaDB        *MariaDBServer // primary (writable)
	MariaDBReplica *MariaDBServer // replicates from MariaDB, read-only
	Redis          *RedisServer   // primary
	RedisReplica   *RedisServer   // replicaof Redis
	// KeyFile logs in to every application node; KnownHosts has every
	// node's host key.
	KeyFile, KnownHosts string
}

// ClusterWorld is the two-site world of the cluster profile.
type ClusterWorld struct {
	Dir     string
	Profile ClusterProfile
	Prod    *ClusterSite
	BCP     *ClusterSite
}

// Sites returns Prod and BCP.
func (w *ClusterWorld) Sites() []*ClusterSite { return []*ClusterSite{w.Prod, w.BCP} }

var sharedCluster struct {
	sync.Mutex
	worlds map[ClusterProfile]*ClusterWorld
	errs   map[ClusterProfile]error
}

// SharedClusterWorld returns the package's cluster world of profile p,
// started on first use and stopped by Main. Its Elasticsearch JVMs run
// with small heaps (BCP_TESTENV_ES_CLUSTER_HEAP, default 256m); tests
// share it, each with its own channel, index and database names.
func SharedClusterWorld(t testing.TB, p ClusterProfile) *ClusterWorld {
	t.Helper()
	sharedCluster.Lock()
	defer sharedCluster.Unlock()
	if sharedCluster.worlds == nil {
		sharedCluster.worlds, sharedCluster.errs = map[ClusterProfile]*ClusterWorld{}, map[ClusterProfile]error{}
	}
	w, started := sharedCluster.worlds[p]
	err := sharedCluster.errs[p]
	if !started && err == nil {
		dir, derr := os.MkdirTemp("", "bcp-cluster-")
		if derr != nil {
			need(t, "cluster world", derr)
		}
		w, err = StartClusterWorld(bg(), dir, p, StartOptions{})
		sharedCluster.worlds[p], sharedCluster.errs[p] = w, err
		onShutdown(func() {
			if w != nil {
				w.Stop()
			}
			_ = os.RemoveAll(dir)
		})
	}
	need(t, "cluster world", err)
	return w
}

// StartClusterWorld starts both sites of profile p in dir, everything at
// once. On error, whatever started is stopped again.
func StartClusterWorld(ctx context.Context, dir string, p ClusterProfile, o StartOptions) (*ClusterWorld, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	w := &ClusterWorld{Dir: dir, Profile: p}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	run := func(what string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", what, err))
				mu.Unlock()
			}
		}()
	}
	for _, spec := range []struct {
		name      string
		es, apps  int
		site      **ClusterSite
		serverIDs [2]int
	}{{"prod", p.ProdES, p.ProdApps, &w.Prod, [2]int{1, 2}}, {"bcp", p.BCPES, p.BCPApps, &w.BCP, [2]int{11, 12}}} {
		s := &ClusterSite{Name: spec.name, Dir: filepath.Join(dir, spec.name)}
		s.NFS, s.Shared = filepath.Join(s.Dir, "nfs"), filepath.Join(s.Dir, "shared")
		*spec.site = s
		for _, d := range []string{s.NFS, s.Shared} {
			if err := os.MkdirAll(d, 0o750); err != nil {
				return nil, err
			}
		}
		s.Apps = make([]*AppNode, spec.apps)
		run(spec.name+" elasticsearch", func() (err error) {
			eo := o
			eo.Name = spec.name
			if spec.es == 1 {
				var e *ES
				e, err = StartElasticsearch(ctx, filepath.Join(s.Dir, "es"), s.NFS, eo)
				s.ES = []*ES{e}
				return err
			}
			s.ES, err = StartESCluster(ctx, filepath.Join(s.Dir, "es"), s.NFS, spec.es, eo)
			return err
		})
		run(spec.name+" mariadb", func() error { return s.startMariaDB(ctx, spec.serverIDs, o) })
		run(spec.name+" redis", func() error { return s.startRedis(ctx, o) })
		for i := range s.Apps {
			run(fmt.Sprintf("%s app node %d", spec.name, i+1), func() error {
				n := &AppNode{Name: fmt.Sprintf("%s-app-%d", spec.name, i+1)}
				n.Home = filepath.Join(s.Dir, n.Name)
				n.Storage, n.RoleFile, n.StateDir = filepath.Join(n.Home, "storage"), filepath.Join(n.Home, "role"), filepath.Join(n.Home, "state")
				for _, d := range []string{n.Storage, n.StateDir} {
					if err := os.MkdirAll(d, 0o750); err != nil {
						return err
					}
				}
				role := "standby\n"
				if spec.name == "prod" {
					role = "active\n"
				}
				if err := os.WriteFile(n.RoleFile, []byte(role), 0o644); err != nil {
					return err
				}
				var err error
				n.SSH, err = StartSSHD(ctx, filepath.Join(s.Dir, "sshd-"+fmt.Sprint(i+1)), o)
				s.Apps[i] = n
				return err
			})
		}
	}
	wg.Wait()
	if len(errs) == 0 {
		for _, s := range w.Sites() {
			if err := s.oneKey(); err != nil {
				errs = append(errs, fmt.Errorf("%s: ssh keys: %w", s.Name, err))
			}
		}
	}
	if len(errs) > 0 {
		w.Stop()
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// startMariaDB starts the primary (binary log on) and a read-only replica
// that replicates from it by GTID.
func (s *ClusterSite) startMariaDB(ctx context.Context, ids [2]int, o StartOptions) error {
	var perr, rerr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		po := o
		po.ExtraArgs = []string{fmt.Sprintf("--server-id=%d", ids[0]), "--log-bin=" + filepath.Join(s.Dir, "mariadb", "binlog"), "--binlog-format=ROW"}
		s.MariaDB, perr = StartMariaDB(ctx, filepath.Join(s.Dir, "mariadb"), po)
	}()
	go func() {
		defer wg.Done()
		ro := o
		ro.ExtraArgs = []string{fmt.Sprintf("--server-id=%d", ids[1]), "--read-only=1", "--log-bin=" + filepath.Join(s.Dir, "mariadb-replica", "binlog"), "--log-slave-updates=1"}
		s.MariaDBReplica, rerr = StartMariaDB(ctx, filepath.Join(s.Dir, "mariadb-replica"), ro)
	}()
	wg.Wait()
	if err := errors.Join(perr, rerr); err != nil {
		return err
	}
	db, err := sql.Open("mysql", s.MariaDBReplica.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	p := s.MariaDB
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		p.Host, p.Port, p.User, p.Password)
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("replica: change master: %w", err)
	}
	if _, err := db.ExecContext(ctx, "START SLAVE"); err != nil {
		return fmt.Errorf("replica: start slave: %w", err)
	}
	return nil
}

func (s *ClusterSite) startRedis(ctx context.Context, o StartOptions) error {
	var err error
	if s.Redis, err = StartRedis(ctx, filepath.Join(s.Dir, "redis"), o); err != nil {
		return err
	}
	ro := o
	ro.ExtraArgs = []string{"--replicaof", "127.0.0.1", fmt.Sprint(s.Redis.Port)}
	s.RedisReplica, err = StartRedis(ctx, filepath.Join(s.Dir, "redis-replica"), ro)
	return err
}

// oneKey makes the first node's client key log in to every node of the
// site and writes one known_hosts with every node's host key, as an
// operator's deployment does.
func (s *ClusterSite) oneKey() error {
	if len(s.Apps) == 0 {
		return nil
	}
	s.KeyFile = s.Apps[0].SSH.KeyFile
	pub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		return err
	}
	var kh strings.Builder
	for _, n := range s.Apps {
		ak := filepath.Join(n.SSH.Dir, "authorized_keys")
		f, err := os.OpenFile(ak, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(pub)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(&kh, "[%s]:%d %s", n.SSH.Host, n.SSH.Port, ssh.MarshalAuthorizedKey(n.SSH.HostKey))
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	return os.WriteFile(s.KnownHosts, []byte(kh.String()), 0o600)
}

// WaitReplicas waits until the site's MariaDB replica has applied
// everything the primary wrote and the Redis replica is in sync, so a
// test can compare them.
func (s *ClusterSite) WaitReplicas(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pdb, err := sql.Open("mysql", s.MariaDB.DSN(""))
	if err != nil {
		return err
	}
	defer pdb.Close()
	rdb, err := sql.Open("mysql", s.MariaDBReplica.DSN(""))
	if err != nil {
		return err
	}
	defer rdb.Close()
	var pos string
	if err := pdb.QueryRowContext(ctx, "SELECT @@global.gtid_binlog_pos").Scan(&pos); err != nil {
		return err
	}
	var r sql.NullInt64
	if err := rdb.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 60)", pos).Scan(&r); err != nil {
		return fmt.Errorf("mariadb replica: wait for %s: %w", pos, err)
	}
	if !r.Valid || r.Int64 != 0 {
		return fmt.Errorf("mariadb replica did not reach the primary's position %s within 60 s", pos)
	}
	return nil
}

// Stop stops every service of the site.
func (s *ClusterSite) Stop() {
	var stops []func()
	for _, e := range s.ES {
		if e != nil {
			stops = append(stops, e.Stop)
		}
	}
	for _, n := range s.Apps {
		if n != nil && n.SSH != nil {
			stops = append(stops, n.SSH.Stop)
		}
	}
	for _, m := range []*MariaDBServer{s.MariaDB, s.MariaDBReplica} {
		if m != nil {
			stops = append(stops, m.Stop)
		}
	}
	for _, r := range []*RedisServer{s.Redis, s.RedisReplica} {
		if r != nil {
			stops = append(stops, r.Stop)
		}
	}
	var wg sync.WaitGroup
	for _, f := range stops {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	wg.Wait()
}

// Stop stops both sites.
func (w *ClusterWorld) Stop() {
	var wg sync.WaitGroup
	for _, s := range w.Sites() {
		if s == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.Stop() }()
	}
	wg.Wait()
}

// World is a two-site World view of the cluster world, for fixtures
// written against World: each site's first Elasticsearch node, primary
// MariaDB and Redis, and first application node's sshd.
func (w *ClusterWorld) World() *World {
	view := func(s *ClusterSite) *Site {
		return &Site{Name: s.Name, Dir: s.Dir, NFS: s.NFS, ES: s.ES[0], MariaDB: s.MariaDB, Redis: s.Redis, SSH: s.Apps[0].SSH}
	}
	return &World{Dir: w.Dir, Prod: view(w.Prod), BCP: view(w.BCP)}
}

// ClusterSiteInfo is what world.json says of a cluster site beyond the
// first node of everything (SiteInfo).
type ClusterSiteInfo struct {
	ESNodes        []string      `json:"es_nodes"`
	Apps           []AppNodeInfo `json:"apps"`
	KeyFile        string        `json:"key_file"`
	KnownHosts     string        `json:"known_hosts"`
	MariaDBReplica string        `json:"mariadb_replica"`
	RedisReplica   string        `json:"redis_replica"`
	Shared         string        `json:"shared"`
}

// AppNodeInfo is one application node in world.json.
type AppNodeInfo struct {
	Name     string `json:"name"`
	SSHPort  int    `json:"ssh_port"`
	Home     string `json:"home"`
	RoleFile string `json:"role_file"`
	StateDir string `json:"state_dir"`
}

// Info describes the cluster world (make env-up -profile cluster).
func (w *ClusterWorld) Info() (WorldInfo, error) {
	wi, err := w.World().Info()
	if err != nil {
		return wi, err
	}
	for _, s := range w.Sites() {
		c := &ClusterSiteInfo{KeyFile: s.KeyFile, KnownHosts: s.KnownHosts, Shared: s.Shared,
			MariaDBReplica: s.MariaDBReplica.Addr(), RedisReplica: s.RedisReplica.Addr}
		for _, e := range s.ES {
			c.ESNodes = append(c.ESNodes, e.URL)
		}
		for _, n := range s.Apps {
			c.Apps = append(c.Apps, AppNodeInfo{Name: n.Name, SSHPort: n.SSH.Port, Home: n.Home, RoleFile: n.RoleFile, StateDir: n.StateDir})
		}
		si := wi.Sites[s.Name]
		si.Cluster = c
		wi.Sites[s.Name] = si
	}
	return wi, nil
}
