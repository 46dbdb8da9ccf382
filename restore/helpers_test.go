package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// TestMain also plays `transfer serve` when a files-via-ssh test starts
// this test binary over SSH as "restore.test serve DIR" (remote-transfer).
func TestMain(m *testing.M) {
	remote.ServeIfAsked()
	os.Exit(testenv.Main(m))
}

// fixture is one test's slice of the shared two-site world: its own channel
// on each side, index and database names, storage trees, keys and state.
type fixture struct {
	t           *testing.T
	w           *testenv.World
	name        string // lower-case prefix of indices and databases
	prodCh      string // channel on prod's NFS (backup writes here)
	bcpCh       string // channel on bcp's NFS (transfer brings it here)
	prodTree    string // prod's storage directory
	bcpTree     string // bcp's storage directory
	signer      ssh.Signer
	key         ed25519.PrivateKey
	backupState string // the real backup's state directory (capture cache)
	allowed     string // allowed_signers trusting signer
	state       string
	role        string
	restarts    string // the stand-in restart script appends here
	health      *httptest.Server
	prodES      *elasticsearch.Client
	bcpES       *elasticsearch.Client
	prodDB      *sql.DB
	bcpDB       *sql.DB
	seq         uint64
	channel     manifest.Channel
	format10    bool               // publish writes sets of format 1.0 (no scope)
	esSource    *manifest.ESSource // publish records it as elasticsearch.source
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, testenv.SharedWorld(t))
}

// newFixtureOn is newFixture on another world (the cluster profile's view).
func newFixtureOn(t *testing.T, w *testenv.World) *fixture {
	t.Helper()
	name := strings.Trim(nonAlnum.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	f := &fixture{t: t, w: w, name: name,
		prodCh:   filepath.Join(testenv.ChannelDir(t, w.Prod), "prod-to-bcp"),
		bcpCh:    filepath.Join(testenv.ChannelDir(t, w.BCP), "prod-to-bcp"),
		prodTree: filepath.Join(t.TempDir(), "prod-storage"), bcpTree: filepath.Join(t.TempDir(), "bcp-storage"),
		state: filepath.Join(t.TempDir(), "state"), role: filepath.Join(t.TempDir(), "role"),
		restarts: filepath.Join(t.TempDir(), "restarts.log"),
		prodES:   w.Prod.ES.Client(t), bcpES: w.BCP.ES.Client(t),
		prodDB: w.Prod.MariaDB.DB(t), bcpDB: w.BCP.MariaDB.DB(t),
		channel: manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"},
	}
	for _, d := range []string{f.prodCh, f.bcpCh, f.prodTree} {
		testkit.Must(t, os.MkdirAll(d, 0o750))
	}
	testkit.Must(t, manifest.WriteChannel(f.prodCh, f.channel))
	testkit.Must(t, os.WriteFile(f.role, []byte("standby\n"), 0o644))
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	testkit.Must(t, err)
	f.key, f.backupState = priv, filepath.Join(t.TempDir(), "backup-state")
	f.signer, err = ssh.NewSignerFromKey(priv)
	testkit.Must(t, err)
	f.allowed = writeAllowed(t, f.signer.PublicKey())
	// Squirro's health page, honestly stood in for on loopback
	f.health = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(f.health.Close)
	return f
}

// writeAllowed writes an allowed_signers file trusting pub as prod-backup.
func writeAllowed(t *testing.T, pub ssh.PublicKey) string {
	t.Helper()
	return testkit.WriteAllowedSigners(t, filepath.Join(t.TempDir(), "allowed_signers"), testkit.AllowedLine("prod-backup", pub))
}

// settings is restore's configuration for the bcp side of this fixture.
func (f *fixture) settings() settings {
	b := f.w.BCP
	host := b.SSH.Host + ":" + fmt.Sprint(b.SSH.Port)
	return settings{
		Channel: f.bcpCh, Site: "bcp", Source: "prod", RoleFile: f.role, AllowedSigners: f.allowed, StateDir: f.state,
		Leader: leader.Options{Mode: leader.ModeNone, NodeName: "bcp-1"},
		ESURL:  b.ES.URL, ESRepository: "bcp-" + f.name, ESExisting: es.ExistingDelete,
		ESIndexSettings: map[string]any{"index.number_of_replicas": 0}, ESTimeout: 5 * time.Minute,
		MySQLDefaultsFile: b.MariaDB.Defaults(f.t), MySQLClient: "mysql",
		SSH:         b.SSH.Config(),
		StorageRoot: f.bcpTree, Exclude: []string{"cache", "*.lock"},
		RedisAddr:      b.Redis.Addr,
		RestartCommand: "echo restarted >> " + f.restarts, RestartNodes: []string{host, host}, RestartTimeout: time.Minute,
		HealthURLs: []string{f.health.URL}, PostcheckTimeout: time.Minute,
	}
}

func (f *fixture) env() env {
	return env{cfg: f.settings(), log: slog.New(slog.NewTextHandler(testWriter{f.t}, nil)), rep: ui.Nop{}}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ---- prod data ----

func (f *fixture) index(idx string) string { return f.name + "_" + idx }
func (f *fixture) db(db string) string     { return f.name + "_" + db }

// putDocs indexes documents id -> body into prod.
func (f *fixture) putDocs(idx string, docs map[string]string) {
	f.t.Helper()
	var b bytes.Buffer
	for id, body := range docs {
		fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":%q}}`+"\n", f.index(idx), id)
		fmt.Fprintf(&b, `{"text":%q}`+"\n", body)
	}
	resp, err := f.prodES.Bulk(&b, f.prodES.Bulk.WithRefresh("true"))
	testkit.Must(f.t, err)
	defer resp.Body.Close()
	var r struct {
		Errors bool `json:"errors"`
	}
	testkit.Must(f.t, json.NewDecoder(resp.Body).Decode(&r))
	if resp.IsError() || r.Errors {
		f.t.Fatalf("bulk into %s: %s", idx, resp.Status())
	}
}

func (f *fixture) createIndex(idx string, shards int) {
	f.t.Helper()
	body := fmt.Sprintf(`{"settings":{"number_of_shards":%d,"number_of_replicas":0}}`, shards)
	resp, err := f.prodES.Indices.Create(f.index(idx), f.prodES.Indices.Create.WithBody(strings.NewReader(body)))
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		f.t.Fatalf("create index %s: %s", idx, resp.Status())
	}
}

func (f *fixture) deleteDoc(idx, id string) {
	f.t.Helper()
	resp, err := f.prodES.Delete(f.index(idx), id, f.prodES.Delete.WithRefresh("true"))
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
}

func (f *fixture) deleteIndex(idx string) {
	f.t.Helper()
	resp, err := f.prodES.Indices.Delete([]string{f.index(idx)})
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
}

func (f *fixture) exec(db *sql.DB, q string, args ...any) {
	f.t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

// ---- a set, built the way backup builds one ----

// indices are this fixture's indices on a cluster.
func (f *fixture) indices(c *elasticsearch.Client) []string {
	f.t.Helper()
	all, err := es.ListAllIndices(context.Background(), c)
	testkit.Must(f.t, err)
	var out []string
	for _, ii := range all {
		if strings.HasPrefix(ii.Index, f.name+"_") {
			out = append(out, ii.Index)
		}
	}
	return out
}

// databases are this fixture's databases on a server.
func (f *fixture) databases(db *sql.DB) []string {
	f.t.Helper()
	rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ? ORDER BY 1", f.name+`\_%`)
	testkit.Must(f.t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		testkit.Must(f.t, rows.Scan(&s))
		out = append(out, s)
	}
	return out
}

// publishSmall puts one index with one document, one empty table and one
// file on prod and publishes them as a set. It returns the set id.
func (f *fixture) publishSmall() string {
	f.t.Helper()
	f.createIndex("docs", 1)
	f.putDocs("docs", map[string]string{"1": "one"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY)")
	testkit.WriteFile(f.t, filepath.Join(f.prodTree, "a.txt"), "alpha")
	return f.publish()
}

// publish takes a snapshot, a dump and the tree of prod, and publishes a
// signed set in the prod channel. It returns the set id.
func (f *fixture) publish() string {
	t := f.t
	t.Helper()
	ctx := context.Background()
	f.seq++
	store := objects.New(manifest.Layout{Root: f.prodCh}.ObjectsDir())
	version := manifest.Version
	if f.format10 {
		version = "1.0"
	}
	m := &manifest.Manifest{Version: version, Channel: f.channel, Sequence: f.seq,
		Created: time.Now().UTC().Truncate(time.Second), Producer: manifest.Producer{Host: "prod-1", Program: "restore-test", Version: "test"}}

	// Elasticsearch snapshot into the channel's es/ repository
	repo := "bcp-" + f.name
	esDir := manifest.Layout{Root: f.prodCh}.ESDir()
	body := fmt.Sprintf(`{"type":"fs","settings":{"location":%q}}`, esDir)
	resp, err := f.prodES.Snapshot.CreateRepository(repo, strings.NewReader(body))
	testkit.Must(t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		t.Fatalf("register %s: %s", repo, resp.Status())
	}
	snap := fmt.Sprintf("snap-%d", f.seq)
	indices := f.indices(f.prodES)
	sb := fmt.Sprintf(`{"indices":%q,"include_global_state":false}`, strings.Join(indices, ","))
	resp, err = f.prodES.Snapshot.Create(repo, snap, f.prodES.Snapshot.Create.WithBody(strings.NewReader(sb)), f.prodES.Snapshot.Create.WithWaitForCompletion(true))
	testkit.Must(t, err)
	var sr struct {
		Snapshot es.SnapshotInfo `json:"snapshot"`
	}
	testkit.Must(t, json.NewDecoder(resp.Body).Decode(&sr))
	_ = resp.Body.Close()
	if sr.Snapshot.State != "SUCCESS" {
		t.Fatalf("snapshot %s: %+v", snap, sr.Snapshot)
	}
	gen, err := os.ReadFile(filepath.Join(esDir, "index.latest"))
	testkit.Must(t, err)
	var files []manifest.ESFile
	var esBytes int64
	testkit.Must(t, filepath.WalkDir(esDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(esDir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		files = append(files, manifest.ESFile{Path: filepath.ToSlash(rel), Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])})
		esBytes += int64(len(b))
		return nil
	}))
	sort.Slice(files, func(i, j int) bool { return manifest.ComparePaths(files[i].Path, files[j].Path) < 0 })
	ref, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, fl := range files {
			if err := lw.WriteESFile(fl); err != nil {
				return err
			}
		}
		return nil
	})
	testkit.Must(t, err)
	m.Elasticsearch = &manifest.ESSnapshot{Repository: repo, Snapshot: snap, UUID: sr.Snapshot.UUID, State: "SUCCESS",
		Indices: sr.Snapshot.Indices, Generation: int64(binary.BigEndian.Uint64(gen)), Files: ref, FileCount: int64(len(files)), Bytes: esBytes,
		Scope: []string{f.name + "_*"}, Source: f.esSource} // every index of this fixture
	sort.Strings(m.Elasticsearch.Indices)
	if f.format10 {
		m.Elasticsearch.Scope, m.Elasticsearch.Source = nil, nil
	}

	// MySQL dump, zstd-compressed, as one object
	dbs := f.databases(f.prodDB)
	defaults := f.w.Prod.MariaDB.Defaults(t)
	cmd := exec.Command("mysqldump", append([]string{"--defaults-extra-file=" + defaults, "--single-transaction", "--skip-dump-date", "--databases"}, dbs...)...)
	var dump bytes.Buffer
	cmd.Stdout = &dump
	cmd.Stderr = testWriter{t}
	testkit.Must(t, cmd.Run())
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	testkit.Must(t, err)
	_, err = zw.Write(dump.Bytes())
	testkit.Must(t, err)
	testkit.Must(t, zw.Close())
	dref, err := store.Put(ctx, &zb)
	testkit.Must(t, err)
	m.MySQL = &manifest.MySQLDump{Object: dref, Compression: "zstd", Databases: dbs, Tables: f.rowCounts(f.prodDB, dbs)}

	// the storage tree
	var entries []manifest.Entry
	var treeBytes int64
	testkit.Must(t, filepath.WalkDir(f.prodTree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == f.prodTree {
			return err
		}
		rel, _ := filepath.Rel(f.prodTree, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := manifest.Entry{Path: filepath.ToSlash(rel), Mode: uint32(fi.Mode().Perm()), MTime: fi.ModTime().UTC(), UID: os.Getuid(), GID: os.Getgid()}
		switch {
		case fi.IsDir():
			e.Type = manifest.TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = manifest.TypeSymlink
			e.Target, _ = os.Readlink(p)
		default:
			r, err := store.PutFile(ctx, p)
			if err != nil {
				return err
			}
			e.Type, e.Size, e.Object = manifest.TypeFile, r.Size, r.SHA256
			treeBytes += r.Size
		}
		entries = append(entries, e)
		return nil
	}))
	sort.Slice(entries, func(i, j int) bool { return manifest.ComparePaths(entries[i].Path, entries[j].Path) < 0 })
	if f.format10 {
		// format 1.x: one list object for the whole tree
		ref, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
			for _, e := range entries {
				if err := lw.WriteEntry(e); err != nil {
					return err
				}
			}
			return nil
		})
		testkit.Must(t, err)
		m.Trees = []manifest.Tree{{Name: "storage", Root: f.prodTree, List: ref, Files: int64(len(entries)), Bytes: treeBytes}}
	} else {
		tw := manifest.NewTreeWriter(ctx, store)
		for _, e := range entries {
			testkit.Must(t, tw.WriteEntry(e))
		}
		mt, err := tw.Tree("storage", f.prodTree)
		testkit.Must(t, err)
		m.Trees = []manifest.Tree{mt}
	}

	id, err := manifest.Publish(ctx, manifest.Layout{Root: f.prodCh}, m, f.signer)
	testkit.Must(t, err)
	return id
}

func (f *fixture) rowCounts(db *sql.DB, dbs []string) []manifest.TableCount {
	f.t.Helper()
	var out []manifest.TableCount
	for _, d := range dbs {
		rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1", d)
		testkit.Must(f.t, err)
		var tables []string
		for rows.Next() {
			var s string
			testkit.Must(f.t, rows.Scan(&s))
			tables = append(tables, s)
		}
		_ = rows.Close()
		for _, tb := range tables {
			var n int64
			testkit.Must(f.t, db.QueryRow(fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s`", d, tb)).Scan(&n))
			out = append(out, manifest.TableCount{Database: d, Table: tb, Rows: n})
		}
	}
	return out
}

// ---- moving a channel (what transfer does) ----

// channelFiles lists the files of a channel that a mover copies, data first
// (es/, objects/), then channel.json, then sets/ - manifests before their
// signatures. Paths are relative to the channel.
func channelFiles(t *testing.T, root string) []string {
	t.Helper()
	var data, sets []string
	testkit.Must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasPrefix(rel, "pins/"), strings.HasPrefix(rel, "locks/"), strings.Contains(rel, ".tmp-"):
		case strings.HasPrefix(rel, "sets/"):
			sets = append(sets, rel)
		case rel == manifest.ChannelFileName:
		default:
			data = append(data, rel)
		}
		return nil
	}))
	sort.Strings(sets) // manifest.json before manifest.json.sig
	out := append(data, manifest.ChannelFileName)
	return append(out, sets...)
}

// copyFile copies one channel file if the target lacks it or differs,
// through a temporary name (movers never expose half a file).
func copyFile(t *testing.T, src, dst, rel string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(src, rel))
	testkit.Must(t, err)
	target := filepath.Join(dst, rel)
	if old, err := os.ReadFile(target); err == nil && bytes.Equal(old, b) {
		return false
	}
	testkit.Must(t, os.MkdirAll(filepath.Dir(target), 0o750))
	tmp := filepath.Join(filepath.Dir(target), ".tmp-copy")
	testkit.Must(t, os.WriteFile(tmp, b, 0o644))
	testkit.Must(t, os.Rename(tmp, target))
	return true
}

// copyChannel copies the channel src to dst in a mover's order (data first,
// manifests last).
func copyChannel(t *testing.T, src, dst string) {
	t.Helper()
	for _, rel := range channelFiles(t, src) {
		copyFile(t, src, dst, rel)
	}
}

// transfer mirrors the prod channel to bcp.
func (f *fixture) transfer() {
	f.t.Helper()
	copyChannel(f.t, f.prodCh, f.bcpCh)
}

// ---- comparing the two sites ----

func (f *fixture) docCounts(c *elasticsearch.Client) map[string]int64 {
	f.t.Helper()
	n, err := es.CountDocuments(context.Background(), c, f.indices(c))
	testkit.Must(f.t, err)
	return n
}

// tables maps db.table -> "rows checksum".
func (f *fixture) tables(db *sql.DB) map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, tc := range f.rowCounts(db, f.databases(db)) {
		var name string
		var sum sql.NullInt64
		testkit.Must(f.t, db.QueryRow(fmt.Sprintf("CHECKSUM TABLE `%s`.`%s`", tc.Database, tc.Table)).Scan(&name, &sum))
		out[tc.Database+"."+tc.Table] = fmt.Sprintf("%d rows, checksum %d", tc.Rows, sum.Int64)
	}
	return out
}
