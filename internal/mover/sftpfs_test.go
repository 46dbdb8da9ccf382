package mover

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestSFTPMkdirAll: over SFTP alone the directories the mover makes at
// once go through the shell together, a command for many (a regression
// to one per directory fails the count), each with manifest.DirPerm and
// its missing parents, whatever the names hold (nothing in a name is
// run); one that cannot be made fails alone, the others are made. Where
// mkdir cannot be run through the shell each goes over SFTP, with the
// same result.
func TestSFTPMkdirAll(t *testing.T) {
	s := testenv.SSHD(t)
	ctx := context.Background()
	odd := []string{"sets/-x y", "sets/it's $(touch pwned)", "a/new\nline `touch pwned2`/deep/er", "objects/ab"}
	var dirs []string
	for i := range 256 {
		dirs = append(dirs, fmt.Sprintf("objects/%02x", i))
	}
	dirs = append(dirs, odd...)
	check := func(t *testing.T, root string) {
		t.Helper()
		for _, d := range dirs {
			for p := d; p != "."; p = filepath.Dir(p) {
				fi, err := os.Stat(filepath.Join(root, p))
				if err != nil || !fi.IsDir() || fi.Mode().Perm() != manifest.DirPerm {
					t.Fatalf("%q: %v %v", p, fi, err)
				}
			}
		}
		notRun(t, root)
	}

	t.Run("through the shell", func(t *testing.T) {
		root := t.TempDir()
		f := dialSFTP(t, s, root)
		// mkdir that counts its runs
		calls := filepath.Join(t.TempDir(), "calls")
		mkdir := filepath.Join(t.TempDir(), "mkdir")
		testkit.Must(t, os.WriteFile(mkdir, []byte("#!/bin/sh\necho x >> "+calls+"\nexec mkdir \"$@\"\n"), 0o755))
		f.viaSFTP.mkdirCmd = mkdir
		testkit.Must(t, mkdirs(ctx, f, dirs, 512))
		check(t, root)
		runs, err := os.ReadFile(calls)
		testkit.Must(t, err)
		if n := bytes.Count(runs, []byte("\n")); n > 40 {
			t.Fatalf("mkdir ran %d times for %d directories: not made together", n, len(dirs))
		}
		if got := f.viaSFTP.mkdirState.Load(); got != syncWorks {
			t.Fatalf("mkdir state %d, want works", got)
		}
		// One in the way fails alone.
		testkit.Must(t, os.WriteFile(filepath.Join(root, "file"), nil, 0o644))
		errs := make(chan error, 2)
		go func() { errs <- f.MkdirAll(ctx, "file/sub") }()
		go func() { errs <- f.MkdirAll(ctx, "objects/new") }()
		var failed int
		for range 2 {
			if err := <-errs; err != nil {
				failed++
				if !strings.Contains(err.Error(), "file") {
					t.Errorf("the failure does not say where: %v", err)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(root, "objects/new")); failed != 1 || err != nil {
			t.Fatalf("%d failed, objects/new: %v", failed, err)
		}
		if got := f.viaSFTP.mkdirState.Load(); got != syncWorks {
			t.Fatalf("mkdir state %d after a directory in the way, want works", got)
		}
	})

	for _, c := range []struct {
		name  string
		setup func(f *sftpFS)
	}{
		{"no mkdir", func(f *sftpFS) { f.mkdirCmd = "/nonexistent/mkdir" }},
		{"no shell", func(f *sftpFS) { f.shellCmd = "exec false" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			f := dialSFTP(t, s, root)
			setShell(f.viaSFTP, c.setup)
			testkit.Must(t, mkdirs(ctx, f, dirs, 512))
			check(t, root)
			if got := f.viaSFTP.mkdirState.Load(); got != syncUnavailable {
				t.Fatalf("mkdir state %d, want unavailable", got)
			}
		})
	}
}

// TestSFTPStageAhead: over SFTP alone the staging directory (0700) and
// spareTars tar sessions, on a connection of their own, are made as soon
// as the run makes a directory, before the first file is written, and a
// run that then writes nothing leaves no staging directory behind.
func TestSFTPStageAhead(t *testing.T) {
	s := testenv.SSHD(t)
	root := t.TempDir()
	f := dialSFTP(t, s, root)
	testkit.Must(t, f.MkdirAll(context.Background(), "objects/ab"))
	st := &f.viaSFTP.stage
	deadline := time.Now().Add(20 * time.Second)
	for len(st.spare) < spareTars {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tar sessions started ahead", len(st.spare), spareTars)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, err := os.Stat(filepath.Join(root, stageName))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("staging directory: %v %v", fi, err)
	}
	// Not beside the first connection's 8 SFTP sessions and the shell:
	// an sshd allows 10 sessions a connection unless told otherwise.
	f.mu.Lock()
	first := f.open[0].ssh
	f.mu.Unlock()
	if st.conn == nil || st.conn == first || first.Client == nil {
		t.Fatal("the tar sessions have no connection of their own")
	}
	testkit.Must(t, f.Close())
	if _, err := os.Lstat(filepath.Join(root, stageName)); !os.IsNotExist(err) {
		t.Fatalf("the staging directory is still there after the run: %v", err)
	}
}

// setShell changes f's commands with setup, the shell started at dial
// time with the usual ones ended first.
func setShell(f *sftpFS, setup func(f *sftpFS)) {
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	setup(f)
	if f.shell != nil {
		_ = f.shell.sess.Close()
		f.shell = nil
	}
}

// TestSyncDirsCommand: the command SFTP alone's SyncFS runs names one
// directory per file system to sync (the first of each, in order),
// whatever the names hold, and every one of them where stat cannot tell
// their devices (a missing one: sync then fails as it should).
func TestSyncDirsCommand(t *testing.T) {
	root := t.TempDir()
	names := []string{"a", "b c", "-x", "new\nline", "$(touch pwned)", "`touch pwned2`", "it's"}
	var paths []string
	for _, n := range names {
		testkit.Must(t, os.Mkdir(filepath.Join(root, n), 0o755))
		paths = append(paths, filepath.Join(root, n))
	}
	other := "/proc" // another file system
	sync := func(paths []string) []string {
		t.Helper()
		cmd := exec.Command("sh", "-c", syncDirsCommand(`printf '%s\0'`, paths))
		cmd.Dir = root
		out, err := cmd.Output()
		testkit.Must(t, err)
		return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	}
	if got := sync(append(paths, other)); !slices.Equal(got, []string{paths[0], other}) {
		t.Errorf("synced %q, want %q", got, []string{paths[0], other})
	}
	all := append(paths, filepath.Join(root, "missing"))
	if got := sync(all); !slices.Equal(got, all) {
		t.Errorf("stat failed, synced %q, want all %q", got, all)
	}
	if got := sync(paths[:1]); !slices.Equal(got, paths[:1]) {
		t.Errorf("one: synced %q", got)
	}
	notRun(t, root)
}

// A destination made not connected yet (NewSFTP) is connected by Run
// while it reads the source's newest set and plans it as a first copy's
// (planEarly; the plan is taken): the copy is whole and the rerun finds
// nothing to do; a destination that cannot be reached fails
// the run saying so, and closes cleanly.
func TestRunDialsTheDestination(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("dial", 20))
	s := testenv.SSHD(t)
	dst := NewSFTP(s.Config(), dstDir, helperOptions(t))
	t.Cleanup(func() { _ = dst.Close() })
	o := opts(c, NewLocal(srcDir), dst)
	o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "checked"))
	taken := earlyTaken.Load()
	if res := run(t, o); res.Set != id || res.Copied != res.Files {
		t.Fatalf("first copy: %+v", res)
	}
	if earlyTaken.Load() != taken+1 {
		t.Error("the first copy's plan made while connecting was not taken")
	}
	verifyDst(t, c, dstDir, id)
	if res := run(t, o); res.Copied != 0 {
		t.Fatalf("rerun: %+v, want nothing to do", res)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.Must(t, err)
	cfg := s.Config()
	cfg.Port = l.Addr().(*net.TCPAddr).Port
	testkit.Must(t, l.Close())
	down := NewSFTP(cfg, t.TempDir(), SFTPOptions{Helper: helperBin(t)})
	o.Dst = down
	_, err = Run(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "connect to the destination") {
		t.Fatalf("a destination that is down: %v", err)
	}
	testkit.Must(t, down.Close())
}
