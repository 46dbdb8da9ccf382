package mover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// orderFS is a local destination that records what is durable and fails
// a rename if the file it puts in place is not: written and fsynced, or
// written and closed before a SyncFS. A rename into sets/ also needs every
// earlier rename to have been made durable (SyncFS or SyncDir). After
// failAfter renames (0: never) everything fails, as if the process died.
type orderFS struct {
	*Local
	mu         sync.Mutex
	closed     map[string]bool // written and closed, not yet durable
	durable    map[string]bool
	renamed    bool // a rename not yet made durable
	syncfs     int
	fileSyncs  int
	renames    int
	failAfter  int
	violations []string
}

var errDied = errors.New("injected: the mover died")

func newOrderFS(dir string, failAfter int) *orderFS {
	return &orderFS{Local: NewLocal(dir), closed: map[string]bool{}, durable: map[string]bool{}, failAfter: failAfter}
}

func (o *orderFS) dead() bool { return o.failAfter > 0 && o.renames >= o.failAfter }

type orderFile struct {
	File
	o    *orderFS
	name string
}

func (f *orderFile) Sync() error {
	err := f.File.Sync()
	f.o.mu.Lock()
	f.o.fileSyncs++
	f.o.durable[f.name] = true
	f.o.mu.Unlock()
	return err
}

func (f *orderFile) Close() error {
	err := f.File.Close()
	f.o.mu.Lock()
	f.o.closed[f.name] = true
	f.o.mu.Unlock()
	return err
}

func (o *orderFS) Create(ctx context.Context, name string) (File, error) {
	o.mu.Lock()
	dead := o.dead()
	delete(o.durable, name)
	delete(o.closed, name)
	o.mu.Unlock()
	if dead {
		return nil, errDied
	}
	f, err := o.Local.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &orderFile{File: f, o: o, name: name}, nil
}

func (o *orderFS) SyncFS(ctx context.Context, dirs []string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.dead() {
		return errDied
	}
	if err := o.Local.SyncFS(ctx, dirs); err != nil {
		return err
	}
	o.syncfs++
	for n := range o.closed {
		o.durable[n] = true
	}
	o.renamed = false
	return nil
}

func (o *orderFS) SyncDir(ctx context.Context, dir string) error {
	o.mu.Lock()
	o.renamed = false
	o.mu.Unlock()
	return o.Local.SyncDir(ctx, dir)
}

func (o *orderFS) Rename(ctx context.Context, from, to string) error {
	if err := o.renaming(from, to); err != nil {
		return err
	}
	return o.Local.Rename(ctx, from, to)
}

func (o *orderFS) RenameStat(ctx context.Context, from, to string) (Entry, bool, error) {
	if err := o.renaming(from, to); err != nil {
		return Entry{}, false, err
	}
	return o.Local.RenameStat(ctx, from, to)
}

// renaming checks a rename's order (or dies, as told).
func (o *orderFS) renaming(from, to string) error {
	o.mu.Lock()
	if o.dead() {
		o.mu.Unlock()
		return errDied
	}
	o.renames++
	if !o.durable[from] {
		o.violations = append(o.violations, "renamed before durable: "+to)
	}
	if strings.HasPrefix(to, manifest.SetsDirName+"/") && o.renamed {
		o.violations = append(o.violations, "set file renamed before the data's renames were durable: "+to)
	}
	o.renamed = true
	o.mu.Unlock()
	return nil
}

// checkFinalNames fails if any object under its final name at dir does not
// hash to its name: a half or wrong file visible.
func checkFinalNames(t *testing.T, dir string) (n int) {
	t.Helper()
	root := filepath.Join(dir, manifest.ObjectsDirName)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != d.Name() {
			t.Errorf("%s is visible under its final name with wrong content", p)
		}
		n++
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

// TestBatchDurability: small files are copied in batches made durable by
// one SyncFS before they are renamed, and the set's files are renamed only
// after the data's renames are durable. The mover dies at several points
// in the middle of a batch; no file under a final name is ever incomplete,
// the set never appears early, and a rerun completes it.
func TestBatchDurability(t *testing.T) {
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "batch", Files: batchLeast + 300, FileSize: 512, Blobs: 2, BlobSize: 2 << 20})
	for _, failAfter := range []int{0, 2, 100, batchLeast + 10} {
		t.Run("die after "+strconv.Itoa(failAfter)+" renames", func(t *testing.T) {
			dstDir := t.TempDir()
			dst := newOrderFS(dstDir, failAfter)
			o := opts(c, NewLocal(srcDir), dst)
			o.Workers = 32
			_, err := Run(context.Background(), o)
			if failAfter > 0 && !errors.Is(err, errDied) {
				t.Fatalf("Run = %v, want the injected death", err)
			}
			if failAfter == 0 && err != nil {
				t.Fatal(err)
			}
			for _, v := range dst.violations {
				t.Error(v)
			}
			if dst.syncfs == 0 {
				t.Fatal("no SyncFS: the batch path was not taken")
			}
			if dst.fileSyncs > 3 { // channel.json and the two large blobs
				t.Errorf("%d files fsynced one by one, want only the large ones", dst.fileSyncs)
			}
			checkFinalNames(t, dstDir)
			if failAfter > 0 {
				if signed(dstDir, id) {
					t.Fatal("the set appeared although the mover died")
				}
				run(t, opts(c, NewLocal(srcDir), NewLocal(dstDir)))
			}
			verifyDst(t, c, dstDir, id)
		})
	}
}

// dropMidBatch copies srcDir's set id to dst, killing the server's
// sessions halfway through the first batch of 600 files of 700 bytes,
// and checks that the copy failed with nothing under a final name
// incomplete and the set not visible.
func dropMidBatch(t *testing.T, s *testenv.SSHServer, c *movertest.Channel, srcDir string, dst *SFTP, dstDir, id string) {
	t.Helper()
	o := opts(c, NewLocal(srcDir), dst)
	k := &killer{srv: s, after: 300 * 700}
	o.Progress = k
	if _, err := Run(context.Background(), o); err == nil {
		t.Fatal("copy survived the connection dropping")
	}
	if !k.done.Load() {
		t.Fatal("sshd was not killed")
	}
	checkFinalNames(t, dstDir)
	if signed(dstDir, id) {
		t.Fatal("the set appeared although the copy broke off")
	}
}

// TestSFTPSyncFS: over SFTP, batches are made durable with sync -f in a
// shell on the server; an account that cannot run commands (the command
// fails, or a forced command exits 0 without running it) falls back to an
// fsync per file, and the copy is complete either way. The connection
// dropping mid-batch leaves no file under a final name incomplete.
func TestSFTPSyncFS(t *testing.T) {
	s := testenv.SSHD(t)
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "sftp-batch", Files: 600, FileSize: 700})
	for _, tc := range []struct {
		name, cmd string
		want      int32
	}{
		{"sync -f", "", syncWorks},
		{"command fails", "false", syncUnavailable},
		{"forced command exits 0", "exec true", syncUnavailable},
		{"no such command", "/nonexistent/sync", syncUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dstDir := t.TempDir()
			dst := dialSFTP(t, s, dstDir)
			if tc.cmd != "" {
				dst.viaSFTP.syncCmd = tc.cmd
			}
			run(t, opts(c, NewLocal(srcDir), dst))
			if got := dst.viaSFTP.syncState.Load(); got != tc.want {
				t.Fatalf("sync state %d, want %d", got, tc.want)
			}
			verifyDst(t, c, dstDir, id)
		})
	}
	for _, v := range []struct {
		name string
		dial func(*testing.T, *testenv.SSHServer, string) *SFTP
	}{{"sftp", dialSFTP}, {"helper", dialHelper}} {
		t.Run("connection dropped mid-batch/"+v.name, func(t *testing.T) {
			dstDir := t.TempDir()
			dropMidBatch(t, s, c, srcDir, v.dial(t, s, dstDir), dstDir, id)
			run(t, opts(c, NewLocal(srcDir), v.dial(t, s, dstDir)))
			verifyDst(t, c, dstDir, id)
		})
	}
}

// Batches are batchMost files while many are left, then shrink over the
// last few to batchLeast, so that a phase's last sync has little to wait
// for; a phase of few files is one batch.
func TestBatchSizes(t *testing.T) {
	sizes := func(n int64) []int {
		var out []int
		for n > 0 {
			b := min(int64(batchSize(n)), n)
			out = append(out, int(b))
			n -= b
		}
		return out
	}
	big := sizes(100_000)
	if big[0] != batchMost || big[len(big)-1] > batchLeast || len(big) > 100_000/batchMost+12 {
		t.Errorf("100k files: batches %v, want %d first, at most %d last, few", big, batchMost, batchLeast)
	}
	for i := 1; i < len(big); i++ {
		if big[i] > big[i-1] {
			t.Errorf("100k files: batches %v grow at %d", big, i)
		}
	}
	if few := sizes(300); len(few) != 1 {
		t.Errorf("300 files: batches %v, want one", few)
	}
}
