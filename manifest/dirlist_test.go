package manifest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/squirro-bcp/bcp/manifest"
)

// memStore is a Putter that keeps objects in memory and counts them.
type memStore map[string][]byte

func (m memStore) Put(_ context.Context, r io.Reader) (manifest.Ref, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return manifest.Ref{}, err
	}
	sum := sha256.Sum256(data)
	ref := manifest.Ref{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	m[ref.SHA256] = data
	return ref, nil
}

func (m memStore) reader() manifest.TreeReader {
	return manifest.TreeReader{Open: func(ref manifest.Ref) (io.ReadCloser, error) {
		d, ok := m[ref.SHA256]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return io.NopCloser(bytes.NewReader(d)), nil
	}}
}

func writeTree(t testing.TB, st manifest.Putter, entries []manifest.Entry) manifest.Tree {
	t.Helper()
	tw := manifest.NewTreeWriter(context.Background(), st)
	for _, e := range entries {
		if err := tw.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := tw.Tree("storage", "/srv")
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func readTree(t testing.TB, r manifest.TreeReader, tree manifest.Tree) []manifest.Entry {
	t.Helper()
	var got []manifest.Entry
	if err := r.Walk(context.Background(), tree, func(e manifest.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// bigTree is n files in directories of per files, two levels deep.
func bigTree(n, per int) []manifest.Entry {
	obj := strings.Repeat("9f", 32)
	var es []manifest.Entry
	for i := 0; i < n; i++ {
		if i%(per*10) == 0 {
			es = append(es, manifest.Entry{Path: fmt.Sprintf("d%04d", i/(per*10)), Type: manifest.TypeDir, Mode: 0o750, MTime: created0})
		}
		if i%per == 0 {
			es = append(es, manifest.Entry{Path: fmt.Sprintf("d%04d/s%04d", i/(per*10), i/per), Type: manifest.TypeDir, Mode: 0o750, MTime: created0})
		}
		es = append(es, manifest.Entry{Path: fmt.Sprintf("d%04d/s%04d/f%08d.pdf", i/(per*10), i/per, i), Type: manifest.TypeFile,
			Mode: 0o640, MTime: created0, Size: int64(i), Object: obj})
	}
	return es
}

// A tree written per directory reads back as the same entries in the same
// (walk) order; unchanged, it gives the same objects; one changed file
// adds only the lists on its path.
func TestTreeRoundTripAndSharing(t *testing.T) {
	entries := append(sampleEntries(), bigTree(2000, 100)...) // a... before d...
	st := memStore{}
	tree := writeTree(t, st, entries)
	got := readTree(t, st.reader(), tree)
	if len(got) != len(entries) {
		t.Fatalf("read %d entries, wrote %d", len(got), len(entries))
	}
	for i := range got {
		if got[i].Path != entries[i].Path || !got[i].MTime.Equal(entries[i].MTime) || got[i].Object != entries[i].Object || got[i].Mode != entries[i].Mode {
			t.Fatalf("entry %d: %+v, wrote %+v", i, got[i], entries[i])
		}
	}
	if tree.Files != 2002 || tree.Dirs != 2+20+1 || int64(len(st)) != tree.Lists() {
		t.Fatalf("tree %+v, %d objects", tree, len(st))
	}

	again := memStore{}
	if tree2 := writeTree(t, again, entries); tree2 != tree {
		t.Fatalf("same entries, another tree: %+v vs %+v", tree2, tree)
	}
	entries[len(entries)-1].Size++
	tree3 := writeTree(t, again, entries)
	if tree3.Dir == tree.Dir {
		t.Fatal("a changed file did not change the root list")
	}
	// the root, d0001, d0001/s0019: three new lists
	if n := len(again) - len(st); n != 3 {
		t.Fatalf("one changed file added %d lists, want 3 (the directories on its path)", n)
	}
}

// A 1.x tree (one list) reads through the same Walk, its hash checked.
func TestTree1xStillRead(t *testing.T) {
	st := memStore{}
	entries := sampleEntries()
	ref, err := manifest.PutList(context.Background(), st, func(lw *manifest.ListWriter) error {
		for _, e := range entries {
			if err := lw.WriteEntry(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tree := manifest.Tree{Name: "storage", List: ref}
	if got := readTree(t, st.reader(), tree); len(got) != len(entries) || got[3].Path != "a.b" {
		t.Fatalf("1.x tree read %+v", got)
	}
	st[ref.SHA256] = bytes.Replace(st[ref.SHA256], []byte(`"uid":999`), []byte(`"uid":998`), 1)
	err = st.reader().Walk(context.Background(), tree, func(manifest.Entry) error { return nil })
	if !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("changed 1.x list: %v", err)
	}
}

// Directory lists from an untrusted place: each problem is refused with
// an error naming the directory, never a panic.
func TestTreeRejects(t *testing.T) {
	obj := strings.Repeat("ab", 32)
	line := func(name, typ, extra string) string {
		return fmt.Sprintf(`{"name":%q,"type":%q,"mode":420,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z"%s}`+"\n", name, typ, extra)
	}
	file := func(name string) string { return line(name, "file", `,"size":1,"object":"`+obj+`"`) }
	zst := func(s string) []byte {
		enc, _ := zstd.NewWriter(nil)
		return enc.EncodeAll([]byte(s), nil)
	}
	tests := []struct {
		name  string
		root  []byte
		want  error
		names string
	}{
		{"good", zst(file("a") + file("b")), nil, ""},
		{"not zstd", []byte(file("a")), manifest.ErrInvalid, "zstd"},
		{"unsorted", zst(file("b") + file("a")), manifest.ErrInvalid, "strictly increasing"},
		{"duplicate", zst(file("a") + file("a")), manifest.ErrInvalid, "strictly increasing"},
		{"name with a slash", zst(file("a/b")), manifest.ErrInvalid, "one path element"},
		{"dot dot", zst(file("..")), manifest.ErrInvalid, ".."},
		{"dir without its list", zst(line("d", "dir", "")), manifest.ErrInvalid, "names its list"},
		{"symlink with a list", zst(line("l", "symlink", `,"target":"x","tree":{"sha256":"`+obj+`","size":1}`)), manifest.ErrInvalid, "names its list"},
		{"subdirectory list missing", zst(line("d", "dir", `,"tree":{"sha256":"`+obj+`","size":1}`)), manifest.ErrIncomplete, `directory "d"`},
		{"unknown field", zst(line("a", "file", `,"size":1,"object":"`+obj+`","extra":1`)), manifest.ErrInvalid, "extra"},
		{"no newline at the end", zst(strings.TrimSuffix(file("a"), "\n")), manifest.ErrInvalid, "truncated"},
		{"a path field of 1.x", zst(`{"path":"a","type":"file"}` + "\n"), manifest.ErrInvalid, "path"},
		{"blank line", zst(file("a") + "\n" + file("b")), manifest.ErrInvalid, "line 2"},
		{"two documents on a line", zst(strings.TrimSuffix(file("a"), "\n") + " " + file("b")), manifest.ErrInvalid, "after the document"},
		{"a document over two lines", zst(strings.Replace(file("a"), `,"type"`, "\n"+`,"type"`, 1) + file("b")), manifest.ErrInvalid, "line 1"},
		{"spaces around a document", zst(" " + strings.TrimSuffix(file("a"), "\n") + " \n" + file("b")), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := memStore{}
			ref, _ := st.Put(context.Background(), bytes.NewReader(tt.root))
			err := st.reader().Walk(context.Background(), manifest.Tree{Name: "storage", Dir: ref}, func(manifest.Entry) error { return nil })
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Walk: %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %q does not name %q", err, tt.names)
			}
		})
	}
	// a list whose content does not match its reference
	st := memStore{}
	ref, _ := st.Put(context.Background(), bytes.NewReader(zst(file("a"))))
	st[ref.SHA256] = zst(file("b"))
	err := st.reader().Walk(context.Background(), manifest.Tree{Name: "storage", Dir: ref}, func(manifest.Entry) error { return nil })
	if !errors.Is(err, manifest.ErrCorrupt) || !strings.Contains(err.Error(), "root directory") {
		t.Fatalf("changed list: %v", err)
	}
}
