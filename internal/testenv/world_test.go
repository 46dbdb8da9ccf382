package testenv_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/elastic/go-elasticsearch/v7"
	"github.com/elastic/go-elasticsearch/v7/esapi"
	"github.com/go-sql-driver/mysql"
	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// run numbers the runs of tests that name things in the shared world.
var run atomic.Int64

// esDo runs an esapi request and decodes the JSON answer; an error answer
// fails the test unless wantErr, in which case it is returned.
func esDo(t *testing.T, c *elasticsearch.Client, req esapi.Request, wantErr bool) (map[string]any, string) {
	t.Helper()
	res, err := req.Do(context.Background(), c)
	if err != nil {
		t.Fatalf("elasticsearch: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.IsError() != wantErr {
		t.Fatalf("elasticsearch %T: status %s, want error=%v: %s", req, res.Status(), wantErr, body)
	}
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return m, string(body)
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

func count(t *testing.T, c *elasticsearch.Client, index string) int {
	t.Helper()
	esDo(t, c, esapi.IndicesRefreshRequest{Index: []string{index}}, false)
	m, _ := esDo(t, c, esapi.CountRequest{Index: []string{index}}, false)
	return int(m["count"].(float64))
}

// copyTree copies a directory tree (what a mover does between the sites).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o640)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestElasticsearchSnapshotToOtherSite(t *testing.T) {
	w := testenv.SharedWorld(t)
	prod, bcp := w.Prod.ES.Client(t), w.BCP.ES.Client(t)
	n := run.Add(1) // names unique per run, so -count=N works on the shared world
	index, repo, docs := fmt.Sprintf("proof-snapshot-%d", n), fmt.Sprintf("proof-%d", n), 57

	esDo(t, prod, esapi.IndicesCreateRequest{Index: index,
		Body: jsonBody(map[string]any{"settings": map[string]any{"number_of_shards": 2, "number_of_replicas": 0}})}, false)
	var bulk strings.Builder
	for i := 0; i < docs; i++ {
		fmt.Fprintf(&bulk, "{\"index\":{\"_index\":%q}}\n{\"n\":%d,\"text\":\"document %d\"}\n", index, i, i)
	}
	esDo(t, prod, esapi.BulkRequest{Body: strings.NewReader(bulk.String()), Refresh: "true"}, false)
	if got := count(t, prod, index); got != docs {
		t.Fatalf("prod count = %d, want %d", got, docs)
	}

	prodRepo := filepath.Join(testenv.ChannelDir(t, w.Prod), repo)
	esDo(t, prod, esapi.SnapshotCreateRepositoryRequest{Repository: repo,
		Body: jsonBody(map[string]any{"type": "fs", "settings": map[string]any{"location": prodRepo}})}, false)
	snap, _ := esDo(t, prod, esapi.SnapshotCreateRequest{Repository: repo, Snapshot: "s1",
		WaitForCompletion: esapi.BoolPtr(true),
		Body:              jsonBody(map[string]any{"indices": index, "include_global_state": false})}, false)
	if st := snap["snapshot"].(map[string]any)["state"]; st != "SUCCESS" {
		t.Fatalf("snapshot state %v, want SUCCESS", st)
	}

	bcpRepo := filepath.Join(testenv.ChannelDir(t, w.BCP), repo)
	copyTree(t, prodRepo, bcpRepo)
	esDo(t, bcp, esapi.SnapshotCreateRepositoryRequest{Repository: repo,
		Body: jsonBody(map[string]any{"type": "fs", "settings": map[string]any{"location": bcpRepo, "readonly": true}})}, false)
	esDo(t, bcp, esapi.SnapshotRestoreRequest{Repository: repo, Snapshot: "s1",
		WaitForCompletion: esapi.BoolPtr(true),
		Body:              jsonBody(map[string]any{"indices": index})}, false)
	if got := count(t, bcp, index); got != docs {
		t.Fatalf("bcp count after restore = %d, want %d", got, docs)
	}
}

func TestElasticsearchRepositoryOutsidePathRepo(t *testing.T) {
	es := testenv.Elasticsearch(t)
	c := es.Client(t)
	inside := filepath.Join(es.RepoRoot, "inside")
	esDo(t, c, esapi.SnapshotCreateRepositoryRequest{Repository: "inside",
		Body: jsonBody(map[string]any{"type": "fs", "settings": map[string]any{"location": inside}})}, false)
	_, body := esDo(t, c, esapi.SnapshotCreateRepositoryRequest{Repository: "outside",
		Body: jsonBody(map[string]any{"type": "fs", "settings": map[string]any{"location": t.TempDir()}})}, true)
	if !strings.Contains(body, "path.repo") {
		t.Fatalf("error does not name path.repo: %s", body)
	}
}

func rowCounts(t *testing.T, db *sql.DB, tables ...string) map[string]int {
	t.Helper()
	m := map[string]int{}
	for _, tb := range tables {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM " + tb).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", tb, err)
		}
		m[tb] = n
	}
	return m
}

func TestMariaDBDumpIntoOtherSite(t *testing.T) {
	w := testenv.SharedWorld(t)
	for _, bin := range []string{"mysqldump", "mysql"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.RequireCI(t, bin, "apt-get install mariadb-client")
		}
	}
	prod := w.Prod.MariaDB.DB(t)
	db := fmt.Sprintf("proof_dump_%d", run.Add(1))
	_, err := prod.Exec(strings.ReplaceAll(`CREATE DATABASE proof_dump;
		CREATE TABLE proof_dump.projects (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100)) ENGINE=InnoDB;
		CREATE TABLE proof_dump.users (id INT PRIMARY KEY AUTO_INCREMENT, email VARCHAR(100)) ENGINE=InnoDB`, "proof_dump", db))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ {
		if _, err := prod.Exec("INSERT INTO "+db+".projects (name) VALUES (?)", fmt.Sprintf("project %d", i)); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := prod.Exec("INSERT INTO "+db+".users (email) VALUES (?)", fmt.Sprintf("u%d@example.com", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dump := exec.Command("mysqldump", "--defaults-extra-file="+w.Prod.MariaDB.Defaults(t),
		"--single-transaction", "--routines", "--triggers", "--databases", db)
	load := exec.Command("mysql", "--defaults-extra-file="+w.BCP.MariaDB.Defaults(t))
	var dumpErr, loadErr bytes.Buffer
	dump.Stderr, load.Stderr = &dumpErr, &loadErr
	pipe, err := dump.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dump.Run(); err != nil {
		t.Fatalf("mysqldump: %v: %s", err, dumpErr.String())
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("mysql: %v: %s", err, loadErr.String())
	}
	tables := []string{db + ".projects", db + ".users"}
	want, got := rowCounts(t, prod, tables...), rowCounts(t, w.BCP.MariaDB.DB(t), tables...)
	for _, tb := range tables {
		if want[tb] == 0 || got[tb] != want[tb] {
			t.Errorf("%s: bcp has %d rows, prod %d", tb, got[tb], want[tb])
		}
	}
}

func TestMariaDBRefusesWrongPassword(t *testing.T) {
	m := testenv.SharedWorld(t).Prod.MariaDB
	c := mysql.NewConfig()
	c.User, c.Passwd, c.Net, c.Addr = m.User, m.Password+"x", "tcp", m.Addr()
	db, err := sql.Open("mysql", c.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Ping()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("ping with a wrong password: %v, want access denied (1045)", err)
	}
}

func TestSSHSFTPAndCommands(t *testing.T) {
	w := testenv.SharedWorld(t)
	ctx := context.Background()
	for _, s := range []*testenv.SSHServer{w.Prod.SSH, w.BCP.SSH, testenv.SSHD(t)} {
		c, err := sshx.Dial(ctx, s.Config())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fc, err := c.SFTP()
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()

		data := make([]byte, 3<<20+123) // several SFTP packets
		_, _ = rand.Read(data)
		remote := filepath.Join(t.TempDir(), "upload.bin")
		f, err := fc.Create(remote)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
			t.Fatalf("sftp upload to %s: %v", s.Addr(), err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if onDisk, _ := os.ReadFile(remote); !bytes.Equal(onDisk, data) {
			t.Fatalf("uploaded file differs (%d bytes, want %d)", len(onDisk), len(data))
		}
		g, err := fc.Open(remote)
		if err != nil {
			t.Fatal(err)
		}
		var back bytes.Buffer
		if _, err := g.WriteTo(&back); err != nil {
			t.Fatalf("sftp download: %v", err)
		}
		_ = g.Close()
		if !bytes.Equal(back.Bytes(), data) {
			t.Fatal("downloaded file differs")
		}

		var out bytes.Buffer
		if err := c.Run(ctx, "echo hello; exit 3", nil, &out, nil); err == nil {
			t.Fatal("command exiting 3 returned no error")
		} else {
			var ee *ssh.ExitError
			if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
				t.Fatalf("exit status: %v, want 3", err)
			}
		}
		if out.String() != "hello\n" {
			t.Fatalf("stdout %q", out.String())
		}
	}
}

func TestSSHRefusesWrongHostKey(t *testing.T) {
	s := testenv.SSHD(t)
	other := testenv.SSHD(t) // a different server, hence a different host key
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	otherLine, err := os.ReadFile(other.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	// other's key under s's name: a host-key mismatch.
	line := strings.Replace(string(otherLine), other.Addr(), s.Addr(), 1)
	line = strings.Replace(line, fmt.Sprintf("[%s]:%d", other.Host, other.Port), fmt.Sprintf("[%s]:%d", s.Host, s.Port), 1)
	if err := os.WriteFile(wrong, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty_known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, knownHosts string }{
		{"mismatch", wrong},
		{"unknown host", empty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := s.Config()
			cfg.KnownHosts = tc.knownHosts
			c, err := sshx.Dial(context.Background(), cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("connected despite a wrong host key")
			}
			if !errors.Is(err, sshx.ErrHostKey) {
				t.Fatalf("err = %v, want sshx.ErrHostKey", err)
			}
		})
	}
}

func TestRedisFlushAll(t *testing.T) {
	ctx := context.Background()
	c := testenv.SharedWorld(t).BCP.Redis.Client(t)
	for i := 0; i < 20; i++ {
		if err := c.Set(ctx, fmt.Sprintf("proof:%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n < 20 {
		t.Fatalf("dbsize = %d, %v; want >= 20", n, err)
	}
	if err := c.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("after FLUSHALL dbsize = %d, %v; want 0", n, err)
	}
}

func TestWorldSitesAreSeparate(t *testing.T) {
	w := testenv.SharedWorld(t)
	for _, s := range w.Sites() {
		if s.ES.RepoRoot != s.NFS {
			t.Errorf("%s: path.repo %s, want the site's NFS dir %s", s.Name, s.ES.RepoRoot, s.NFS)
		}
		m, _ := esDo(t, s.ES.Client(t), esapi.InfoRequest{}, false)
		if m["cluster_name"] != s.Name {
			t.Errorf("%s: elasticsearch cluster %v, want %q", s.Name, m["cluster_name"], s.Name)
		}
		if v := m["version"].(map[string]any)["number"]; v != "7.17.29" {
			t.Errorf("%s: elasticsearch version %v, want 7.17.29", s.Name, v)
		}
	}
	p, b := w.Prod, w.BCP
	if p.NFS == b.NFS || p.ES.URL == b.ES.URL || p.MariaDB.Port == b.MariaDB.Port || p.Redis.Addr == b.Redis.Addr || p.SSH.Port == b.SSH.Port {
		t.Fatalf("sites share a service or directory: prod %+v, bcp %+v", p, b)
	}
}
