package testenv_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestClusterWorld starts the cluster profile (3-node prod, 1-node bcp)
// and checks its shape: one Elasticsearch cluster of three JVMs whose
// every node sees the shared repository, three application nodes that
// one key logs in to, a MariaDB replica and a Redis replica that follow
// their primaries. It logs each JVM's resident memory.
func TestClusterWorld(t *testing.T) {
	w := testenv.SharedClusterWorld(t, testenv.ProfileCluster)
	ctx := context.Background()
	for _, s := range w.Sites() {
		want := w.Profile.ProdES
		if s.Name == "bcp" {
			want = w.Profile.BCPES
		}
		var h struct {
			Nodes  int    `json:"number_of_nodes"`
			Status string `json:"status"`
			Name   string `json:"cluster_name"`
		}
		getJSON(t, s.ES[0].URL+"/_cluster/health", &h)
		if h.Nodes != want || h.Status != "green" || h.Name != s.Name {
			t.Fatalf("%s: cluster health %+v, want %d nodes, green, cluster %s", s.Name, h, want, s.Name)
		}
		// An fs repository below path.repo that every node can verify.
		repo := s.NFS + "/shape-check/es"
		testkit.Must(t, os.MkdirAll(repo, 0o750))
		put(t, s.ES[0].URL+"/_snapshot/shape", fmt.Sprintf(`{"type":"fs","settings":{"location":%q}}`, repo))
		var v struct {
			Nodes map[string]any `json:"nodes"`
		}
		postJSON(t, s.ES[0].URL+"/_snapshot/shape/_verify", &v)
		if len(v.Nodes) != want {
			t.Fatalf("%s: repository verified by %d nodes, want %d", s.Name, len(v.Nodes), want)
		}
		for _, e := range s.ES {
			t.Logf("%s %s: RSS %d MiB", s.Name, e.Name, rssKiB(t, e.Pid())/1024)
		}
		// One key, every node, host keys checked.
		for _, n := range s.Apps {
			c, err := sshx.Dial(ctx, sshx.Config{Host: n.SSH.Host, Port: n.SSH.Port, User: n.SSH.User, KeyFile: s.KeyFile, KnownHosts: s.KnownHosts})
			if err != nil {
				t.Fatalf("%s: ssh to %s with the site's key: %v", s.Name, n.Name, err)
			}
			_ = c.Close()
			if b, err := os.ReadFile(n.RoleFile); err != nil || (s.Name == "prod") != (strings.TrimSpace(string(b)) == "active") {
				t.Fatalf("%s: role file of %s: %q, %v", s.Name, n.Name, b, err)
			}
		}
		// Followers follow.
		db := s.MariaDB.DB(t)
		if _, err := db.Exec("CREATE DATABASE IF NOT EXISTS shape_check; CREATE TABLE IF NOT EXISTS shape_check.t (id INT PRIMARY KEY); REPLACE INTO shape_check.t VALUES (1),(2)"); err != nil {
			t.Fatal(err)
		}
		testkit.Must(t, s.WaitReplicas(ctx))
		var n int
		rdb, err := sql.Open("mysql", s.MariaDBReplica.DSN(""))
		testkit.Must(t, err)
		defer rdb.Close()
		if err := rdb.QueryRow("SELECT COUNT(*) FROM shape_check.t").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%s: replica has %d rows (%v), want 2", s.Name, n, err)
		}
		var ro int
		if err := rdb.QueryRow("SELECT @@global.read_only").Scan(&ro); err != nil || ro != 1 {
			t.Fatalf("%s: replica read_only = %d (%v), want 1", s.Name, ro, err)
		}
		rc := s.RedisReplica.Client(t)
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:slave") || !strings.Contains(info, "master_port:"+strconv.Itoa(s.Redis.Port)) {
			t.Fatalf("%s: redis replica: %v\n%s", s.Name, err, info)
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	testkit.Must(t, err)
	defer resp.Body.Close()
	testkit.Must(t, json.NewDecoder(resp.Body).Decode(v))
}

func put(t *testing.T, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	testkit.Must(t, err)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT %s: %s", url, resp.Status)
	}
}

func postJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	testkit.Must(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
	testkit.Must(t, json.NewDecoder(resp.Body).Decode(v))
}

// rssKiB is a process's resident set size (VmRSS) in KiB.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	testkit.Must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}
