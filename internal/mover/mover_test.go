package mover

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// direction is one way of running the mover: both ends are local
// directories of the test (the SFTP server runs as the current user), so
// tests can inspect and damage either side on disk.
type direction struct {
	name string
	ends func(t *testing.T, srcDir, dstDir string) (src, dst FS)
}

func directions() []direction {
	return []direction{
		{"dir-to-dir", func(t *testing.T, s, d string) (FS, FS) { return NewLocal(s), NewLocal(d) }},
		{"push", func(t *testing.T, s, d string) (FS, FS) { return NewLocal(s), dialSFTP(t, testenv.SSHD(t), d) }},
		{"push-helper", func(t *testing.T, s, d string) (FS, FS) { return NewLocal(s), dialHelper(t, testenv.SSHD(t), d) }},
		{"pull", func(t *testing.T, s, d string) (FS, FS) { return dialSFTP(t, testenv.SSHD(t), s), NewLocal(d) }},
	}
}

func opts(c *movertest.Channel, src, dst FS) Options {
	return Options{Src: src, Dst: dst, VerifySignature: SignatureVerifier(c.AllowedSigners()), Workers: 4}
}

func run(t *testing.T, o Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// verifyDst checks the destination with the manifest package's own
// verification (every file hashed), as restore will.
func verifyDst(t *testing.T, c *movertest.Channel, dir, id string) {
	t.Helper()
	a, err := sshsig.LoadAllowedSigners(c.Allowed)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := manifest.Verify(context.Background(), manifest.VerifyOptions{Root: dir, SetID: id, AllowedSigners: a, Expect: c.Ch})
	if err != nil {
		t.Fatalf("verify %s at destination: %v", id, err)
	}
	if rep.SetID != id {
		t.Fatalf("destination's set is %s, want %s", rep.SetID, id)
	}
}

func signed(dir, id string) bool {
	_, err := os.Stat(manifest.Layout{Root: dir}.SignaturePath(id))
	return err == nil
}

func TestRunCopiesAndResumes(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.Publish(movertest.Small("a", 5))
			id2 := c.Publish(movertest.Small("b", 5))
			src, dst := d.ends(t, srcDir, dstDir)
			o := opts(c, src, dst)
			res := run(t, o)
			if res.Set != id2 || res.Copied != res.Files || res.Copied == 0 {
				t.Fatalf("first copy: %+v, want all of %s copied", res, id2)
			}
			verifyDst(t, c, dstDir, id2)
			// Rerun: nothing to do (the files were hashed as written).
			o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "checked"))
			res = run(t, o) // hashes what is there once
			if res.Copied != 0 || res.Present != res.Files {
				t.Fatalf("second run: %+v, want nothing copied", res)
			}
			if err := o.Checked.Save(); err != nil {
				t.Fatal(err)
			}
			o.Checked = mustOpenChecked(t, o.Checked.path)
			res = run(t, o)
			if res.Copied != 0 || res.Present != res.Files {
				t.Fatalf("third run: %+v, want nothing copied", res)
			}
			// Lose a few files and the signature: a rerun brings back only those.
			l := manifest.Layout{Root: dstDir}
			testkit.Must(t, os.Remove(l.SignaturePath(id2)))
			testkit.Must(t, os.Remove(filepath.Join(dstDir, "es", "index.latest")))
			testkit.Must(t, os.Remove(filepath.Join(dstDir, "es", "snap-b.dat")))
			res = run(t, o)
			if res.Copied != 3 {
				t.Fatalf("resume copied %d files, want 3: %+v", res.Copied, res)
			}
			verifyDst(t, c, dstDir, id2)
		})
	}
}

func TestIncompleteSourceSetNeverForwarded(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			id1 := c.Publish(movertest.Small("a", 3))
			id2 := c.Publish(movertest.Small("b", 3))
			// set 2 lost a data blob at the source (a mover upstream is still
			// copying, or it was damaged)
			if err := os.Remove(filepath.Join(srcDir, "es", "indices", "idx-b", "0", "__1")); err != nil {
				t.Fatal(err)
			}
			src, dst := d.ends(t, srcDir, dstDir)
			res := run(t, opts(c, src, dst))
			if res.Set != id1 || len(res.Skipped) != 1 || res.Skipped[0].Set != id2 {
				t.Fatalf("got %+v, want %s copied and %s skipped", res, id1, id2)
			}
			if !strings.Contains(res.Skipped[0].Reason, "__1") {
				t.Fatalf("skip reason %q does not name the missing file", res.Skipped[0].Reason)
			}
			if _, err := os.Stat(filepath.Join(dstDir, "sets", id2)); err == nil {
				t.Fatalf("incomplete set %s appeared at the destination", id2)
			}
			verifyDst(t, c, dstDir, id1)
		})
	}
}

func TestNoCompleteSet(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 3))
	testkit.Must(t, os.Remove(manifest.Layout{Root: srcDir}.SignaturePath(id))) // not signed yet
	_, err := Run(context.Background(), opts(c, NewLocal(srcDir), NewLocal(dstDir)))
	if !errors.Is(err, ErrSourceIncomplete) {
		t.Fatalf("Run = %v, want ErrSourceIncomplete", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dstDir, "sets")); len(ents) != 0 {
		t.Fatalf("destination got sets: %v", ents)
	}
}

func TestUntrustedSignatureNotForwarded(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 2))
	other := movertest.New(t, t.TempDir()) // another key
	o := opts(c, NewLocal(srcDir), NewLocal(dstDir))
	o.VerifySignature = SignatureVerifier(other.AllowedSigners())
	res, err := Run(context.Background(), o)
	if !errors.Is(err, ErrSourceIncomplete) || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "not authentic") {
		t.Fatalf("Run = %+v, %v; want the set skipped as not authentic", res, err)
	}
}

// opens counts the files a run reads from an FS.
type opens struct {
	FS
	n atomic.Int64
}

func (o *opens) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	o.n.Add(1)
	return o.FS.Open(ctx, name)
}

// A rerun whose set is still the one verified last time, at a destination
// that can fingerprint its directories, reads nothing but the manifest and
// its signature at the source and compares digests; anything a listing shows
// changed at the destination sends it the long way, which repairs it.
func TestUnchangedSet(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.Publish(movertest.Small("a", 5))
			src, dst := d.ends(t, srcDir, dstDir)
			counted := &opens{FS: src}
			o := opts(c, counted, dst)
			cache := filepath.Join(t.TempDir(), "checked")
			rerun := func() *Result {
				t.Helper()
				if err := o.Checked.Save(); err != nil {
					t.Fatal(err)
				}
				o.Checked = mustOpenChecked(t, cache)
				counted.n.Store(0)
				return run(t, o)
			}
			o.Checked = mustOpenChecked(t, cache)
			id := run(t, o).Set
			_, fingerprints := dst.(Digester) // SFTP alone too: find through its shell
			res := rerun()
			if res.Set != id || res.Copied != 0 || res.Present != res.Files || res.Files == 0 {
				t.Fatalf("rerun: %+v, want %s with every file present", res, id)
			}
			if n := counted.n.Load(); fingerprints && n != 3 {
				t.Fatalf("rerun read %d files at the source, want 3 (channel, manifest, signature)", n)
			} else if !fingerprints && n <= 3 {
				t.Fatalf("rerun read %d files at the source without fingerprints; want the file lists too", n)
			}
			// A file damaged in place (a later write: new time).
			obj := filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("atree0", 100))))
			damage(t, obj)
			testkit.Must(t, os.Chtimes(obj, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)))
			if res := rerun(); res.Replaced != 1 || res.Copied != 1 {
				t.Fatalf("after damage: %+v, want 1 replaced", res)
			}
			// A file lost.
			testkit.Must(t, os.Remove(obj))
			if res := rerun(); res.Copied != 1 {
				t.Fatalf("after a loss: %+v, want 1 copied", res)
			}
			verifyDst(t, c, dstDir, id)
			if res := rerun(); res.Copied != 0 || fingerprints && counted.n.Load() != 3 {
				t.Fatalf("after the repair: %+v and %d files read, want nothing to do", res, counted.n.Load())
			}
			// A new set at the source.
			id2 := c.Publish(movertest.Small("b", 5))
			if res := rerun(); res.Set != id2 || res.Copied == 0 {
				t.Fatalf("new set: %+v, want %s copied", res, id2)
			}
			verifyDst(t, c, dstDir, id2)
			// --checksum hashes everything whatever the cache says.
			o.Checksum = true
			if res := rerun(); res.Copied != 0 || counted.n.Load() <= 3 {
				t.Fatalf("checksum run: %+v, %d files read at the source; want the long way", res, counted.n.Load())
			}
		})
	}
}

func TestCorruptDestinationFileReplaced(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.Publish(movertest.Small("a", 3))
			src, dst := d.ends(t, srcDir, dstDir)
			o := opts(c, src, dst)
			o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "checked"))
			id := run(t, o).Set
			// Damage an object in place, same size, and give it back its old
			// time: only a checksum run sees it; then damage another one
			// plainly: any run sees it (its time changed).
			big := filepath.Join(dstDir, "es", "snap-a.dat")
			fi, _ := os.Stat(big)
			damage(t, big)
			testkit.Must(t, os.Chtimes(big, fi.ModTime(), fi.ModTime()))
			obj := filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("atree0", 100))))
			damage(t, obj)
			// (SFTP shows times in whole seconds: make the change visible
			// as a later write would be)
			testkit.Must(t, os.Chtimes(obj, fi.ModTime().Add(-time.Hour), fi.ModTime().Add(-time.Hour)))
			res := run(t, o)
			if res.Replaced != 1 || res.Copied != 1 {
				t.Fatalf("after damage: %+v, want 1 replaced", res)
			}
			o.Checksum = true
			res = run(t, o)
			if res.Replaced != 1 {
				t.Fatalf("checksum run: %+v, want 1 replaced", res)
			}
			verifyDst(t, c, dstDir, id)
		})
	}
}

func damage(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestSourceMovedOnIndexLatest(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 2))
	// Elasticsearch already wrote a newer generation that no set names yet.
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "es", "index-2"), []byte("{}"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "es", "index.latest"), []byte{0, 0, 0, 0, 0, 0, 0, 2}, 0o640))
	run(t, opts(c, NewLocal(srcDir), NewLocal(dstDir)))
	verifyDst(t, c, dstDir, id)
	if _, err := os.Stat(filepath.Join(dstDir, "es", "index-2")); err == nil {
		t.Fatal("a repository generation no set names was copied")
	}
}

func TestPruneMirrorsAndKeepsPinned(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		t.Run("pinned="+strconv.FormatBool(pinned), func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			id1 := c.Publish(movertest.Small("a", 3))
			o := opts(c, NewLocal(srcDir), NewLocal(dstDir))
			run(t, o)
			id2 := c.Publish(movertest.Small("b", 3))
			run(t, o)
			if !signed(dstDir, id1) || !signed(dstDir, id2) {
				t.Fatal("destination should hold both sets while the source does")
			}
			if pinned {
				testkit.Must(t, os.MkdirAll(filepath.Join(dstDir, "pins"), 0o750))
				testkit.Must(t, os.WriteFile(filepath.Join(dstDir, "pins", id1), []byte(`{"reason":"live"}`), 0o640))
			}
			// Retention at the source: set 1 and what only it needed.
			uniq := filepath.Join(srcDir, manifest.ObjectRel(movertest.Sum(movertest.Content("atree0", 100))))
			testkit.Must(t, os.RemoveAll(filepath.Join(srcDir, "sets", id1)))
			testkit.Must(t, os.Remove(uniq))
			testkit.Must(t, os.RemoveAll(filepath.Join(srcDir, "es", "indices", "idx-a")))
			res := run(t, o)
			_, objErr := os.Stat(filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("atree0", 100)))))
			_, idxErr := os.Stat(filepath.Join(dstDir, "es", "indices", "idx-a"))
			if pinned {
				// (manifest.Verify of an older set fails on index.latest,
				// which names the newest generation; see the report.)
				if !signed(dstDir, id1) || objErr != nil || idxErr != nil || len(res.Kept) != 1 {
					t.Fatalf("pinned set %s or its files were pruned: %+v", id1, res)
				}
			} else {
				if signed(dstDir, id1) || !errors.Is(objErr, fs.ErrNotExist) || !errors.Is(idxErr, fs.ErrNotExist) || res.PrunedFiles == 0 {
					t.Fatalf("set %s not pruned: %+v (object: %v, index dir: %v)", id1, res, objErr, idxErr)
				}
			}
			verifyDst(t, c, dstDir, id2)
		})
	}
}

func TestPermissionDeniedAtDestination(t *testing.T) {
	for _, d := range directions() {
		if d.name == "pull" {
			continue // the destination is local; same as dir-to-dir
		}
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			c.Publish(movertest.Small("a", 2))
			testkit.Must(t, os.MkdirAll(filepath.Join(dstDir, "objects"), 0o750))
			immutable(t, filepath.Join(dstDir, "objects"))
			src, dst := d.ends(t, srcDir, dstDir)
			_, err := Run(context.Background(), opts(c, src, dst))
			if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "objects") {
				t.Fatalf("Run = %v, want a permission error naming objects/", err)
			}
			if ents, _ := os.ReadDir(filepath.Join(dstDir, "sets")); len(ents) != 0 {
				t.Fatalf("a set appeared: %v", ents)
			}
		})
	}
}

// tmpfs mounts a small tmpfs at a new directory (root only), or reports
// false.
func tmpfs(t *testing.T, size string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Logf("mount tmpfs: %v: %s; using an injected error instead", err, out)
		return "", false
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir, true
}

// fullFS fails writes with ENOSPC after limit bytes, like a full disk.
type fullFS struct {
	FS
	left atomic.Int64
}

type fullFile struct {
	File
	fs *fullFS
}

func (f *fullFS) Create(ctx context.Context, name string) (File, error) {
	w, err := f.FS.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: w, fs: f}, nil
}

func (w *fullFile) Write(p []byte) (int, error) {
	if w.fs.left.Add(-int64(len(p))) < 0 {
		return 0, &fs.PathError{Op: "write", Path: "(injected)", Err: errNoSpace}
	}
	return w.File.Write(p)
}

var errNoSpace = errors.New("no space left on device")

func TestDestinationDiskFull(t *testing.T) {
	for _, d := range directions() {
		if d.name == "pull" {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			srcDir := t.TempDir()
			c := movertest.New(t, srcDir)
			id := c.Publish(movertest.Small("a", 3)) // about 3.2 MB
			dstDir, mounted := tmpfs(t, "1m")
			if !mounted {
				dstDir = t.TempDir()
			}
			src, dst := d.ends(t, srcDir, dstDir)
			if !mounted {
				f := &fullFS{FS: dst}
				f.left.Store(1 << 20)
				dst = f
			}
			_, err := Run(context.Background(), opts(c, src, dst))
			if err == nil {
				t.Fatal("copy onto a full destination succeeded")
			}
			if signed(dstDir, id) {
				t.Fatal("a set appeared on the full destination")
			}
			// Room again (a bigger destination): the rerun completes.
			bigger := t.TempDir()
			if out, err := exec.Command("cp", "-a", dstDir+"/.", bigger).CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			src, dst = d.ends(t, srcDir, bigger)
			run(t, opts(c, src, dst))
			verifyDst(t, c, bigger, id)
		})
	}
}

func TestWrongHostKey(t *testing.T) {
	s := testenv.SSHD(t)
	cfg := s.Config()
	other := testenv.SSHD(t) // a different server's key under this address
	kh, err := os.ReadFile(other.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	cfg.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	line := strings.Replace(string(kh), strconv.Itoa(other.Port), strconv.Itoa(s.Port), 1)
	testkit.Must(t, os.WriteFile(cfg.KnownHosts, []byte(line), 0o600))
	_, err = DialSFTP(context.Background(), cfg, t.TempDir(), SFTPOptions{Conns: 2, Sessions: 1})
	if !errors.Is(err, sshx.ErrHostKey) || !strings.Contains(err.Error(), "SHA256:") {
		t.Fatalf("DialSFTP = %v, want ErrHostKey with fingerprints", err)
	}
}

// killer kills the sshd session processes (not the listener) once some
// bytes went through, like a dropped connection.
type killer struct {
	manifest.NoProgress
	srv   *testenv.SSHServer
	after int64
	n     atomic.Int64
	done  atomic.Bool
}

func (k *killer) Add(n int64) {
	if k.n.Add(n) >= k.after && !k.done.Swap(true) {
		k.srv.KillSessions()
	}
}

func TestSSHDKilledMidTransfer(t *testing.T) {
	for _, tc := range []struct {
		name string
		dial func(*testing.T, *testenv.SSHServer, string) *SFTP
	}{{"sftp", dialSFTP}, {"helper", dialHelper}} {
		t.Run(tc.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			spec := movertest.Small("a", 20)
			for i := 0; i < 4; i++ {
				spec.Tree["more/"+strconv.Itoa(i)] = movertest.Content("more"+strconv.Itoa(i), 4<<20)
			}
			id := c.Publish(spec)
			s := testenv.SSHD(t)
			o := opts(c, NewLocal(srcDir), tc.dial(t, s, dstDir))
			// One large file at a time: the first is in place (fsynced,
			// renamed) before the kill at 6 MiB.
			o.BigWorkers = 1
			k := &killer{srv: s, after: 6 << 20}
			o.Progress = k
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("copy survived sshd being killed")
			}
			if !k.done.Load() {
				t.Fatal("sshd was not killed")
			}
			checkFinalNames(t, dstDir)
			if signed(dstDir, id) {
				t.Fatal("the set appeared although the copy broke off")
			}
			res := run(t, opts(c, NewLocal(srcDir), tc.dial(t, s, dstDir)))
			if res.Present == 0 {
				t.Fatalf("rerun copied everything again: %+v", res)
			}
			verifyDst(t, c, dstDir, id)
		})
	}
}

// TestNoCompleteSetSaysWhy: when no set at the source can be forwarded,
// the error carries why the newest could not (besides ErrSourceIncomplete),
// so that a program maps it to its own exit code: a set without its
// signature is incomplete (try later), one signed by an untrusted key is not
// authentic, one for another channel is not for us.
func TestNoCompleteSetSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		make  func(t *testing.T, c *movertest.Channel) Options
		cause error
	}{
		{"unsigned", func(t *testing.T, c *movertest.Channel) Options {
			id := c.Publish(movertest.Small("a", 2))
			testkit.Must(t, os.Remove(manifest.Layout{Root: c.Root}.SignaturePath(id)))
			return opts(c, NewLocal(c.Root), NewLocal(t.TempDir()))
		}, manifest.ErrIncomplete},
		{"untrusted key", func(t *testing.T, c *movertest.Channel) Options {
			c.Publish(movertest.Small("a", 2))
			c.Publish(movertest.Small("b", 2))
			o := opts(c, NewLocal(c.Root), NewLocal(t.TempDir()))
			o.VerifySignature = SignatureVerifier(movertest.New(t, t.TempDir()).AllowedSigners())
			return o
		}, manifest.ErrNotAuthentic},
		{"another channel", func(t *testing.T, c *movertest.Channel) Options {
			c.PublishFor(manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}, movertest.Small("a", 2))
			return opts(c, NewLocal(c.Root), NewLocal(t.TempDir()))
		}, manifest.ErrNotForUs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := movertest.New(t, t.TempDir())
			_, err := Run(context.Background(), tc.make(t, c))
			if !errors.Is(err, ErrSourceIncomplete) || !errors.Is(err, tc.cause) {
				t.Fatalf("Run = %v; want ErrSourceIncomplete and %v", err, tc.cause)
			}
			for _, other := range []error{manifest.ErrIncomplete, manifest.ErrNotAuthentic, manifest.ErrNotForUs} {
				if other != tc.cause && errors.Is(err, other) {
					t.Fatalf("Run = %v; also %v, want only %v", err, other, tc.cause)
				}
			}
		})
	}
}

// TestNewSetIsNoDamage: a new set rewrites es/index.latest (Elasticsearch
// does with every snapshot); the file the destination has there is the
// older set's version, replaced by an update, not damage. Damage is
// reported only for a file that differs from the version the set wants and
// the destination was known (or, without a cache, supposed) to have.
func TestNewSetIsNoDamage(t *testing.T) {
	for _, d := range directions() {
		for _, cached := range []bool{true, false} {
			name := d.name + "/cache"
			if !cached {
				name = d.name + "/no-cache"
			}
			t.Run(name, func(t *testing.T) {
				srcDir, dstDir := t.TempDir(), t.TempDir()
				c := movertest.New(t, srcDir)
				c.Publish(movertest.Small("a", 3))
				src, dst := d.ends(t, srcDir, dstDir)
				o := opts(c, src, dst)
				cache := ""
				if cached {
					cache = filepath.Join(t.TempDir(), "checked")
				}
				rerun := func() *Result {
					t.Helper()
					if o.Checked != nil {
						if err := o.Checked.Save(); err != nil {
							t.Fatal(err)
						}
					}
					o.Checked = mustOpenChecked(t, cache)
					return run(t, o)
				}
				rerun()
				id2 := c.Publish(movertest.Small("b", 3))
				if res := rerun(); res.Set != id2 || res.Replaced != 0 || res.Copied == 0 {
					t.Fatalf("new set: %+v, want %s copied and nothing replaced", res, id2)
				}
				verifyDst(t, c, dstDir, id2)
				// index.latest damaged (another generation, a later write):
				// the set wants the version the destination had.
				latest := filepath.Join(dstDir, "es", "index.latest")
				damage(t, latest)
				testkit.Must(t, os.Chtimes(latest, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)))
				if res := rerun(); cached && res.Replaced != 1 || res.Copied != 1 {
					t.Fatalf("after damage: %+v, want index.latest copied (and, with a cache, reported replaced)", res)
				}
				verifyDst(t, c, dstDir, id2)
			})
		}
	}
}

// TestNoHelperNoticeOnClose: a run that ends (closes the FS) while the
// helper is still starting did not find the helper missing; only a helper
// that could not be started is reported.
func TestNoHelperNoticeOnClose(t *testing.T) {
	s := testenv.SSHD(t)
	for _, tc := range []struct {
		name, helper string
		notice       bool
	}{
		{"closed while starting", "sleep 2; " + helperBin(t), false},
		{"missing", "/nonexistent/transfer", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notices := make(chan string, 1)
			f, err := DialSFTP(context.Background(), s.Config(), t.TempDir(), SFTPOptions{Conns: 1, Sessions: 1, Helper: tc.helper,
				Notice: func(msg string) { notices <- msg }})
			if err != nil {
				t.Fatal(err)
			}
			if tc.notice {
				select {
				case msg := <-notices:
					if !strings.Contains(msg, "/nonexistent/transfer") {
						t.Fatalf("notice %q does not name the helper", msg)
					}
				case <-time.After(2 * helperTimeout):
					t.Fatal("no notice for a helper that cannot start")
				}
			}
			time.Sleep(200 * time.Millisecond) // the helper's start is under way
			// What Close meets is in the notices.
			_ = f.Close()
			<-f.first // its start has ended
			select {
			case msg := <-notices:
				t.Fatalf("notice after Close: %s", msg)
			default:
			}
		})
	}
}

// mustOpenChecked opens the verified-file cache at path or fails the test
// (a test with no cache would not test the cache).
func mustOpenChecked(t *testing.T, path string) *Checked {
	t.Helper()
	c, err := OpenChecked(path)
	testkit.Must(t, err)
	return c
}
