package manifest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

var testChannel = manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}

// key is a signing key made by the real ssh-keygen.
type key struct {
	File   string
	Pub    string // authorized_keys line
	Signer ssh.Signer
}

func newKey(t testing.TB, typ string) key {
	t.Helper()
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatalf("ssh-keygen is required (apt-get install openssh-client): %v", err)
	}
	file := filepath.Join(t.TempDir(), "id_"+typ)
	args := []string{"-q", "-t", typ, "-N", "", "-C", "test-" + typ, "-f", file}
	if typ == "rsa" {
		args = append(args, "-b", "2048")
	}
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(file + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sshsig.LoadSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	return key{File: file, Pub: strings.TrimSpace(string(pub)), Signer: s}
}

func allowed(t testing.TB, lines ...string) *sshsig.AllowedSigners {
	t.Helper()
	a, err := sshsig.ParseAllowedSigners(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func allowedLine(k key) string {
	return `prod-backup namespaces="` + manifest.Namespace + `" ` + k.Pub
}

// world is a channel with one published set whose parts are real files.
type world struct {
	Root     string
	Layout   manifest.Layout
	Store    *objects.Store
	Key      key
	Allowed  *sshsig.AllowedSigners
	Manifest *manifest.Manifest
	SetID    string
	Big      manifest.Ref // the MySQL dump object
	Files    map[string]manifest.Ref
	ESFiles  []manifest.ESFile
	Entries  []manifest.Entry // of the tree, in walk order
}

// dirList returns the reference of the list of directory dir of the
// world's tree (the list Walk reads right after dir's entry).
func (w *world) dirList(t testing.TB, dir string) manifest.Ref {
	t.Helper()
	var last string
	lists := map[string]manifest.Ref{}
	r := manifest.TreeReader{
		Open: func(ref manifest.Ref) (io.ReadCloser, error) { return w.Store.Open(ref.SHA256) },
		List: func(ref manifest.Ref) error { lists[last] = ref; return nil },
	}
	err := r.Walk(context.Background(), w.Manifest.Trees[0], func(e manifest.Entry) error {
		if e.Type == manifest.TypeDir {
			last = e.Path
		}
		return nil
	})
	if err != nil || lists[dir].SHA256 == "" {
		t.Fatalf("list of %q: %v (%v)", dir, err, lists)
	}
	return lists[dir]
}

var created0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// newWorld builds a channel with a MySQL object of bigSize random bytes, a
// tree of a few files and a symlink, and an es/ repository of a few files,
// and publishes set seq.
func newWorld(t *testing.T, k key, bigSize int) *world {
	t.Helper()
	root := filepath.Join(t.TempDir(), "prod-to-bcp")
	w := &world{Root: root, Layout: manifest.Layout{Root: root}, Key: k, Files: map[string]manifest.Ref{}}
	if err := manifest.WriteChannel(root, testChannel); err != nil {
		t.Fatal(err)
	}
	w.Store = objects.New(w.Layout.ObjectsDir())
	ctx := context.Background()
	big := make([]byte, bigSize)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.Big, err = w.Store.Put(ctx, bytes.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	// A tree: files (two with the same content), a dir and a symlink.
	contents := map[string]string{"a.txt": "alpha\n", "dir/b.bin": "bravo", "dir/c.bin": "bravo", "z": ""}
	for p, c := range contents {
		ref, err := w.Store.Put(ctx, strings.NewReader(c))
		if err != nil {
			t.Fatal(err)
		}
		w.Files[p] = ref
	}
	mt := created0.Add(-time.Hour)
	entries := []manifest.Entry{
		{Path: "a.txt", Type: manifest.TypeFile, Mode: 0o644, MTime: mt, Size: w.Files["a.txt"].Size, Object: w.Files["a.txt"].SHA256},
		{Path: "dir", Type: manifest.TypeDir, Mode: 0o755, MTime: mt},
		{Path: "dir/b.bin", Type: manifest.TypeFile, Mode: 0o600, MTime: mt, Size: 5, Object: w.Files["dir/b.bin"].SHA256},
		{Path: "dir/c.bin", Type: manifest.TypeFile, Mode: 0o600, MTime: mt, Size: 5, Object: w.Files["dir/c.bin"].SHA256},
		{Path: "dir/link", Type: manifest.TypeSymlink, Mode: 0o777, MTime: mt, Target: "../a.txt"},
		{Path: "z", Type: manifest.TypeFile, Mode: 0o644, MTime: mt, Size: 0, Object: w.Files["z"].SHA256},
	}
	w.Entries = entries
	tw := manifest.NewTreeWriter(ctx, w.Store)
	for _, e := range entries {
		if err := tw.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := tw.Tree("storage", "/var/lib/squirro/storage")
	if err != nil {
		t.Fatal(err)
	}
	// An Elasticsearch repository.
	es := map[string]string{"index-3": "gen3", "index.latest": "\x00\x00\x00\x03", "indices/x1/0/__a": "segment data", "snap-u1.dat": "snap"}
	for _, p := range []string{"index-3", "index.latest", "indices/x1/0/__a", "snap-u1.dat"} {
		full := filepath.Join(w.Layout.ESDir(), filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(es[p]), 0o640); err != nil {
			t.Fatal(err)
		}
		ref, _ := objects.New(t.TempDir()).Put(ctx, strings.NewReader(es[p]))
		w.ESFiles = append(w.ESFiles, manifest.ESFile{Path: p, Size: ref.Size, SHA256: ref.SHA256})
	}
	esList, err := manifest.PutList(ctx, w.Store, func(lw *manifest.ListWriter) error {
		for _, f := range w.ESFiles {
			if err := lw.WriteESFile(f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Manifest = &manifest.Manifest{
		Channel:  testChannel,
		Sequence: 1,
		Created:  created0,
		Producer: manifest.Producer{Host: "prod-leader", Program: "backup", Version: "test"},
		Elasticsearch: &manifest.ESSnapshot{
			Repository: "bcp", Snapshot: "bcp-1", UUID: "u1", State: "SUCCESS",
			Indices: []string{"x1"}, Generation: 3, Files: esList, FileCount: 4, Bytes: 30,
		},
		MySQL: &manifest.MySQLDump{Object: w.Big, Compression: manifest.CompressionZstd,
			Databases: []string{"squirro"}, Tables: []manifest.TableCount{{Database: "squirro", Table: "projects", Rows: 3}}},
		Trees: []manifest.Tree{tree},
	}
	w.Allowed = allowed(t, allowedLine(k))
	if w.SetID, err = manifest.Publish(ctx, w.Layout, w.Manifest, k.Signer); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) opts() manifest.VerifyOptions {
	return manifest.VerifyOptions{Root: w.Root, AllowedSigners: w.Allowed, Expect: testChannel}
}

// publish publishes another set with the same content and sequence seq.
func (w *world) publish(t *testing.T, seq uint64, signer ssh.Signer) string {
	t.Helper()
	m := *w.Manifest
	m.Sequence = seq
	m.Created = created0.Add(time.Duration(seq) * time.Minute)
	id, err := manifest.Publish(context.Background(), w.Layout, &m, signer)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
