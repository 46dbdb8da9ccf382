package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// world is one test's prod site: the package's shared Elasticsearch node,
// a fresh MariaDB, a channel below the node's path.repo, a storage tree,
// a role file and a signing key.
type world struct {
	es       *testenv.ES
	db       *testenv.MariaDBServer
	dir      string
	channel  string
	storage  string
	index    string
	allowed  string
	keyFile  string
	pwFile   string
	roleFile string
	cfg      *config
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

func newWorld(t *testing.T) *world {
	t.Helper()
	node := testenv.Elasticsearch(t)
	w := &world{es: node, db: testenv.MariaDB(t), dir: t.TempDir()}
	name := strings.Trim(nonWord.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	w.index = "idx-" + name
	w.channel = filepath.Join(node.RepoRoot, name, "prod-to-bcp")
	if err := os.MkdirAll(filepath.Dir(w.channel), 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(w.channel)) })
	if err := manifest.WriteChannel(w.channel, manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}); err != nil {
		t.Fatal(err)
	}
	w.roleFile = filepath.Join(w.dir, "role")
	testkit.WriteFile(t, w.roleFile, "active\n")
	w.keyFile, w.allowed = signingKey(t, w.dir)
	w.pwFile = filepath.Join(w.dir, "mysql.pw")
	testkit.WriteFile(t, w.pwFile, w.db.Password+"\n")
	w.storage = filepath.Join(w.dir, "storage")
	for p, c := range map[string]string{"assets/logo.png": "png", "docs/1/a.pdf": "pdf-one", "docs/2/b.pdf": "pdf-two", "pipelets/x.py": "print(1)"} {
		testkit.WriteFile(t, filepath.Join(w.storage, p), c)
	}
	testkit.Must(t, os.Symlink("docs/1/a.pdf", filepath.Join(w.storage, "latest")))
	sqlDB := w.db.DB(t)
	for _, q := range []string{"CREATE DATABASE squirro", "CREATE TABLE squirro.projects (id INT PRIMARY KEY, name TEXT)",
		"INSERT INTO squirro.projects VALUES (1,'one'),(2,'two'),(3,'three')", "CREATE TABLE squirro.empty (id INT)"} {
		if _, err := sqlDB.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	c := node.Client(t)
	res, err := esapi.IndexRequest{Index: w.index, Body: strings.NewReader(`{"title":"hello"}`), Refresh: "true"}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("index: %v %v", err, res)
	}
	_ = res.Body.Close()
	t.Cleanup(func() { _, _ = esapi.IndicesDeleteRequest{Index: []string{w.index}}.Do(context.Background(), c) })
	w.cfg = &config{
		Channel: w.channel, Site: "prod", RoleFile: w.roleFile, StateDir: filepath.Join(w.dir, "state"),
		Leader: leader.Options{Mode: leader.ModeNone, NodeName: "node1"}, Stages: []string{stageMySQL, stageFiles, stageES},
		ESIndices: []string{w.index}, StorageRoot: w.storage, SignKey: w.keyFile, SpaceMargin: 50,
	}
	w.cfg.ES.URLs = []string{node.URL}
	w.cfg.ESRepo = "bcp-" + name
	w.cfg.MySQL.Host, w.cfg.MySQL.Port, w.cfg.MySQL.User, w.cfg.MySQL.PasswordFile = w.db.Host, w.db.Port, w.db.User, w.pwFile
	if err := w.cfg.validate(); err != nil {
		t.Fatal(err)
	}
	return w
}

// signingKey writes the prod site's signing key and an allowed_signers
// file trusting it.
func signingKey(t *testing.T, dir string) (key, allowed string) {
	t.Helper()
	key, s := testkit.SigningKey(t, dir, "prod-backup")
	return key, testkit.WriteAllowedSigners(t, filepath.Join(dir, "allowed_signers"), testkit.AllowedLine("prod-backup", s.PublicKey()))
}

// verify classifies set id (newest signed if "") with manifest.Verify.
func (w *world) verify(t *testing.T, id string) (*manifest.Report, error) {
	t.Helper()
	a, err := sshsig.LoadAllowedSigners(w.allowed)
	if err != nil {
		t.Fatal(err)
	}
	return manifest.Verify(context.Background(), manifest.VerifyOptions{Root: w.channel, SetID: id, AllowedSigners: a,
		Expect: manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}})
}

func (w *world) sets(t *testing.T) []manifest.SetInfo {
	t.Helper()
	s, err := manifest.List(w.channel)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (w *world) run(t *testing.T) (*runResult, error) {
	t.Helper()
	return runBackup(context.Background(), backupOptions{cfg: w.cfg})
}

func (w *world) mustRun(t *testing.T) *runResult {
	t.Helper()
	res, err := w.run(t)
	if err != nil {
		t.Fatalf("backup run: %v", err)
	}
	if rep, err := w.verify(t, res.SetID); err != nil || rep.Status != manifest.StatusComplete {
		t.Fatalf("set %s: verify = %v, %v", res.SetID, rep, err)
	}
	return res
}
