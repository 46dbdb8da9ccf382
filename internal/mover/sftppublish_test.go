package mover

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestSFTPPublish: over SFTP alone a phase of a few files goes in one tar
// session whose script fsyncs, renames and fsyncs their directories:
// each file is in place with its mode, an existing one replaced, whatever
// the names hold (nothing in a name is run), and nothing is left staged.
// Where the script fails (mv without -T here; a final name that is a
// directory) the answer is remote.ErrNotOffered, for the rest of the run,
// and nothing shows under a final name.
func TestSFTPPublish(t *testing.T) {
	s := testenv.SSHD(t)
	ctx := context.Background()
	names := []string{"sets/-x y/manifest.json", "sets/-x y/it's $(touch pwned)", "objects/ab/new\nline `touch pwned2`", "top"}
	mk := func(t *testing.T) (string, []remote.Published) {
		dir := t.TempDir()
		var files []remote.Published
		for i, n := range names {
			testkit.Must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(n)), 0o755))
			files = append(files, remote.Published{Tmp: tmpName(n), Name: n, Data: bytes.Repeat([]byte{byte('a' + i)}, 100*i+1)})
		}
		testkit.Must(t, os.WriteFile(filepath.Join(dir, "top"), []byte("old"), 0o644))
		return dir, files
	}

	t.Run("published", func(t *testing.T) {
		dir, files := mk(t)
		f := dialSFTP(t, s, dir)
		testkit.Must(t, f.Publish(ctx, files))
		for _, p := range files {
			got, err := os.ReadFile(filepath.Join(dir, p.Name))
			if err != nil || !bytes.Equal(got, p.Data) {
				t.Fatalf("%q: %q, %v", p.Name, got, err)
			}
			fi, err := os.Stat(filepath.Join(dir, p.Name))
			testkit.Must(t, err)
			if want := manifest.PermOf(p.Name); fi.Mode().Perm() != want {
				t.Errorf("%q: mode %#o, want %#o", p.Name, fi.Mode().Perm(), want)
			}
		}
		left, err := os.ReadDir(filepath.Join(dir, stageName))
		if err != nil || len(left) != 0 {
			t.Fatalf("left staged: %v %v", left, err)
		}
		if f.viaSFTP.publishState.Load() != syncWorks {
			t.Fatal("not published through tar")
		}
		testkit.Must(t, f.Close())
		if _, err := os.Lstat(filepath.Join(dir, stageName)); !os.IsNotExist(err) {
			t.Fatalf("the staging directory is still there after the run: %v", err)
		}
		notRun(t, dir)
	})

	for _, c := range []struct {
		name  string
		setup func(f *SFTP, dir string)
	}{
		{"mv without -T", func(f *SFTP, _ string) {
			mv := filepath.Join(t.TempDir(), "mv")
			testkit.Must(t, os.WriteFile(mv, []byte("#!/bin/sh\necho \"mv: invalid option -- 'T'\" >&2; exit 1\n"), 0o755))
			f.viaSFTP.mvCmd = mv
		}},
		{"no mv", func(f *SFTP, _ string) { f.viaSFTP.mvCmd = "/nonexistent/mv" }},
		{"a directory in the way", func(_ *SFTP, dir string) { testkit.Must(t, os.Mkdir(filepath.Join(dir, names[0]), 0o755)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, files := mk(t)
			f := dialSFTP(t, s, dir)
			c.setup(f, dir)
			for range 2 {
				if err := f.Publish(ctx, files); !errors.Is(err, remote.ErrNotOffered) {
					t.Fatalf("%v, want remote.ErrNotOffered", err)
				}
			}
			for _, n := range names[1:] {
				got, err := os.ReadFile(filepath.Join(dir, n))
				if n == "top" && string(got) != "old" || n != "top" && err == nil {
					t.Errorf("%q under its final name: %q", n, got)
				}
			}
			if ents, err := os.ReadDir(filepath.Join(dir, names[0])); c.name == "a directory in the way" && (err != nil || len(ents) != 0) {
				t.Errorf("the directory in the way holds %v (%v)", ents, err)
			}
		})
	}
}

// TestSFTPPublishSteps: over SFTP alone the end of a copy goes in one tar
// session: the directories to sync synced, then each step published in
// turn, a missing directory made (manifest.DirPerm) before its files,
// whatever the names hold. A step that fails stops the script there: the
// steps before it are in place, none after it, and the answer is
// remote.ErrNotOffered.
func TestSFTPPublishSteps(t *testing.T) {
	s := testenv.SSHD(t)
	ctx := context.Background()
	steps := [][]string{{"es/index-1 $(touch pwned)"}, {"es/index.latest"}, {"sets/-new set's/manifest.json", "sets/-new set's/x`touch pwned2`"}, {"sets/-new set's/manifest.json.sig"}}
	mk := func(t *testing.T) (string, [][]remote.Published) {
		dir := t.TempDir()
		testkit.Must(t, os.MkdirAll(filepath.Join(dir, "es"), 0o755))
		testkit.Must(t, os.MkdirAll(filepath.Join(dir, "objects", "a b"), 0o755))
		var out [][]remote.Published
		for i, names := range steps {
			var files []remote.Published
			for j, n := range names {
				files = append(files, remote.Published{Tmp: tmpName(n), Name: n, Data: bytes.Repeat([]byte{byte('a' + i)}, 10*i+j+1)})
			}
			out = append(out, files)
		}
		return dir, out
	}

	t.Run("published", func(t *testing.T) {
		dir, files := mk(t)
		f := dialSFTP(t, s, dir)
		_, err := f.viaSFTP.PublishSteps(ctx, []string{"objects/a b", "es"}, files, []string{"es"})
		testkit.Must(t, err)
		for _, step := range files {
			for _, p := range step {
				got, err := os.ReadFile(filepath.Join(dir, p.Name))
				if err != nil || !bytes.Equal(got, p.Data) {
					t.Fatalf("%q: %q, %v", p.Name, got, err)
				}
			}
		}
		fi, err := os.Stat(filepath.Join(dir, "sets", "-new set's"))
		if err != nil || fi.Mode().Perm() != manifest.DirPerm {
			t.Fatalf("the set's directory: %v %v", fi, err)
		}
		if left, err := os.ReadDir(filepath.Join(dir, stageName)); err != nil || len(left) != 0 {
			t.Fatalf("left staged: %v %v", left, err)
		}
		notRun(t, dir)
	})

	t.Run("a step fails", func(t *testing.T) {
		dir, files := mk(t)
		f := dialSFTP(t, s, dir)
		testkit.Must(t, os.MkdirAll(filepath.Join(dir, files[1][0].Name), 0o755)) // in the way of step 2
		if _, err := f.viaSFTP.PublishSteps(ctx, []string{"es"}, files, nil); !errors.Is(err, remote.ErrNotOffered) {
			t.Fatalf("%v, want remote.ErrNotOffered", err)
		}
		if _, err := os.Stat(filepath.Join(dir, files[0][0].Name)); err != nil {
			t.Fatalf("step 1 not in place: %v", err)
		}
		for _, step := range files[2:] {
			for _, p := range step {
				if _, err := os.Lstat(filepath.Join(dir, p.Name)); err == nil {
					t.Fatalf("%q in place after an earlier step failed", p.Name)
				}
			}
		}
	})
}
