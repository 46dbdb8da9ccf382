package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// Site is one data centre of the two-site world: its own MariaDB, Redis,
// Elasticsearch and sshd, and a plain directory standing in for its NFS
// mount. The site's Elasticsearch has path.repo = NFS.
type Site struct {
	Name    string // "prod" or "bcp"
	Dir     string // everything of the site lives below it
	NFS     string // the site's "NFS mount"; inside its ES's path.repo
	ES      *ES
	MariaDB *MariaDBServer
	Redis   *RedisServer
	SSH     *SSHServer
}

// World is the two-site world: Prod (active) and BCP (standby).
type World struct {
	Dir  string
	Prod *Site
	BCP  *Site
}

// Sites returns Prod and BCP.
func (w *World) Sites() []*Site { return []*Site{w.Prod, w.BCP} }

var sharedWorld struct {
	once sync.Once
	w    *World
	err  error
}

// SharedWorld returns the package's two-site world, started on first use
// and stopped by Main. Tests share it, so each test uses its own channel
// directory below Site.NFS (see ChannelDir) and its own index and database
// names.
func SharedWorld(t testing.TB) *World {
	t.Helper()
	sharedWorld.once.Do(func() {
		dir, err := os.MkdirTemp("", "bcp-world-")
		if err != nil {
			sharedWorld.err = err
			return
		}
		sharedWorld.w, sharedWorld.err = StartWorld(bg(), dir, StartOptions{})
		onShutdown(func() {
			if sharedWorld.w != nil {
				sharedWorld.w.Stop()
			}
			_ = os.RemoveAll(dir)
		})
	})
	need(t, "two-site world", sharedWorld.err)
	return sharedWorld.w
}

// NewWorld starts a fresh two-site world for one test, stopped when the test
// ends. It costs two Elasticsearch start-ups: prefer SharedWorld.
func NewWorld(t testing.TB) *World {
	t.Helper()
	w, err := StartWorld(bg(), tempDir(t, "world"), StartOptions{})
	need(t, "two-site world", err)
	t.Cleanup(w.Stop)
	return w
}

// ChannelDir makes and returns a directory for this test's channel below
// the site's NFS directory, named after the test.
func ChannelDir(t testing.TB, s *Site) string {
	t.Helper()
	name := filepath.Join(s.NFS, sanitize(t.Name()))
	if err := os.MkdirAll(name, 0o750); err != nil {
		t.Fatal(err)
	}
	return name
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		ok := c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

// StartWorld starts both sites in dir (dir/prod, dir/bcp), all services at
// once. On error, whatever started is stopped again.
func StartWorld(ctx context.Context, dir string, o StartOptions) (*World, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	w := &World{Dir: dir}
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range []string{"prod", "bcp"} {
		s := &Site{Name: name, Dir: filepath.Join(dir, name), NFS: filepath.Join(dir, name, "nfs")}
		if name == "prod" {
			w.Prod = s
		} else {
			w.BCP = s
		}
		if err := os.MkdirAll(s.NFS, 0o750); err != nil {
			return nil, err
		}
		run := func(what string, f func() error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("site %s: %s: %w", name, what, err))
					mu.Unlock()
				}
			}()
		}
		run("elasticsearch", func() (err error) {
			eo := o
			eo.Name = name
			s.ES, err = StartElasticsearch(ctx, filepath.Join(s.Dir, "es"), s.NFS, eo)
			return err
		})
		run("mariadb", func() (err error) {
			s.MariaDB, err = StartMariaDB(ctx, filepath.Join(s.Dir, "mariadb"), o)
			return err
		})
		run("redis", func() (err error) {
			s.Redis, err = StartRedis(ctx, filepath.Join(s.Dir, "redis"), o)
			return err
		})
		run("sshd", func() (err error) {
			s.SSH, err = StartSSHD(ctx, filepath.Join(s.Dir, "sshd"), o)
			return err
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		w.Stop()
		return nil, errors.Join(errs...)
	}
	return w, nil
}

// Stop stops every service of both sites.
func (w *World) Stop() {
	var wg sync.WaitGroup
	for _, s := range w.Sites() {
		for _, stop := range []func(){
			func() {
				if s.ES != nil {
					s.ES.Stop()
				}
			},
			func() {
				if s.MariaDB != nil {
					s.MariaDB.Stop()
				}
			},
			func() {
				if s.Redis != nil {
					s.Redis.Stop()
				}
			},
			func() {
				if s.SSH != nil {
					s.SSH.Stop()
				}
			},
		} {
			wg.Add(1)
			go func() { defer wg.Done(); stop() }()
		}
	}
	wg.Wait()
}

// SiteInfo is what a person or script needs to reach one site's services.
type SiteInfo struct {
	Name string `json:"name"`
	Dir  string `json:"dir"`
	NFS  string `json:"nfs"`
	ES   struct {
		URL      string `json:"url"`
		PathRepo string `json:"path_repo"`
		Log      string `json:"log"`
	} `json:"elasticsearch"`
	MariaDB struct {
		Host         string `json:"host"`
		Port         int    `json:"port"`
		Socket       string `json:"socket"`
		User         string `json:"user"`
		PasswordFile string `json:"password_file"`
		DefaultsFile string `json:"defaults_file"`
		DSN          string `json:"dsn"`
		Log          string `json:"log"`
	} `json:"mariadb"`
	Redis struct {
		Addr string `json:"addr"`
		Log  string `json:"log"`
	} `json:"redis"`
	SSH struct {
		Host       string `json:"host"`
		Port       int    `json:"port"`
		User       string `json:"user"`
		KeyFile    string `json:"key_file"`
		KnownHosts string `json:"known_hosts"`
		Log        string `json:"log"`
	} `json:"ssh"`
	// Cluster is set in the cluster profiles (several nodes).
	Cluster *ClusterSiteInfo `json:"cluster,omitempty"`
}

// WorldInfo describes a running world; the testworld command writes it to
// world.json.
type WorldInfo struct {
	Dir   string              `json:"dir"`
	Sites map[string]SiteInfo `json:"sites"`
}

// Info describes the world. It writes each site's MariaDB password file and
// option file (0600) into the site's mariadb directory.
func (w *World) Info() (WorldInfo, error) {
	wi := WorldInfo{Dir: w.Dir, Sites: map[string]SiteInfo{}}
	for _, s := range w.Sites() {
		var si SiteInfo
		si.Name, si.Dir, si.NFS = s.Name, s.Dir, s.NFS
		si.ES.URL, si.ES.PathRepo, si.ES.Log = s.ES.URL, s.ES.RepoRoot, s.ES.proc.Log
		m := s.MariaDB
		si.MariaDB.Host, si.MariaDB.Port, si.MariaDB.Socket, si.MariaDB.User = m.Host, m.Port, m.Socket, m.User
		si.MariaDB.PasswordFile = filepath.Join(m.Dir, "password")
		si.MariaDB.DefaultsFile = filepath.Join(m.Dir, "client.cnf")
		si.MariaDB.DSN = fmt.Sprintf("%s:PASSWORD@tcp(%s)/", m.User, m.Addr())
		si.MariaDB.Log = m.proc.Log
		if err := os.WriteFile(si.MariaDB.PasswordFile, []byte(m.Password+"\n"), 0o600); err != nil {
			return wi, err
		}
		if err := m.WriteDefaults(si.MariaDB.DefaultsFile); err != nil {
			return wi, err
		}
		si.Redis.Addr, si.Redis.Log = s.Redis.Addr, s.Redis.proc.Log
		h := s.SSH
		si.SSH.Host, si.SSH.Port, si.SSH.User, si.SSH.KeyFile, si.SSH.KnownHosts, si.SSH.Log = h.Host, h.Port, h.User, h.KeyFile, h.KnownHosts, h.proc.Log
		wi.Sites[s.Name] = si
	}
	return wi, nil
}

// MarshalIndent is the world.json form of the description.
func (wi WorldInfo) MarshalIndent() ([]byte, error) {
	b, err := json.MarshalIndent(wi, "", "  ")
	return append(b, '\n'), err
}
