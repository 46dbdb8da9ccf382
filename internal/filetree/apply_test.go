package filetree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// memObjects is an object store in memory, filled by snapshot.
type memObjects map[string][]byte

func (m memObjects) Open(sha string) (io.ReadCloser, error) {
	b, ok := m[sha]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// snapshot lists dir as a set's entries would (sorted, parents first) and
// stores file contents in objs. It is the test's own stand-in for capture.
func snapshot(t *testing.T, dir string, objs memObjects) []manifest.Entry {
	t.Helper()
	var out []manifest.Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := manifest.Entry{Path: filepath.ToSlash(rel), Mode: uint32(fi.Mode().Perm()), MTime: fi.ModTime().UTC()}
		switch {
		case fi.IsDir():
			e.Type = manifest.TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = manifest.TypeSymlink
			e.Target, _ = os.Readlink(p)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			e.Type, e.Size, e.Object = manifest.TypeFile, int64(len(b)), hex.EncodeToString(sum[:])
			objs[e.Object] = b
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return manifest.ComparePaths(out[i].Path, out[j].Path) < 0 })
	return out
}

func entries(es []manifest.Entry) func(func(manifest.Entry) error) error {
	return func(fn func(manifest.Entry) error) error {
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
}

func write(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// changeLog is what ApplyStats.Changes says was applied.
type changeLog []Change

// counter counts what Apply reports as progress.
type counter struct {
	manifest.NoProgress
	n int64
}

func (c *counter) Add(n int64) { c.n += n }

func (c changeLog) strings() []string {
	var out []string
	for _, ch := range c {
		if ch.Type == manifest.TypeDir && ch.Op != OpRemove {
			continue
		}
		out = append(out, ch.Op+" "+ch.Path)
	}
	sort.Strings(out)
	return out
}

// targets are the backends the suite runs against; each returns the Target
// and the local directory it writes to (the SFTP server runs on this machine).
func targets(t *testing.T) map[string]func(t *testing.T, dir string) Target {
	return map[string]func(t *testing.T, dir string) Target{
		"local": func(t *testing.T, dir string) Target {
			lt, err := NewLocalTarget(dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { lt.Close() })
			return lt
		},
		"sftp":   func(t *testing.T, dir string) Target { return sshTarget(t, testenv.SSHD(t), "sftp", dir) },
		"helper": func(t *testing.T, dir string) Target { return sshTarget(t, testenv.SSHD(t), "helper", dir) },
	}
}

// sshTarget is a Target at dir reached through srv: plain SFTP ("sftp")
// or this test binary playing transfer serve ("helper").
func sshTarget(t *testing.T, srv *testenv.SSHServer, kind, dir string) Target {
	t.Helper()
	c, err := sshx.Dial(context.Background(), srv.Config())
	testkit.Must(t, err)
	t.Cleanup(func() { c.Close() })
	if kind == "sftp" {
		sc, err := c.SFTP()
		testkit.Must(t, err)
		t.Cleanup(func() { sc.Close() })
		return NewSFTPTarget(sc, dir)
	}
	bin, err := filepath.Abs(os.Args[0])
	testkit.Must(t, err)
	h, err := remote.Start(context.Background(), c.Client, bin+" serve "+sshx.Quote(dir))
	testkit.Must(t, err)
	t.Cleanup(func() { h.Close() })
	return NewHelperTarget(h, "helper:"+dir)
}

func TestApply(t *testing.T) {
	for name, mk := range targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "storage")
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			write(t, filepath.Join(src, "a.txt"), "alpha", t0)
			write(t, filepath.Join(src, "docs/b.pdf"), "bravo", t0)
			write(t, filepath.Join(src, "docs/deep/c.bin"), "charlie", t0)
			write(t, filepath.Join(src, "gone/d.txt"), "delta", t0)
			write(t, filepath.Join(src, "becomes-dir"), "echo", t0)
			if err := os.Symlink("docs/b.pdf", filepath.Join(src, "link")); err != nil {
				t.Fatal(err)
			}
			exclude := []string{"cache", "*.lock"}
			tgt := mk(t, dst)
			objs := memObjects{}

			// first cycle: empty target, plus an excluded path that must survive
			write(t, filepath.Join(dst, "cache/x"), "keep me", t0)
			write(t, filepath.Join(dst, "docs/run.lock"), "keep me too", t0)
			set1 := snapshot(t, src, objs)
			if _, err := Apply(ctx, ApplyOptions{Target: tgt, Entries: entries(set1), Objects: objs, Exclude: exclude}); err != nil {
				t.Fatal(err)
			}
			isExcluded := func(rel string) bool { return Excluded(rel, exclude) }
			if got, want := testkit.TreeTimes(t, dst, isExcluded), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
				t.Fatalf("after cycle 1:\n got %v\nwant %v", got, want)
			}

			// second cycle: add, change, remove, type changes, unchanged
			t1 := t0.Add(time.Hour)
			write(t, filepath.Join(src, "new/e.txt"), "echo2", t1)
			write(t, filepath.Join(src, "docs/b.pdf"), "bravo, changed", t1)
			testkit.Must(t, os.RemoveAll(filepath.Join(src, "gone")))
			testkit.Must(t, os.Remove(filepath.Join(src, "becomes-dir")))
			write(t, filepath.Join(src, "becomes-dir/f.txt"), "foxtrot", t1)
			testkit.Must(t, os.Remove(filepath.Join(src, "link")))
			testkit.Must(t, os.Symlink("a.txt", filepath.Join(src, "link")))
			set2 := snapshot(t, src, objs)

			// a dry run reports and changes nothing
			before := testkit.TreeTimes(t, dst, nil)
			var dryCount counter
			dryStats, err := Apply(ctx, ApplyOptions{Target: tgt, Entries: entries(set2), Objects: objs, Exclude: exclude, DryRun: true, Progress: &dryCount})
			if err != nil {
				t.Fatal(err)
			}
			dry := changeLog(dryStats.Changes)
			if dryCount.n != int64(len(dry)) {
				t.Fatalf("dry run: progress counted %d changes, stats list %d", dryCount.n, len(dry))
			}
			if after := testkit.TreeTimes(t, dst, nil); !mapsEqual(before, after) {
				t.Fatal("dry run changed the target")
			}
			st, err := Apply(ctx, ApplyOptions{Target: tgt, Entries: entries(set2), Objects: objs, Exclude: exclude})
			if err != nil {
				t.Fatal(err)
			}
			log := changeLog(st.Changes)
			want := []string{
				"add becomes-dir/f.txt", "add new/e.txt", "remove gone", "remove gone/d.txt",
				"replace docs/b.pdf", "replace link",
			}
			if got := log.strings(); !slices.Equal(got, want) {
				t.Fatalf("changes:\n got %v\nwant %v", got, want)
			}
			if !slices.Equal(dry.strings(), want) {
				t.Fatalf("dry run reported %v, want %v", dry.strings(), want)
			}
			if st.Unchanged < 3 { // a.txt, docs/deep/c.bin, and their dirs
				t.Fatalf("unchanged = %d", st.Unchanged)
			}
			if got, want := testkit.TreeTimes(t, dst, isExcluded), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
				t.Fatalf("after cycle 2:\n got %v\nwant %v", got, want)
			}
			for _, p := range []string{"cache/x", "docs/run.lock"} {
				if _, err := os.Stat(filepath.Join(dst, p)); err != nil {
					t.Fatalf("excluded %s: %v", p, err)
				}
			}
			if ents, _ := os.ReadDir(filepath.Join(dst, "docs")); slices.ContainsFunc(ents, func(d fs.DirEntry) bool { return strings.HasPrefix(d.Name(), ".tmp-") }) {
				t.Fatal("temporary files left behind")
			}
		})
	}
}

func TestApplyRefuses(t *testing.T) {
	dst := t.TempDir()
	tgt, err := NewLocalTarget(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer tgt.Close()
	sum := sha256.Sum256([]byte("right"))
	sha := hex.EncodeToString(sum[:])
	tests := []struct {
		name string
		ents []manifest.Entry
		objs memObjects
		want error
	}{
		{"object content does not match", []manifest.Entry{{Path: "f", Type: manifest.TypeFile, Mode: 0o644, Size: 5, Object: sha}}, memObjects{sha: []byte("wrong")}, ErrObjectMismatch},
		{"write through a set symlink", []manifest.Entry{{Path: "l", Type: manifest.TypeSymlink, Target: "/etc"}, {Path: "l/passwd", Type: manifest.TypeFile, Size: 5, Object: sha}}, memObjects{sha: []byte("right")}, ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(context.Background(), ApplyOptions{Target: tgt, Entries: entries(tt.ents), Objects: tt.objs})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dst, "f")); err == nil {
				t.Fatal("a mismatching file was put in place")
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestApplyNeverEscapes: whatever the target already holds (a symlink left
// by an earlier set, or put there by someone else), no entry of a set is
// created, replaced or removed outside the target's root, on every target.
func TestApplyNeverEscapes(t *testing.T) {
	sum := sha256.Sum256([]byte("pwned"))
	sha := hex.EncodeToString(sum[:])
	objs := memObjects{sha: []byte("pwned")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dirE := func(p string) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.TypeDir, Mode: 0o750, MTime: t0}
	}
	fileE := func(p string) manifest.Entry {
		return manifest.Entry{Path: p, Type: manifest.TypeFile, Mode: 0o600, MTime: t0, Size: 5, Object: sha}
	}
	tests := []struct {
		name string
		ents []manifest.Entry
		want error // nil: applies, and the link is replaced by what the set has
	}{
		{"file below a link the target holds, no entry for its parent", []manifest.Entry{fileE("evil/pwned")}, ErrUnsafePath},
		{"directory where the target holds a link", []manifest.Entry{dirE("evil"), fileE("evil/pwned")}, nil},
		{"file where the target holds a link", []manifest.Entry{fileE("evil")}, nil},
		{"nothing: the link is removed, not what it points to", nil, nil},
	}
	for name, mk := range targets(t) {
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				outside := t.TempDir()
				write(t, filepath.Join(outside, "victim"), "precious", t0)
				dst := filepath.Join(t.TempDir(), "storage")
				testkit.Must(t, os.MkdirAll(dst, 0o750))
				testkit.Must(t, os.Symlink(outside, filepath.Join(dst, "evil")))
				tgt := mk(t, dst)
				_, err := Apply(context.Background(), ApplyOptions{Target: tgt, Entries: entries(tt.ents), Objects: objs})
				if !errors.Is(err, tt.want) {
					t.Fatalf("Apply: %v, want %v", err, tt.want)
				}
				ents, _ := os.ReadDir(outside)
				if len(ents) != 1 || ents[0].Name() != "victim" {
					t.Fatalf("outside the target now holds %v", ents)
				}
				if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "precious" {
					t.Fatalf("outside file changed: %q, %v", b, err)
				}
				if tt.want != nil {
					return
				}
				fi, err := os.Lstat(filepath.Join(dst, "evil"))
				switch {
				case len(tt.ents) == 0:
					if err == nil {
						t.Fatal("the link is still there")
					}
				case err != nil:
					t.Fatal(err)
				case fi.Mode()&fs.ModeSymlink != 0:
					t.Fatal("the link is still there")
				}
			})
		}
	}
}

// TestApplyRemovesStaleTemporaries: a temporary file that a run cut short
// left behind (a dropped SFTP connection, a kill) is removed by the next
// run; a dry run lists it and leaves it.
func TestApplyRemovesStaleTemporaries(t *testing.T) {
	sum := sha256.Sum256([]byte("data"))
	sha := hex.EncodeToString(sum[:])
	objs := memObjects{sha: []byte("data")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ents := []manifest.Entry{
		{Path: "d", Type: manifest.TypeDir, Mode: 0o750, MTime: t0},
		{Path: "d/f", Type: manifest.TypeFile, Mode: 0o600, MTime: t0, Size: 4, Object: sha},
	}
	for name, mk := range targets(t) {
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "storage")
			stale := []string{".tmp-bcp-x-0123456789ab", "d/.tmp-bcp-f-ba9876543210"}
			for _, p := range stale {
				write(t, filepath.Join(dst, p), "half a file", t0)
			}
			tgt := mk(t, dst)
			st, err := Apply(context.Background(), ApplyOptions{Target: tgt, Entries: entries(ents), Objects: objs, DryRun: true})
			if err != nil || len(st.Stale) != 2 {
				t.Fatalf("dry run: %v, stale %v", err, st.Stale)
			}
			if _, err := os.Stat(filepath.Join(dst, stale[1])); err != nil {
				t.Fatal("the dry run removed a temporary file")
			}
			if _, err := Apply(context.Background(), ApplyOptions{Target: tgt, Entries: entries(ents), Objects: objs}); err != nil {
				t.Fatal(err)
			}
			for _, p := range stale {
				if _, err := os.Lstat(filepath.Join(dst, p)); err == nil {
					t.Errorf("%s is still there", p)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dst, "d/f")); err != nil || string(b) != "data" {
				t.Fatalf("d/f: %q %v", b, err)
			}
		})
	}
}

// TestApplyNoSpace: a set that does not fit on the target's file system is
// refused by CheckSpace before anything is written, and a write that fails
// for want of space says so - also over SFTP, whose server reports only
// "Failure".
func TestApplyNoSpace(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 6<<20)
	sum := sha256.Sum256(big)
	sha := hex.EncodeToString(sum[:])
	objs := memObjects{sha: big}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ents := []manifest.Entry{{Path: "big", Type: manifest.TypeFile, Mode: 0o600, MTime: t0, Size: int64(len(big)), Object: sha}}
	for name, mk := range targets(t) {
		t.Run(name, func(t *testing.T) {
			dst := testenv.Tmpfs(t, "4m")
			tgt := mk(t, dst)
			opts := ApplyOptions{Target: tgt, Entries: entries(ents), Objects: objs}
			err := CheckSpace(context.Background(), opts, int64(len(big)))
			if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("CheckSpace: %v, want ErrNoSpace", err)
			}
			if ents, _ := os.ReadDir(dst); len(ents) != 0 {
				t.Fatalf("CheckSpace wrote %v", ents)
			}
			_, err = Apply(context.Background(), opts)
			if !errors.Is(err, ErrNoSpace) {
				t.Fatalf("Apply onto a full file system: %v, want ErrNoSpace", err)
			}
			t.Logf("Apply: %v", err)
			if ents, _ := os.ReadDir(dst); len(ents) != 0 {
				t.Fatalf("a failed write left %v", ents)
			}
			// What fits passes.
			if err := CheckSpace(context.Background(), opts, 1<<10); err != nil {
				t.Fatalf("CheckSpace with a small total: %v", err)
			}
		})
	}
}

// swapOnCreate stands for someone who can change the target tree while a
// restore runs: just before the first file is created, the directory it
// goes into is replaced by a symlink to a directory outside the target.
type swapOnCreate struct {
	Target
	dir, outside string
	done         bool
}

func (s *swapOnCreate) Create(name string, perm fs.FileMode) (io.WriteCloser, error) {
	if err := s.swap(); err != nil {
		return nil, err
	}
	return s.Target.Create(name, perm)
}

func (s *swapOnCreate) swap() error {
	if !s.done {
		s.done = true
		if err := os.Rename(filepath.Join(s.dir, "d"), filepath.Join(s.dir, "d-moved")); err != nil {
			return err
		}
		if err := os.Symlink(s.outside, filepath.Join(s.dir, "d")); err != nil {
			return err
		}
	}
	return nil
}

// swapOnCreateBatched is swapOnCreate on a target that writes in batches.
type swapOnCreateBatched struct{ *swapOnCreate }

func (s swapOnCreateBatched) CreateUnsynced(name string, perm fs.FileMode) (io.WriteCloser, error) {
	if err := s.swap(); err != nil {
		return nil, err
	}
	return s.Target.(BatchSyncer).CreateUnsynced(name, perm)
}

func (s swapOnCreateBatched) SyncFS() error { return s.Target.(BatchSyncer).SyncFS() }

// TestApplyRaceNeverEscapes: a directory swapped for a symlink after Apply
// looked at the tree does not redirect a write outside the target, on the
// targets that carry out each operation next to the data (the local
// os.Root and the transfer helper). Plain SFTP cannot promise this: its
// server follows links, which is why restore uses the helper over SSH.
func TestApplyRaceNeverEscapes(t *testing.T) {
	sum := sha256.Sum256([]byte("pwned"))
	sha := hex.EncodeToString(sum[:])
	objs := memObjects{sha: []byte("pwned")}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ents := []manifest.Entry{
		{Path: "d", Type: manifest.TypeDir, Mode: 0o750, MTime: t0},
		{Path: "d/f", Type: manifest.TypeFile, Mode: 0o600, MTime: t0, Size: 5, Object: sha},
	}
	all := targets(t)
	for _, name := range []string{"local", "helper", "local batched", "helper batched"} {
		t.Run(name, func(t *testing.T) {
			outside := t.TempDir()
			dst := filepath.Join(t.TempDir(), "storage")
			testkit.Must(t, os.MkdirAll(filepath.Join(dst, "d"), 0o750))
			swap := &swapOnCreate{Target: all[strings.TrimSuffix(name, " batched")](t, dst), dir: dst, outside: outside}
			var tgt Target = swap
			if strings.HasSuffix(name, " batched") {
				tgt = swapOnCreateBatched{swap}
			}
			_, err := Apply(context.Background(), ApplyOptions{Target: tgt, Entries: entries(ents), Objects: objs})
			t.Logf("Apply: %v", err)
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("written outside the target: %v", ents)
			}
		})
	}
	// The local target writes through its open directories: the swap,
	// made when the object is opened (after the directory was, before the
	// file is created), cannot redirect the file either.
	t.Run("local, through open directories", func(t *testing.T) {
		outside := t.TempDir()
		dst := filepath.Join(t.TempDir(), "storage")
		testkit.Must(t, os.MkdirAll(filepath.Join(dst, "d"), 0o750))
		lt := all["local"](t, dst)
		swap := &swapOnCreate{Target: lt, dir: dst, outside: outside}
		_, err := Apply(context.Background(), ApplyOptions{Target: lt, Entries: entries(ents), Objects: swappingObjects{objs, swap}})
		t.Logf("Apply: %v", err)
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("written outside the target: %v", ents)
		}
	})
}

// swappingObjects swaps the directory (swapOnCreate) when an object is opened.
type swappingObjects struct {
	memObjects
	swap *swapOnCreate
}

func (s swappingObjects) Open(sha string) (io.ReadCloser, error) {
	if err := s.swap.swap(); err != nil {
		return nil, err
	}
	return s.memObjects.Open(sha)
}

// killingObjects hands out objects whose reader kills the SSH server's
// sessions (a dropped connection) once after bytes bytes were read.
type killingObjects struct {
	memObjects
	srv   *testenv.SSHServer
	after int
	done  bool
}

func (k *killingObjects) Open(sha string) (io.ReadCloser, error) {
	b := k.memObjects[sha]
	if k.done {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	k.done = true
	return io.NopCloser(io.MultiReader(bytes.NewReader(b[:k.after]), readerFunc(func(p []byte) (int, error) {
		k.srv.KillSessions()
		time.Sleep(200 * time.Millisecond) // let the client see the connection go
		return copy(p, b[k.after:]), io.EOF
	}))), nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestApplyConnectionDropped: sshd's sessions killed while a file is being
// written over SSH leave its temporary file behind and nothing under its
// final name; the next run, on a new connection, removes the temporary file
// and completes the tree.
func TestApplyConnectionDropped(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	sum := sha256.Sum256(big)
	sha := hex.EncodeToString(sum[:])
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ents := []manifest.Entry{
		{Path: "d", Type: manifest.TypeDir, Mode: 0o750, MTime: t0},
		{Path: "d/big", Type: manifest.TypeFile, Mode: 0o600, MTime: t0, Size: int64(len(big)), Object: sha},
	}
	for _, kind := range []string{"sftp", "helper"} {
		t.Run(kind, func(t *testing.T) {
			srv := testenv.SSHD(t)
			dst := filepath.Join(t.TempDir(), "storage")
			objs := &killingObjects{memObjects: memObjects{sha: big}, srv: srv, after: 6 << 20}
			_, err := Apply(context.Background(), ApplyOptions{Target: sshTarget(t, srv, kind, dst), Entries: entries(ents), Objects: objs})
			if err == nil {
				t.Fatal("Apply survived the connection being dropped")
			}
			left, _ := filepath.Glob(filepath.Join(dst, "d", tmpPrefix+"*"))
			if _, err := os.Stat(filepath.Join(dst, "d/big")); err == nil {
				t.Fatal("the file is in place although its write broke off")
			}
			t.Logf("Apply: %v; left behind: %v", err, left)
			st, err := Apply(context.Background(), ApplyOptions{Target: sshTarget(t, srv, kind, dst), Entries: entries(ents), Objects: objs})
			if err != nil {
				t.Fatalf("rerun: %v", err)
			}
			if len(left) > 0 && len(st.Stale) == 0 {
				t.Fatalf("the rerun did not see %v", left)
			}
			if now, _ := filepath.Glob(filepath.Join(dst, "d", tmpPrefix+"*")); len(now) != 0 {
				t.Fatalf("temporary files left after the rerun: %v", now)
			}
			if b, err := os.ReadFile(filepath.Join(dst, "d/big")); err != nil || !bytes.Equal(b, big) {
				t.Fatalf("d/big after the rerun: %d bytes, %v", len(b), err)
			}
		})
	}
}

// opLog is a Target that logs the calls Apply makes ("readdir a", "create
// a/.tmp-bcp-...", "remove a/x").
type opLog struct {
	Target
	ops []string
}

func (o *opLog) ReadDir(name string) ([]fs.FileInfo, error) {
	o.ops = append(o.ops, "readdir "+name)
	return o.Target.ReadDir(name)
}

func (o *opLog) Create(name string, perm fs.FileMode) (io.WriteCloser, error) {
	o.ops = append(o.ops, "create "+name)
	return o.Target.Create(name, perm)
}

func (o *opLog) Remove(name string) error {
	o.ops = append(o.ops, "remove "+name)
	return o.Target.Remove(name)
}

func (o *opLog) index(t *testing.T, prefix string) int {
	t.Helper()
	i := slices.IndexFunc(o.ops, func(s string) bool { return strings.HasPrefix(s, prefix) })
	if i < 0 {
		t.Fatalf("no %q in %v", prefix, o.ops)
	}
	return i
}

// TestApplyMergesPerDirectory: Apply lists a directory of the target only
// when the set's entries reach it, and is done with a directory (writes,
// removals of what the set lacks, children before parents) before it
// lists the next one, so it never holds the whole target's listing.
func TestApplyMergesPerDirectory(t *testing.T) {
	ctx := context.Background()
	src, dst := t.TempDir(), t.TempDir()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"a/1", "a/2", "b/1", "b/2", "c/1"} {
		write(t, filepath.Join(src, p), "v1 "+p, t0)
	}
	objs := memObjects{}
	lt, err := NewLocalTarget(dst)
	testkit.Must(t, err)
	defer lt.Close()
	if _, err := Apply(ctx, ApplyOptions{Target: lt, Entries: entries(snapshot(t, src, objs)), Objects: objs}); err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	write(t, filepath.Join(src, "a/2"), "v2 a/2", t1)
	write(t, filepath.Join(src, "b/2"), "v2 b/2", t1)
	testkit.Must(t, os.Remove(filepath.Join(src, "a/1")))
	testkit.Must(t, os.RemoveAll(filepath.Join(src, "c")))
	write(t, filepath.Join(dst, "a/old/x"), "only on the target", t0)
	log := &opLog{Target: lt}
	st, err := Apply(ctx, ApplyOptions{Target: log, Entries: entries(snapshot(t, src, objs)), Objects: objs})
	if err != nil {
		t.Fatal(err)
	}
	changes := changeLog(st.Changes)
	t.Logf("ops: %v", log.ops)
	readB := log.index(t, "readdir b")
	for _, op := range []string{"create a/", "remove a/1", "remove a/old/x", "remove a/old"} {
		if i := log.index(t, op); i > readB {
			t.Errorf("%q came after listing b: the target was not merged per directory", op)
		}
	}
	if log.index(t, "readdir a") > log.index(t, "create a/") || log.index(t, "remove a/old/x") > log.index(t, "remove a/old") {
		t.Errorf("wrong order: %v", log.ops)
	}
	if log.index(t, "create b/") < readB || log.index(t, "remove c/1") < log.index(t, "create b/") {
		t.Errorf("b and c not merged in turn: %v", log.ops)
	}
	want := []string{"remove a/1", "remove a/old", "remove a/old/x", "remove c", "remove c/1", "replace a/2", "replace b/2"}
	if got := changes.strings(); !slices.Equal(got, want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("target:\n got %v\nwant %v", got, want)
	}
}

// TestApplyRefusesUnsortedList: a list out of walk order cannot be merged
// with the target's listing; Apply refuses it instead of removing what it
// took for missing.
func TestApplyRefusesUnsortedList(t *testing.T) {
	sum := sha256.Sum256([]byte("data"))
	sha := hex.EncodeToString(sum[:])
	objs := memObjects{sha: []byte("data")}
	dst := t.TempDir()
	write(t, filepath.Join(dst, "a"), "data", time.Now())
	write(t, filepath.Join(dst, "b"), "data", time.Now())
	lt, err := NewLocalTarget(dst)
	testkit.Must(t, err)
	defer lt.Close()
	ents := []manifest.Entry{
		{Path: "b", Type: manifest.TypeFile, Mode: 0o600, Size: 4, Object: sha},
		{Path: "a", Type: manifest.TypeFile, Mode: 0o600, Size: 4, Object: sha},
	}
	_, err = Apply(context.Background(), ApplyOptions{Target: lt, Entries: entries(ents), Objects: objs})
	if !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("Apply of an unsorted list: %v, want manifest.ErrInvalid", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "a")); err != nil {
		t.Fatalf("a was removed: %v", err)
	}
}

// batchLog is an opLog whose target writes in batches.
type batchLog struct{ *opLog }

func (b batchLog) CreateUnsynced(name string, perm fs.FileMode) (io.WriteCloser, error) {
	b.ops = append(b.ops, "create-unsynced "+name)
	return b.Target.(BatchSyncer).CreateUnsynced(name, perm)
}

func (b batchLog) SyncFS() error {
	b.ops = append(b.ops, "syncfs")
	return b.Target.(BatchSyncer).SyncFS()
}

func (b batchLog) Rename(oldname, newname string) error {
	b.ops = append(b.ops, "rename "+newname)
	return b.Target.Rename(oldname, newname)
}

func (b batchLog) Chtimes(name string, mtime time.Time) error {
	b.ops = append(b.ops, "chtimes "+name)
	return b.Target.Chtimes(name, mtime)
}

// TestApplyBatches: on a target that can sync its file system at once,
// small files are written without an fsync each and renamed into place
// only after one syncfs made them durable; a last syncfs makes the
// renames durable; the directories' mtimes are set after their files'
// renames, so they are the set's.
func TestApplyBatches(t *testing.T) {
	for _, name := range []string{"local", "helper"} {
		t.Run(name, func(t *testing.T) {
			src, dst := t.TempDir(), filepath.Join(t.TempDir(), "storage")
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			for _, p := range []string{"a/1", "a/2", "b/c/3", "4"} {
				write(t, filepath.Join(src, p), "content of "+p, t0)
			}
			for _, d := range []string{"a", "b/c", "b"} {
				testkit.Must(t, os.Chtimes(filepath.Join(src, d), t0, t0))
			}
			objs := memObjects{}
			log := batchLog{&opLog{Target: targets(t)[name](t, dst)}}
			if _, err := Apply(context.Background(), ApplyOptions{Target: log, Entries: entries(snapshot(t, src, objs)), Objects: objs}); err != nil {
				t.Fatal(err)
			}
			t.Logf("ops: %v", log.ops)
			var creates, renames, syncs []int
			for i, op := range log.ops {
				switch {
				case strings.HasPrefix(op, "create"):
					if !strings.HasPrefix(op, "create-unsynced ") {
						t.Errorf("%s: a small file created with an fsync", op)
					}
					creates = append(creates, i)
				case strings.HasPrefix(op, "rename "):
					renames = append(renames, i)
				case op == "syncfs":
					syncs = append(syncs, i)
				}
			}
			if len(creates) != 4 || len(renames) != 4 || len(syncs) != 2 {
				t.Fatalf("%d creates, %d renames, %d syncfs: %v", len(creates), len(renames), len(syncs), log.ops)
			}
			if !(creates[3] < syncs[0] && syncs[0] < renames[0] && renames[3] < syncs[1] && syncs[1] == len(log.ops)-1) {
				t.Fatalf("want creates, syncfs, renames, ..., syncfs: %v", log.ops)
			}
			if i := slices.Index(log.ops, "chtimes a"); i < renames[2] {
				t.Fatalf("a's mtime set before its files were renamed: %v", log.ops)
			}
			if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
				t.Fatalf("target:\n got %v\nwant %v", got, want)
			}
			for _, d := range []string{"a", "b", "b/c"} {
				if fi, err := os.Stat(filepath.Join(dst, d)); err != nil || !fi.ModTime().Equal(t0) {
					t.Fatalf("%s: mtime %v, want %v (%v)", d, fi.ModTime(), t0, err)
				}
			}
		})
	}
}

// storeObjects is a local object store (manifest/objects) as restore
// hands it to Apply: with ObjectsDir, so that objects are opened relative
// to their fan-out directory.
type storeObjects struct{ s *objects.Store }

func (o storeObjects) Open(sha string) (io.ReadCloser, error) { return o.s.Open(sha) }
func (o storeObjects) ObjectsDir() string                     { return o.s.Root() }

// TestApplyThroughOpenDirectories: on a local target, small files are
// written by workers through their open directory, from objects opened in
// their fan-out directory: the tree, modes and mtimes are the set's; an
// object whose content does not match its name fails the run, leaves no
// temporary file and does not replace the file already there.
func TestApplyThroughOpenDirectories(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "storage")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for i := range 300 {
		write(t, filepath.Join(src, fmt.Sprintf("d%d/e/f%03d", i%3, i)), fmt.Sprintf("content %d", i), t0.Add(time.Duration(i)*time.Second))
	}
	testkit.Must(t, os.Chmod(filepath.Join(src, "d1/e/f001"), 0o2751))
	mem := memObjects{}
	ents := snapshot(t, src, mem)
	store := objects.New(t.TempDir())
	for _, b := range mem {
		if _, err := store.Put(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	lt := targets(t)["local"](t, dst)
	st, err := Apply(context.Background(), ApplyOptions{Target: lt, Entries: entries(ents), Objects: storeObjects{store}})
	if err != nil || st.Added != int64(len(ents)) {
		t.Fatalf("Apply: %+v %v", st, err)
	}
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("target:\n got %v\nwant %v", got, want)
	}
	for _, p := range []string{"d1/e/f001", "d2/e/f299"} {
		a, _ := os.Stat(filepath.Join(src, p))
		b, _ := os.Stat(filepath.Join(dst, p))
		if !a.ModTime().Equal(b.ModTime()) || a.Mode() != b.Mode() {
			t.Fatalf("%s: %v %v, want %v %v", p, b.Mode(), b.ModTime(), a.Mode(), a.ModTime())
		}
	}
	// one object rotten in the store, its file changed in the set
	var e *manifest.Entry
	for i := range ents {
		if ents[i].Path == "d0/e/f000" {
			e = &ents[i]
		}
	}
	bad := []byte("content X")
	testkit.Must(t, os.Chmod(store.Path(e.Object), 0o600))
	testkit.Must(t, os.WriteFile(store.Path(e.Object), bad, 0o600))
	e.MTime = e.MTime.Add(time.Hour)
	_, err = Apply(context.Background(), ApplyOptions{Target: lt, Entries: entries(ents), Objects: storeObjects{store}})
	if !errors.Is(err, ErrObjectMismatch) || !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("Apply with a rotten object: %v, want ErrObjectMismatch (a manifest.ErrCorrupt)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "d0/e/f000")); string(b) != "content 0" {
		t.Fatalf("d0/e/f000 replaced by %q", b)
	}
	for rel := range testkit.TreeTimes(t, dst, nil) {
		if strings.Contains(rel, tmpPrefix) {
			t.Fatalf("temporary left: %s", rel)
		}
	}
}

// TestApplyManySmallDirectories: a batch spread over more directories
// than Apply keeps open (maxHeldDirs) is flushed early, and the tree is
// the set's.
func TestApplyManySmallDirectories(t *testing.T) {
	src, dst := t.TempDir(), filepath.Join(t.TempDir(), "storage")
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 2*maxHeldDirs + 10 {
		write(t, filepath.Join(src, fmt.Sprintf("d%04d/f", i)), fmt.Sprint(i), t0)
	}
	mem := memObjects{}
	ents := snapshot(t, src, mem)
	store := objects.New(t.TempDir())
	for _, b := range mem {
		if _, err := store.Put(context.Background(), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	lt := targets(t)["local"](t, dst)
	if _, err := Apply(context.Background(), ApplyOptions{Target: lt, Entries: entries(ents), Objects: storeObjects{store}}); err != nil {
		t.Fatal(err)
	}
	if got, want := testkit.TreeTimes(t, dst, nil), testkit.TreeTimes(t, src, nil); !mapsEqual(got, want) {
		t.Fatalf("target differs from the set: %d entries, want %d", len(got), len(want))
	}
}
