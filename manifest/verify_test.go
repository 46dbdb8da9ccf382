package manifest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

func TestVerifyComplete(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1<<20)
	rep, err := manifest.Verify(context.Background(), w.opts())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != manifest.StatusComplete || rep.SetID != w.SetID || rep.Signer != "prod-backup" {
		t.Fatalf("report %+v", rep)
	}
	// 1 dump + es list + 2 directory lists (root, dir) + 4 tree files (two
	// share content) + 4 es files
	if rep.Files != 1+1+2+4+4 || rep.Hashed+rep.Cached > rep.Files || rep.Hashed < rep.Files-1 {
		t.Errorf("files %d hashed %d cached %d", rep.Files, rep.Hashed, rep.Cached)
	}
}

func TestVerifyOutcomes(t *testing.T) {
	other := newKey(t, "ed25519")
	tests := []struct {
		name   string
		break_ func(t *testing.T, w *world, o *manifest.VerifyOptions)
		status manifest.Status
		want   error
		names  string // the message must name this
	}{
		{"changed byte in large object", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			flipByte(t, w.Layout.ObjectPath(w.Big.SHA256), w.Big.Size/2)
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, w0Big},
		{"missing object", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Remove(w.Layout.ObjectPath(w.Files["a.txt"].SHA256)))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "tree storage: a.txt"},
		{"missing es file", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Remove(filepath.Join(w.Layout.ESDir(), "snap-u1.dat")))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "es/snap-u1.dat"},
		{"truncated object", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Truncate(w.Layout.ObjectPath(w.Big.SHA256), 10))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "manifest says"},
		{"missing signature", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Remove(w.Layout.SignaturePath(w.SetID)))
			o.SetID = w.SetID
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "signature missing"},
		{"key not in allowed_signers", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			o.AllowedSigners = allowed(t, allowedLine(other))
		}, manifest.StatusNotAuthentic, manifest.ErrNotAuthentic, "not in allowed_signers"},
		{"key allowed for another namespace", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			o.AllowedSigners = allowed(t, `prod-backup namespaces="file" `+w.Key.Pub)
		}, manifest.StatusNotAuthentic, manifest.ErrNotAuthentic, "namespace"},
		{"tampered manifest", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			p := w.Layout.ManifestPath(w.SetID)
			data, _ := os.ReadFile(p)
			must(t, os.WriteFile(p, []byte(strings.Replace(string(data), `"rows": 3`, `"rows": 4`, 1)), 0o640))
		}, manifest.StatusNotAuthentic, manifest.ErrNotAuthentic, "signature"},
		{"replayed sequence", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			o.After = 1
		}, manifest.StatusStale, manifest.ErrStale, "not newer than 1"},
		{"old manifest copied into a newer set directory", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			newID := manifest.SetID(9, created0)
			must(t, os.Rename(w.Layout.SetDir(w.SetID), w.Layout.SetDir(newID)))
			o.After = 1
		}, manifest.StatusNotAuthentic, manifest.ErrNotAuthentic, "replayed"},
		{"wrong direction", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			o.Expect = manifest.Channel{Source: "bcp", Target: "prod"}
		}, manifest.StatusNotForUs, manifest.ErrNotForUs, "expected"},
		{"symlinked directory leading out of the channel", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			// Replace es/indices by a link to a full copy outside: the
			// content is right, but it is not inside the channel.
			outside := t.TempDir()
			must(t, os.Rename(filepath.Join(w.Layout.ESDir(), "indices"), filepath.Join(outside, "indices")))
			must(t, os.Symlink(filepath.Join(outside, "indices"), filepath.Join(w.Layout.ESDir(), "indices")))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "es/indices/x1/0/__a"},
		{"symlinked object directory leading out of the channel", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			dir := filepath.Dir(w.Layout.ObjectPath(w.Big.SHA256))
			outside := filepath.Join(t.TempDir(), "aa")
			must(t, os.Rename(dir, outside))
			must(t, os.Symlink(outside, dir))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "mysql dump"},
		{"object replaced by a FIFO", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			p := w.Layout.ObjectPath(w.Files["a.txt"].SHA256)
			must(t, os.Remove(p))
			must(t, syscall.Mkfifo(p, 0o600))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "not a regular file"},
		{"object replaced by a symlink to a good copy", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			// Objects are regular files: a link is not followed, even to
			// the right content inside the channel.
			p := w.Layout.ObjectPath(w.Files["a.txt"].SHA256)
			must(t, os.Rename(p, filepath.Join(w.Layout.Root, "a-copy")))
			must(t, os.Symlink(filepath.Join(w.Layout.Root, "a-copy"), p))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "not a regular file"},
		{"root directory list corrupt", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			p := w.Layout.ObjectPath(w.Manifest.Trees[0].Dir.SHA256)
			flipByte(t, p, 3)
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "tree storage root directory list"},
		{"subdirectory list corrupt", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			flipByte(t, w.Layout.ObjectPath(w.dirList(t, "dir").SHA256), 3)
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, `list of directory "dir"`},
		{"subdirectory list missing", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Remove(w.Layout.ObjectPath(w.dirList(t, "dir").SHA256)))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, `list of directory "dir"`},
		{"list object missing", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.Remove(w.Layout.ObjectPath(w.Manifest.Elasticsearch.Files.SHA256)))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "elasticsearch file list"},
		{"channel.json of another channel", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.WriteFile(w.Layout.ChannelFile(), []byte(`{"name":"bcp-to-prod","source":"bcp","target":"prod"}`), 0o640))
			o.Expect = manifest.Channel{}
		}, manifest.StatusNotForUs, manifest.ErrNotForUs, "bcp-to-prod"},
		{"es/index.latest behind the set", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.WriteFile(filepath.Join(w.Layout.ESDir(), "index.latest"), []byte{0, 0, 0, 0, 0, 0, 0, 2}, 0o640))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "names generation 2, this set needs 3"},
		{"es/index.latest ahead but its index-N not there", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.WriteFile(filepath.Join(w.Layout.ESDir(), "index.latest"), []byte{0, 0, 0, 0, 0, 0, 0, 5}, 0o640))
		}, manifest.StatusIncomplete, manifest.ErrIncomplete, "es/index-5"},
		{"es/index.latest garbage", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.WriteFile(filepath.Join(w.Layout.ESDir(), "index.latest"), []byte("garbage!!"), 0o640))
		}, manifest.StatusCorrupt, manifest.ErrCorrupt, "es/index.latest"},
		{"signed manifest of an unknown major version", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			p := w.Layout.ManifestPath(w.SetID)
			data, _ := os.ReadFile(p)
			data = []byte(strings.Replace(string(data), `"version": "`+manifest.Version+`"`, `"version": "9.0"`, 1))
			must(t, os.WriteFile(p, data, 0o640))
			sig, err := sshsig.Sign(w.Key.Signer, manifest.Namespace, strings.NewReader(string(data)))
			must(t, err)
			must(t, os.WriteFile(w.Layout.SignaturePath(w.SetID), sig, 0o640))
		}, manifest.StatusCorrupt, manifest.ErrUnknownVersion, "upgrade"},
		{"malformed signature", func(t *testing.T, w *world, o *manifest.VerifyOptions) {
			must(t, os.WriteFile(w.Layout.SignaturePath(w.SetID), []byte("garbage"), 0o640))
		}, manifest.StatusNotAuthentic, manifest.ErrNotAuthentic, "signature"},
	}
	k := newKey(t, "ed25519")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, k, 4<<20)
			o := w.opts()
			tt.break_(t, w, &o)
			names := tt.names
			if names == w0Big {
				names = manifest.ObjectRel(w.Big.SHA256)
			}
			rep, err := manifest.Verify(context.Background(), o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if rep == nil || rep.Status != tt.status {
				t.Fatalf("report %+v, want status %v", rep, tt.status)
			}
			if !strings.Contains(err.Error(), names) {
				t.Errorf("error %q does not name %q", err, names)
			}
		})
	}
}

const w0Big = "\x00big"

func TestVerifyNewestSignedAndNoSet(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	id2 := w.publish(t, 2, k.Signer)
	// Set 3 is still being copied: manifest without signature.
	id3 := w.publish(t, 3, k.Signer)
	must(t, os.Remove(w.Layout.SignaturePath(id3)))
	rep, err := manifest.Verify(context.Background(), w.opts())
	if err != nil || rep.SetID != id2 {
		t.Fatalf("newest signed: %v %+v, want %s", err, rep, id2)
	}
	sets, err := manifest.List(w.Root)
	if err != nil || len(sets) != 3 || sets[2].ID != id3 || sets[2].HasSignature || !sets[1].HasSignature {
		t.Fatalf("List = %+v, %v", sets, err)
	}

	empty := filepath.Join(t.TempDir(), "c")
	must(t, manifest.WriteChannel(empty, testChannel))
	_, err = manifest.Verify(context.Background(), manifest.VerifyOptions{Root: empty, AllowedSigners: w.Allowed})
	if !errors.Is(err, manifest.ErrNoSet) {
		t.Fatalf("empty channel: %v", err)
	}
	o := w.opts()
	o.SetID = manifest.SetID(77, created0)
	if _, err = manifest.Verify(context.Background(), o); !errors.Is(err, manifest.ErrNoSet) {
		t.Fatalf("unknown set: %v", err)
	}
}

// TestVerifyReadOnlyWithCache verifies a channel twice through the identity
// cache, proving the second run reads nothing that did not change, that a
// changed file is hashed again, and that nothing below the channel changes.
func TestVerifyReadOnlyWithCache(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1<<20)
	chmodTree(t, w.Root, false)
	t.Cleanup(func() { chmodTree(t, w.Root, true) })
	before := snapshot(t, w.Root)

	o := w.opts()
	o.Root = readOnlyMount(t, w.Root)
	o.Cache = filepath.Join(t.TempDir(), "cache", "verify.cache")
	o.Workers = 1 // deterministic counts: the deduplicated object is skipped
	rep, err := manifest.Verify(context.Background(), o)
	if err != nil || rep.Cached != 0 || rep.Hashed != rep.Files-1 {
		t.Fatalf("first run: %v %+v", err, rep)
	}
	rep, err = manifest.Verify(context.Background(), o)
	if err != nil || rep.Cached != rep.Files-1 || rep.Hashed != 0 {
		t.Fatalf("second run: %v %+v", err, rep)
	}
	if after := snapshot(t, w.Root); after != before {
		t.Fatalf("verify changed the channel:\n%s\n---\n%s", before, after)
	}

	// Change a byte of a cached object in place (same size): the changed
	// identity (ctime) must make Verify hash it again and find it corrupt.
	chmodTree(t, w.Root, true) // changes every ctime: all are hashed again
	if rep, err = manifest.Verify(context.Background(), o); err != nil || rep.Cached != 0 {
		t.Fatalf("after chmod: %v %+v", err, rep)
	}
	flipByte(t, w.Layout.ObjectPath(w.Big.SHA256), 7)
	rep, err = manifest.Verify(context.Background(), o)
	if !errors.Is(err, manifest.ErrCorrupt) || rep.Hashed != 1 {
		t.Fatalf("after change: %v %+v", err, rep)
	}

	o.Root = w.Root
	o.Cache = filepath.Join(w.Root, "cache")
	if _, err := manifest.Verify(context.Background(), o); err == nil {
		t.Fatal("a cache inside the channel was accepted")
	}
}

func TestVerifyDamagedCacheIsIgnored(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	o := w.opts()
	o.Cache = filepath.Join(t.TempDir(), "verify.cache")
	o.Workers = 1 // so that the deduplicated object is skipped, not found in the cache
	if _, err := manifest.Verify(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	flipByte(t, o.Cache, 40)
	rep, err := manifest.Verify(context.Background(), o)
	if err != nil || rep.Cached != 0 {
		t.Fatalf("damaged cache was trusted: %v %+v", err, rep)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	_, err = f.WriteAt(b, off)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every name below root with its size, mode and mtime.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + fi.Mode().String() + " " + fi.ModTime().String())
		if !fi.IsDir() {
			b.WriteString(" " + string(rune('0'+fi.Size()%10)))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// chmodTree removes (or restores) write permission on a tree. As root this
// does not stop writes, which is why the test also compares snapshots.
func chmodTree(t *testing.T, root string, writable bool) {
	t.Helper()
	must(t, filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		m := fi.Mode().Perm()
		if writable {
			m |= 0o200
		} else {
			m &^= 0o222
		}
		return os.Chmod(p, m)
	}))
}

type recorder struct {
	mu    sync.Mutex
	tasks []string
	ends  int
	bytes int64
}

func (r *recorder) Begin(what string, total int64, unit string) {
	r.mu.Lock()
	r.tasks = append(r.tasks, what+" "+unit)
	r.mu.Unlock()
}

func (r *recorder) Add(n int64) {
	r.mu.Lock()
	r.bytes += n
	r.mu.Unlock()
}

func (r *recorder) End() {
	r.mu.Lock()
	r.ends++
	r.mu.Unlock()
}

func TestVerifyProgress(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	var r recorder
	o := w.opts()
	o.Progress = &r
	rep, err := manifest.Verify(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.tasks, ",") != "verify: existence files,verify: hashing bytes" || r.ends != 2 || r.bytes != rep.Bytes {
		t.Fatalf("progress %v, %d ended, %d bytes; report %+v", r.tasks, r.ends, r.bytes, rep)
	}
}

func TestVerifyCancelled(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := manifest.Verify(ctx, w.opts()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// TestVerifyOlderSetAfterNewerGeneration: Elasticsearch replaces index-N and
// rewrites index.latest with every snapshot. An older set stays complete as
// long as its data blobs are there; its replaced metadata is "superseded".
func TestVerifyOlderSetAfterNewerGeneration(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	es := w.Layout.ESDir()
	must(t, os.WriteFile(filepath.Join(es, "index-4"), []byte("gen4"), 0o640))
	must(t, os.WriteFile(filepath.Join(es, "index.latest"), []byte{0, 0, 0, 0, 0, 0, 0, 4}, 0o640))
	must(t, os.Remove(filepath.Join(es, "index-3")))
	rep, err := manifest.Verify(context.Background(), w.opts())
	if err != nil || rep.Superseded != 2 {
		t.Fatalf("older set: %v %+v", err, rep)
	}
	// Its data blobs are still checked.
	flipByte(t, filepath.Join(es, "indices/x1/0/__a"), 0)
	if _, err := manifest.Verify(context.Background(), w.opts()); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("older set with a damaged blob: %v", err)
	}
}

func TestVerifyCacheBounded(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	o := w.opts()
	o.Cache = filepath.Join(t.TempDir(), "verify.cache")
	o.CacheMax = 3
	o.Workers = 1
	for range 2 {
		if _, err := manifest.Verify(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := manifest.Verify(context.Background(), o)
	if err != nil || rep.Cached > 3 || rep.Cached == 0 {
		t.Fatalf("bounded cache: %v %+v", err, rep)
	}
	// The header, 17 sections of 40 bytes (a count and a checksum), three
	// records of 72 bytes.
	if fi, err := os.Stat(o.Cache); err != nil || fi.Size() > 19+17*40+3*72 {
		t.Fatalf("cache file: %v %v", fi.Size(), err)
	}
}

// readOnlyMount returns a read-only bind mount of dir where this process
// may mount (root), so that any write fails with EROFS; elsewhere dir itself
// (its write bits removed by the caller, and the snapshot comparison proves
// nothing was written).
func readOnlyMount(t *testing.T, dir string) string {
	t.Helper()
	mnt := dir + "-ro"
	must(t, os.MkdirAll(mnt, 0o750))
	if exec.Command("mount", "--bind", dir, mnt).Run() != nil {
		return dir
	}
	t.Cleanup(func() { _ = exec.Command("umount", mnt).Run() })
	if exec.Command("mount", "-o", "remount,ro,bind", mnt).Run() != nil {
		return dir
	}
	if err := os.WriteFile(filepath.Join(mnt, "probe"), nil, 0o644); err == nil {
		t.Fatal("read-only bind mount is writable")
	}
	return mnt
}

// Without a usable temporary directory Verify parses the lists twice
// instead of spooling them; the outcome is the same.
func TestVerifyWithoutSpool(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	if rep, err := manifest.Verify(context.Background(), w.opts()); err != nil || rep.Files != 12 {
		t.Fatalf("%v %+v", err, rep)
	}
	flipByte(t, w.Layout.ObjectPath(w.Files["a.txt"].SHA256), 0)
	if _, err := manifest.Verify(context.Background(), w.opts()); !errors.Is(err, manifest.ErrCorrupt) {
		t.Fatalf("corrupt: %v", err)
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	in := manifest.Report{SetID: "0000000001-20261125T120000Z", Sequence: 1, Status: manifest.StatusNotForUs, Missing: []string{"x"}, Files: 3}
	data, err := json.Marshal(in)
	if err != nil || !strings.Contains(string(data), `"status":"not-for-us"`) {
		t.Fatalf("%s %v", data, err)
	}
	var out manifest.Report
	if err := json.Unmarshal(data, &out); err != nil || out.Status != in.Status || out.Files != 3 {
		t.Fatalf("%+v %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"status":"fine"}`), &out); err == nil {
		t.Fatal("unknown status accepted")
	}
}

// TestVerifyFutureSet: a validly signed set created a year after the
// reader's clock is refused as ErrFuture (a kind of ErrStale, exit 6) with a
// message naming the set, its creation time, the clock and the skew; one
// within the skew is accepted.
func TestVerifyFutureSet(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1<<10)
	for _, tt := range []struct {
		name  string
		ahead time.Duration
		skew  time.Duration
		ok    bool
	}{
		{"a year ahead", 365 * 24 * time.Hour, 0, false},
		{"within the default skew", time.Minute, 0, true},
		{"beyond a small skew", time.Minute, 30 * time.Second, false},
		{"check off", 365 * 24 * time.Hour, -1, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			created := w.Manifest.Created.Add(2 * time.Minute) // what publish(2) dates it
			now := created.Add(-tt.ahead)
			o := w.opts()
			o.SetID = w.publish(t, 2, k.Signer)
			defer func() { _ = os.RemoveAll(filepath.Join(w.Root, manifest.SetsDirName, o.SetID)) }()
			o.Now, o.MaxClockSkew = now, tt.skew
			rep, err := manifest.Verify(context.Background(), o)
			if tt.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, manifest.ErrFuture) || !errors.Is(err, manifest.ErrStale) || rep == nil || rep.Status != manifest.StatusStale {
				t.Fatalf("err %v, report %+v; want ErrFuture (stale)", err, rep)
			}
			for _, want := range []string{o.SetID, created.Format(time.RFC3339), now.Format(time.RFC3339), "max-clock-skew"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message does not name %q: %v", want, err)
				}
			}
		})
	}
}

func TestAgeNeverNegative(t *testing.T) {
	now := time.Now()
	if a := manifest.Age(now.Add(time.Hour), now); a != 0 {
		t.Fatalf("Age of a future set = %s, want 0", a)
	}
	if a := manifest.Age(now.Add(-time.Hour), now); a != time.Hour {
		t.Fatalf("Age = %s, want 1h", a)
	}
}
