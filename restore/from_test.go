package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestRunFromWhereESSeesItElsewhere: an older set kept in a directory that
// the standby's Elasticsearch sees under another path (here: a copy of the
// channel outside its path.repo, reached by ES through a link inside it)
// is restored with --from DIR --from-es-location PATH. Without it, the
// repository is registered at DIR/es, which ES refuses - before anything
// on the standby changed.
func TestRunFromWhereESSeesItElsewhere(t *testing.T) {
	f := newFixture(t)
	set := f.publishSmall()
	dir := filepath.Join(t.TempDir(), "prod-to-bcp") // not below ES's path.repo
	copyChannel(t, f.prodCh, dir)
	seen := filepath.Join(f.w.BCP.NFS, f.name+"-snapshot")
	testkit.Must(t, os.Symlink(dir, seen))

	if _, err := f.restore(runOptions{From: dir}); err == nil {
		t.Fatal("restore --from a directory outside path.repo succeeded without --from-es-location")
	}
	l, err := ledger.Open(f.state)
	testkit.Must(t, err)
	if live, err := l.Live(""); err == nil && live.Set != "" {
		t.Fatalf("something is live after a refused restore: %+v", live)
	}
	if _, err := f.restore(runOptions{FromES: filepath.Join(seen, "es")}); !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("--from-es-location without --from: %v, want a usage error", err)
	}
	if _, err := f.restore(runOptions{From: dir, FromES: filepath.Join(seen, "es")}); err != nil {
		t.Fatalf("restore --from %s --from-es-location %s/es: %v", dir, seen, err)
	}
	f.checkLive(set)
	f.sameData("after restore --from")
}

// TestRunRefusesWhatDoesNotFit: when the files the set writes do not fit
// on the storage's file system, restore refuses with exit 3 before the
// first stage: Elasticsearch and MySQL keep what they had.
func TestRunRefusesWhatDoesNotFit(t *testing.T) {
	f := newFixture(t)
	f.bcpTree = filepath.Join(testenv.Tmpfs(t, "1m"), "storage")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "big.bin"), strings.Repeat("x", 3<<20))
	f.publishSmall()
	f.transfer()
	out, err := f.restore(runOptions{})
	if code := exitCode(err); code != 3 || !errors.Is(err, filetree.ErrNoSpace) {
		t.Fatalf("restore onto a full file system: exit %d (%v), want 3", code, err)
	}
	if !strings.Contains(err.Error(), "nothing was changed") {
		t.Errorf("the error does not say that nothing changed: %v", err)
	}
	if n := f.docCounts(f.bcpES); len(n) != 0 {
		t.Fatalf("Elasticsearch was changed: %v\n%s", n, out)
	}
	if dbs := f.databases(f.bcpDB); slices.Contains(dbs, f.db("app")) {
		t.Fatalf("MySQL was changed: %v", dbs)
	}
}

// TestFilesViaSSH: with files-via-ssh the trees are applied through the
// transfer program on the leader, which changes nothing outside the
// storage directory - also where the storage already holds a link to
// elsewhere at a path where the set has a directory. Without a transfer
// program there, the restore stops before any change.
func TestFilesViaSSH(t *testing.T) {
	f := newFixture(t)
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "alpha pdf")
	f.publishSmall()
	f.transfer()
	outside := t.TempDir()
	testkit.Must(t, os.MkdirAll(f.bcpTree, 0o750))
	testkit.Must(t, os.Symlink(outside, filepath.Join(f.bcpTree, "docs")))
	bin, err := filepath.Abs(os.Args[0])
	testkit.Must(t, err)
	e := f.env()
	e.cfg.FilesViaSSH = true

	e.cfg.RemoteTransfer = filepath.Join(t.TempDir(), "no-such-transfer")
	var out strings.Builder
	err = runRun(context.Background(), runOptions{}, e, &out)
	if err == nil || !strings.Contains(err.Error(), "remote-transfer") {
		t.Fatalf("restore without a transfer program on the leader: %v, want an error naming remote-transfer", err)
	}
	if n := f.docCounts(f.bcpES); len(n) != 0 {
		t.Fatalf("Elasticsearch was changed: %v", n)
	}

	e.cfg.RemoteTransfer = bin
	// A dry run plans the tree and checks its space through one helper,
	// and changes nothing.
	var dry strings.Builder
	if err := runRun(context.Background(), runOptions{DryRun: true}, e, &dry); err != nil {
		t.Fatalf("dry run with files-via-ssh: %v\n%s", err, dry.String())
	}
	if !strings.Contains(dry.String(), "files storage -> "+f.bcpTree+": ") {
		t.Fatalf("dry run plans no storage tree:\n%s", dry.String())
	}
	if n := f.docCounts(f.bcpES); len(n) != 0 {
		t.Fatalf("the dry run changed Elasticsearch: %v", n)
	}
	if err := runRun(context.Background(), runOptions{}, e, &out); err != nil {
		t.Fatalf("restore with files-via-ssh: %v\n%s", err, out.String())
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside the storage directory: %v", ents)
	}
	f.sameData("after a restore through the helper")
}
