package objects_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

func TestPutOpenHas(t *testing.T) {
	ctx := context.Background()
	s := objects.New(filepath.Join(t.TempDir(), "objects"))
	data := bytes.Repeat([]byte("0123456789"), 300000) // > one copy buffer
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	ref, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ref.SHA256 != want || ref.Size != int64(len(data)) {
		t.Fatalf("ref %+v, want %s", ref, want)
	}
	if p := s.Path(want); p != filepath.Join(s.Root(), want[:2], want) {
		t.Fatalf("path %s", p)
	}
	fi, err := os.Stat(s.Path(want))
	if err != nil || fi.Mode().Perm() != objects.FilePerm {
		t.Fatalf("object file: %v %v", fi, err)
	}
	mtime := fi.ModTime()

	// Storing it again changes nothing and leaves no temporary file.
	path := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(path, data, 0o644))
	if ref2, err := s.PutFile(ctx, path); err != nil || ref2 != ref {
		t.Fatalf("PutFile: %+v %v", ref2, err)
	}
	if fi2, err := os.Stat(s.Path(want)); err != nil || !fi2.ModTime().Equal(mtime) {
		t.Fatal("existing object was rewritten")
	}
	ents, err := os.ReadDir(s.Root())
	must(t, err)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), manifest.TempPrefix) {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}

	if ok, err := s.Has(want); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	if ok, err := s.Has(strings.Repeat("0", 64)); ok || err != nil {
		t.Fatalf("Has(absent) = %v, %v", ok, err)
	}
	f, err := s.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	must(t, err)
	must(t, f.Close())
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	if err := s.Check(ctx, want, ref.Size); err != nil {
		t.Fatal(err)
	}
	var walked []string
	must(t, s.Walk(func(sha string) error { walked = append(walked, sha); return nil }))
	if len(walked) != 1 || walked[0] != want {
		t.Fatalf("Walk = %v", walked)
	}
}

func TestInvalidNames(t *testing.T) {
	s := objects.New(t.TempDir())
	for _, name := range []string{"", "../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("a", 63), strings.Repeat("a", 63) + "/"} {
		if _, err := s.Open(name); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("Open(%q): %v", name, err)
		}
		if _, err := s.Has(name); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("Has(%q): %v", name, err)
		}
		if err := s.Remove(name); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("Remove(%q): %v", name, err)
		}
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	ctx := context.Background()
	s := objects.New(t.TempDir())
	ref, err := s.Put(ctx, strings.NewReader("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	damage(t, s.Path(ref.SHA256), "hello World")
	if err := s.Check(ctx, ref.SHA256, ref.Size); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("Check: %v", err)
	}
}

func TestSymlinkedObjectRefused(t *testing.T) {
	s := objects.New(t.TempDir())
	sha := strings.Repeat("ab", 32)
	must(t, os.MkdirAll(filepath.Dir(s.Path(sha)), 0o750))
	must(t, os.Symlink("/etc/passwd", s.Path(sha)))
	if _, err := s.Open(sha); err == nil {
		t.Fatal("opened a symlinked object")
	}
	if _, err := s.Has(sha); err == nil {
		t.Fatal("Has accepted a symlinked object")
	}
}

func TestPutFailureLeavesNothing(t *testing.T) {
	s := objects.New(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled context: %v", err)
	}
	broken := io.MultiReader(strings.NewReader("part"), errReader{})
	if _, err := s.Put(context.Background(), broken); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	ents, err := os.ReadDir(s.Root())
	must(t, err)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fs.ErrClosed }

// PutList streams a list into the store without holding it.
func TestPutList(t *testing.T) {
	s := objects.New(t.TempDir())
	ref, err := manifest.PutList(context.Background(), s, func(lw *manifest.ListWriter) error {
		return lw.WriteESFile(manifest.ESFile{Path: "index-1", Size: 3, SHA256: strings.Repeat("0", 64)})
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Open(ref.SHA256)
	must(t, err)
	defer f.Close()
	n := 0
	if err := manifest.ReadESFiles(f, func(manifest.ESFile) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("read back %d, %v", n, err)
	}
	_, err = manifest.PutList(context.Background(), s, func(lw *manifest.ListWriter) error {
		return lw.WriteESFile(manifest.ESFile{Path: "../x", SHA256: strings.Repeat("0", 64)})
	})
	if !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("bad list stored: %v", err)
	}
}

func TestPutRepairsDamagedObject(t *testing.T) {
	ctx := context.Background()
	s := objects.New(t.TempDir())
	ref, err := s.Put(ctx, strings.NewReader("hello world"))
	if err != nil {
		t.Fatal(err)
	}
	damage(t, s.Path(ref.SHA256), "hello") // truncated
	if _, err := s.Put(ctx, strings.NewReader("hello world")); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx, ref.SHA256, ref.Size); err != nil {
		t.Fatalf("not repaired: %v", err)
	}
}

func TestSymlinkedFanOutDirRefused(t *testing.T) {
	ctx := context.Background()
	outside := objects.New(t.TempDir())
	ref, err := outside.Put(ctx, strings.NewReader("secret"))
	if err != nil {
		t.Fatal(err)
	}
	s := objects.New(t.TempDir())
	must(t, os.MkdirAll(s.Root(), 0o750))
	must(t, os.Symlink(filepath.Dir(outside.Path(ref.SHA256)), filepath.Join(s.Root(), ref.SHA256[:2])))
	if f, err := s.Open(ref.SHA256); err == nil {
		_ = f.Close()
		t.Fatal("opened an object through a symlinked directory outside the store")
	}
	if _, err := s.Stat(ref.SHA256); err == nil {
		t.Fatal("Stat followed a symlinked directory outside the store")
	}
}

// damage replaces an object's content (objects are read-only) and checks
// that it took.
func damage(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.Chmod(path, 0o600))
	must(t, os.WriteFile(path, []byte(content), 0o600))
	if b, err := os.ReadFile(path); err != nil || string(b) != content {
		t.Fatalf("damage %s: read back %q, %v", path, b, err)
	}
}

// must fails the test when a setup step failed (the manifest module stands
// alone, so it has its own copy of internal/testkit.Must).
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
