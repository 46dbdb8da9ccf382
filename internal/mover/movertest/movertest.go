// Package movertest builds test channels with the manifest package's own
// API, the way backup builds them: objects, a fake Elasticsearch repository
// (data blobs, index-N, index.latest) and sets signed with a throw-away
// ed25519 key, plus the allowed_signers file that trusts it. For tests of
// movers and of the hooks that check what a mover moved.
package movertest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// Channel is a test channel built with the manifest package's own API, the
// way backup builds one: objects, a fake Elasticsearch repository, signed
// sets.
type Channel struct {
	t       testing.TB
	Root    string
	Signer  ssh.Signer
	Allowed string // allowed_signers file trusting Signer
	Ch      manifest.Channel
	seq     uint64
	gen     int64
}

// Identity is the test channel identity.
func Identity() manifest.Channel {
	return manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}
}

// New makes a channel at root.
func New(t testing.TB, root string) *Channel {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	c := &Channel{t: t, Root: root, Signer: signer, Ch: Identity()}
	if err := manifest.WriteChannel(root, c.Ch); err != nil {
		t.Fatal(err)
	}
	c.Allowed = filepath.Join(t.TempDir(), "allowed_signers")
	line := fmt.Sprintf("prod-backup namespaces=%q %s", manifest.Namespace, ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.WriteFile(c.Allowed, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// AllowedSigners loads Allowed.
func (c *Channel) AllowedSigners() *sshsig.AllowedSigners {
	c.t.Helper()
	a, err := sshsig.LoadAllowedSigners(c.Allowed)
	if err != nil {
		c.t.Fatal(err)
	}
	return a
}

// Content makes n deterministic bytes for a name.
func Content(name string, n int) []byte {
	out := make([]byte, 0, n+32)
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", name, i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// Spec describes one set: tree files (path -> content) and
// Elasticsearch data blobs (path below es/ -> content).
type Spec struct {
	Tree map[string][]byte
	ES   map[string][]byte
}

// Publish writes the spec's files and a signed set and returns its id.
func (c *Channel) Publish(spec Spec) string {
	t := c.t
	t.Helper()
	ctx := context.Background()
	l := manifest.Layout{Root: c.Root}
	store := objects.New(l.ObjectsDir())
	c.seq++
	c.gen++
	m := &manifest.Manifest{
		Channel:  c.Ch,
		Sequence: c.seq,
		Created:  time.Date(2026, 11, 25, 12, 0, int(c.seq), 0, time.UTC),
		Producer: manifest.Producer{Host: "test", Program: "mover_test"},
	}
	// Elasticsearch: data blobs as ES writes them, then index-N and
	// index.latest, all listed.
	esFiles := map[string][]byte{}
	for p, b := range spec.ES {
		esFiles[p] = b
	}
	esFiles[fmt.Sprintf("index-%d", c.gen)] = []byte(fmt.Sprintf(`{"generation":%d}`, c.gen))
	var latest [8]byte
	binary.BigEndian.PutUint64(latest[:], uint64(c.gen))
	esFiles["index.latest"] = latest[:]
	paths := make([]string, 0, len(esFiles))
	for p := range esFiles {
		paths = append(paths, p)
		full := filepath.Join(l.ESDir(), filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, esFiles[p], 0o640); err != nil {
			t.Fatal(err)
		}
	}
	sort.Slice(paths, func(i, j int) bool { return manifest.ComparePaths(paths[i], paths[j]) < 0 })
	var esBytes int64
	esRef, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, p := range paths {
			s := sha256.Sum256(esFiles[p])
			esBytes += int64(len(esFiles[p]))
			if err := lw.WriteESFile(manifest.ESFile{Path: p, Size: int64(len(esFiles[p])), SHA256: hex.EncodeToString(s[:])}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Elasticsearch = &manifest.ESSnapshot{Repository: "bcp", Snapshot: fmt.Sprintf("snap-%d", c.seq), UUID: fmt.Sprintf("uuid-%d", c.seq),
		State: "SUCCESS", Indices: []string{"docs"}, Generation: c.gen, Files: esRef, FileCount: int64(len(paths)), Bytes: esBytes}
	// A tree whose files are objects.
	tpaths := make([]string, 0, len(spec.Tree))
	for p := range spec.Tree {
		tpaths = append(tpaths, p)
	}
	sort.Slice(tpaths, func(i, j int) bool { return manifest.ComparePaths(tpaths[i], tpaths[j]) < 0 })
	var tbytes int64
	listRef, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, p := range tpaths {
			ref, err := store.Put(ctx, bytes.NewReader(spec.Tree[p]))
			if err != nil {
				return err
			}
			tbytes += ref.Size
			if err := lw.WriteEntry(manifest.Entry{Path: p, Type: manifest.TypeFile, Mode: 0o640, MTime: m.Created, Size: ref.Size, Object: ref.SHA256}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Trees = []manifest.Tree{{Name: "storage", Root: "/var/lib/squirro/storage", List: listRef, Files: int64(len(tpaths)), Bytes: tbytes}}
	dump, err := store.Put(ctx, strings.NewReader(fmt.Sprintf("-- dump %d\n", c.seq)))
	if err != nil {
		t.Fatal(err)
	}
	m.MySQL = &manifest.MySQLDump{Object: dump, Compression: manifest.CompressionNone, Databases: []string{"squirro"}}
	id, err := manifest.Publish(ctx, l, m, c.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Small is a set with a few files of every kind; salt makes its files
// differ from another set's.
func Small(salt string, n int) Spec {
	s := Spec{Tree: map[string][]byte{}, ES: map[string][]byte{}}
	for i := 0; i < n; i++ {
		s.Tree[fmt.Sprintf("docs/%s-%d.bin", salt, i)] = Content(salt+"tree"+fmt.Sprint(i), 100+i*37)
		s.ES[fmt.Sprintf("indices/idx-%s/0/__%d", salt, i)] = Content(salt+"es"+fmt.Sprint(i), 50+i*101)
	}
	s.Tree["big/blob.bin"] = Content(salt+"big", 3<<20+17) // above 1 MiB: the streaming path
	s.ES[fmt.Sprintf("snap-%s.dat", salt)] = Content(salt+"snap", 200)
	return s
}

// Sum is the hex SHA-256 of b.
func Sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
