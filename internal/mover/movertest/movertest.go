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
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path"
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
	// Created, when set, dates the next sets (a second apart per sequence)
	// instead of 2026-11-25T12:00:00Z.
	Created time.Time
	// Format10, when set, publishes sets of format 1.0: the tree as one
	// flat list object, as sets written before 2.0 are.
	Format10 bool
	// MTime, when set, is every tree entry's modification time instead
	// of the set's creation time: a directory whose files did not change
	// keeps its list from one set to the next, as backup's does.
	MTime time.Time
	seq   uint64
	gen   int64
}

func (c *Channel) created() time.Time {
	base := c.Created
	if base.IsZero() {
		base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	}
	return base.Add(time.Duration(c.seq) * time.Second)
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
	var es []manifest.ESFile
	for p, b := range spec.ES {
		c.writeES(p, b)
		es = append(es, manifest.ESFile{Path: p, Size: int64(len(b)), SHA256: Sum(b)})
	}
	var tree []manifest.Entry
	for p, b := range spec.Tree {
		ref, err := store.Put(ctx, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		tree = append(tree, manifest.Entry{Path: p, Type: manifest.TypeFile, Mode: 0o640, Size: ref.Size, Object: ref.SHA256})
	}
	return c.publish(es, tree)
}

// PublishEntries publishes a set of the tree entries given, whose objects
// the caller provides (they are not written): a test can name a few
// hundred thousand objects that a source FS serves from memory.
func (c *Channel) PublishEntries(tree []manifest.Entry) string {
	c.t.Helper()
	return c.publish(nil, tree)
}

// PublishFor publishes spec as Publish does, signed by the trusted key,
// but for channel identity ch, in this channel's directory: a set a
// misdirected producer would leave there.
func (c *Channel) PublishFor(ch manifest.Channel, spec Spec) string {
	c.t.Helper()
	ours := c.Ch
	c.writeChannel(ch)
	c.Ch = ch
	defer func() {
		c.Ch = ours
		c.writeChannel(ours)
	}()
	return c.Publish(spec)
}

func (c *Channel) writeChannel(ch manifest.Channel) {
	c.t.Helper()
	if err := os.Remove(filepath.Join(c.Root, manifest.ChannelFileName)); err != nil {
		c.t.Fatal(err)
	}
	if err := manifest.WriteChannel(c.Root, ch); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Channel) writeES(p string, b []byte) {
	full := filepath.Join(c.Root, manifest.ESDirName, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(full, b, 0o640); err != nil {
		c.t.Fatal(err)
	}
}

// publish adds index-N and index.latest to the repository, lists es and
// tree, and publishes a signed set.
func (c *Channel) publish(es []manifest.ESFile, tree []manifest.Entry) string {
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
		Created:  c.created(),
		Producer: manifest.Producer{Host: "test", Program: "movertest"},
	}
	gen := []byte(fmt.Sprintf(`{"generation":%d}`, c.gen))
	for p, b := range map[string][]byte{manifest.ESGenerationFile(c.gen): gen, manifest.ESIndexLatest: manifest.ESIndexLatestContent(c.gen)} {
		c.writeES(p, b)
		es = append(es, manifest.ESFile{Path: p, Size: int64(len(b)), SHA256: Sum(b)})
	}
	sort.Slice(es, func(i, j int) bool { return manifest.ComparePaths(es[i].Path, es[j].Path) < 0 })
	var esBytes int64
	esRef, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
		for _, f := range es {
			esBytes += f.Size
			if err := lw.WriteESFile(f); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Elasticsearch = &manifest.ESSnapshot{Repository: "bcp", Snapshot: fmt.Sprintf("snap-%d", c.seq), UUID: fmt.Sprintf("uuid-%d", c.seq),
		State: "SUCCESS", Indices: []string{"docs"}, Generation: c.gen, Files: esRef, FileCount: int64(len(es)), Bytes: esBytes}
	files := int64(len(tree))
	tree = withDirs(tree)
	sort.Slice(tree, func(i, j int) bool { return manifest.ComparePaths(tree[i].Path, tree[j].Path) < 0 })
	var mt manifest.Tree
	if c.Format10 {
		m.Version = "1.0"
		ref, err := manifest.PutList(ctx, store, func(lw *manifest.ListWriter) error {
			for _, e := range tree {
				e.MTime = m.Created
				if err := lw.WriteEntry(e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		mt = manifest.Tree{Name: "storage", Root: "/var/lib/squirro/storage", List: ref}
	} else {
		tw := manifest.NewTreeWriter(ctx, store)
		for _, e := range tree {
			e.MTime = m.Created
			if !c.MTime.IsZero() {
				e.MTime = c.MTime
			}
			if err := tw.WriteEntry(e); err != nil {
				t.Fatal(err)
			}
		}
		var err error
		if mt, err = tw.Tree("storage", "/var/lib/squirro/storage"); err != nil {
			t.Fatal(err)
		}
	}
	mt.Files = files
	m.Trees = []manifest.Tree{mt}
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

// withDirs adds an entry for every directory the files of tree lie in (a
// file list is a tree: each entry's parent is an earlier dir entry).
func withDirs(tree []manifest.Entry) []manifest.Entry {
	have := map[string]bool{}
	for _, e := range tree {
		have[e.Path] = true
	}
	for _, e := range tree {
		for d := path.Dir(e.Path); d != "." && !have[d]; d = path.Dir(d) {
			have[d] = true
			tree = append(tree, manifest.Entry{Path: d, Type: manifest.TypeDir, Mode: 0o750})
		}
	}
	return tree
}

// Bulk describes a large generated set: Files tree files of FileSize bytes
// and Blobs Elasticsearch blobs of BlobSize bytes, with pseudo-random
// content derived from Seed. It is written straight to disk without fsync
// (test data), so a benchmark can build 100k files or 2 GiB quickly.
type Bulk struct {
	Seed     string
	Files    int
	FileSize int
	Blobs    int
	BlobSize int64
}

// PublishBulk writes a Bulk set and publishes it.
func (c *Channel) PublishBulk(b Bulk) string {
	t := c.t
	t.Helper()
	seed := sha256.Sum256([]byte(b.Seed))
	rng := mrand.NewChaCha8(seed)
	var tree []manifest.Entry
	buf := make([]byte, b.FileSize)
	made := map[string]bool{}
	for i := 0; i < b.Files; i++ {
		_, _ = rng.Read(buf) // ChaCha8 never fails
		sha := Sum(buf)
		dir := filepath.Join(c.Root, manifest.ObjectsDirName, sha[:2])
		if !made[dir] {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				t.Fatal(err)
			}
			made[dir] = true
		}
		if err := os.WriteFile(filepath.Join(dir, sha), buf, 0o640); err != nil {
			t.Fatal(err)
		}
		tree = append(tree, manifest.Entry{Path: fmt.Sprintf("files/%07d", i), Type: manifest.TypeFile, Mode: 0o640, Size: int64(b.FileSize), Object: sha})
	}
	var es []manifest.ESFile
	for i := 0; i < b.Blobs; i++ {
		p := fmt.Sprintf("indices/%s/0/__blob%03d", b.Seed, i)
		full := filepath.Join(c.Root, manifest.ESDirName, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		chunk := make([]byte, 1<<20)
		for left := b.BlobSize; left > 0; {
			n := min(left, int64(len(chunk)))
			_, _ = rng.Read(chunk[:n]) // ChaCha8 never fails
			h.Write(chunk[:n])
			if _, err := f.Write(chunk[:n]); err != nil {
				t.Fatal(err)
			}
			left -= n
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		es = append(es, manifest.ESFile{Path: p, Size: b.BlobSize, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return c.publish(es, tree)
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
