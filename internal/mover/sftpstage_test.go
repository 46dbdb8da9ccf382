package mover

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestSFTPStagedBatch: over SFTP alone a batch of small files goes through
// tar into a staging directory only the account may enter, and each file
// is renamed into place once the batch is durable. What a killed run left
// there never shows under a final name, and the next run removes it; the
// directory is gone after a run. Without tar the files go one by one.
func TestSFTPStagedBatch(t *testing.T) {
	s := testenv.SSHD(t)
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "sftp-stage", Files: 600, FileSize: 700})
	stage := func(dstDir string) string { return filepath.Join(dstDir, stageName) }
	gone := func(t *testing.T, dstDir string) {
		t.Helper()
		if _, err := os.Lstat(stage(dstDir)); !os.IsNotExist(err) {
			t.Fatalf("the staging directory is still there after the run: %v", err)
		}
	}

	t.Run("leftovers removed", func(t *testing.T) {
		dstDir := t.TempDir()
		testkit.Must(t, os.MkdirAll(filepath.Join(stage(dstDir), "old"), 0o755))
		testkit.Must(t, os.WriteFile(filepath.Join(stage(dstDir), "1"), []byte("left by a killed run"), 0o644))
		dst := dialSFTP(t, s, dstDir)
		run(t, opts(c, NewLocal(srcDir), dst))
		if got := dst.viaSFTP.stage.state; got != syncWorks {
			t.Fatalf("staging state %d: the batches did not go through tar", got)
		}
		if dst.viaSFTP.stage.gzipped.Load() == 0 {
			t.Fatal("no stream went compressed")
		}
		testkit.Must(t, dst.Close())
		gone(t, dstDir)
		verifyDst(t, c, dstDir, id)
	})

	t.Run("killed mid-batch", func(t *testing.T) {
		dstDir := t.TempDir()
		dropMidBatch(t, s, c, srcDir, dialSFTP(t, s, dstDir), dstDir, id)
		if fi, err := os.Stat(stage(dstDir)); err == nil && fi.Mode().Perm() != 0o700 {
			t.Fatalf("staging directory mode %#o, want 0700", fi.Mode().Perm())
		}
		dst := dialSFTP(t, s, dstDir)
		run(t, opts(c, NewLocal(srcDir), dst))
		testkit.Must(t, dst.Close())
		gone(t, dstDir)
		verifyDst(t, c, dstDir, id)
	})

	// Each way a part is missing: the copy is whole either way. want says
	// what went through tar, compressed, through the shell.
	for _, tc := range []struct {
		name                   string
		setup                  func(f *sftpFS)
		stage, gzip, sync, dir bool
	}{
		{"no gzip", func(f *sftpFS) { f.gzipCmd = "/nonexistent/gzip" }, true, false, true, true},
		{"compression off", func(f *sftpFS) { f.s.SetCompress(false) }, true, false, true, true},
		{"no tar", func(f *sftpFS) { f.tarCmd = "/nonexistent/tar" }, false, false, true, true},
		{"no shell", func(f *sftpFS) { f.shellCmd, f.tarCmd = "exec false", "/nonexistent/tar" }, false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dstDir := t.TempDir()
			dst := dialSFTP(t, s, dstDir)
			setShell(dst.viaSFTP, tc.setup)
			run(t, opts(c, NewLocal(srcDir), dst))
			v := dst.viaSFTP
			works := func(state int32) bool { return state == syncWorks }
			if got := [4]bool{works(v.stage.state), v.stage.gzipped.Load() > 0, works(v.syncState.Load()), works(v.mkdirState.Load())}; got != [4]bool{tc.stage, tc.gzip, tc.sync, tc.dir} {
				t.Fatalf("through tar, compressed, sync -f, mkdir: %v, want %v", got, [4]bool{tc.stage, tc.gzip, tc.sync, tc.dir})
			}
			testkit.Must(t, dst.Close())
			gone(t, dstDir)
			verifyDst(t, c, dstDir, id)
		})
	}
}
