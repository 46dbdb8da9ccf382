package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// fakeFilesRecord writes a files record into the state directory dir.
func fakeFilesRecord(t *testing.T, dir string) {
	t.Helper()
	testkit.Must(t, os.MkdirAll(dir, 0o700))
	testkit.Must(t, os.WriteFile(filesRecordPath(dir, "storage"), []byte(`{"tree":"storage"}`), 0o600))
}

// noFilesRecord fails unless the state directory dir holds no files record.
func noFilesRecord(t *testing.T, dir, after string) {
	t.Helper()
	if recs, err := readFilesRecords(dir); err != nil || len(recs) != 0 {
		t.Fatalf("after %s: files records %+v (%v), want none", after, recs, err)
	}
}

// TestFilesSkipUnchanged: a restore records the tree it applied; the next
// one skips the directories whose list did not change, so a file changed
// on the standby by hand below one of them is not corrected; restore run
// --full-compare corrects it, and so does the first restore
// full-compare-every after the last full comparison (restore status says
// when that was), a restore --from another directory, and one beside a
// recorded set whose lists were pruned. An interrupted files stage leaves
// no record.
func TestFilesSkipUnchanged(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"keep/k.txt", "keep/sub/k2.txt", "chg/c.txt"} {
		testkit.WriteFile(t, filepath.Join(f.prodTree, p), "prod "+p)
		testkit.Must(t, os.Chtimes(filepath.Join(f.prodTree, p), t0, t0))
	}
	f.publishSmall()
	f.transfer()
	e := f.env()
	e.cfg.FullCompareEvery = 24 * time.Hour
	restore := func(what string, o runOptions) string {
		t.Helper()
		var out bytes.Buffer
		if err := runRun(context.Background(), o, e, &out); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out.String())
		}
		return out.String()
	}
	record := func(what string) filesRecord {
		t.Helper()
		recs, err := readFilesRecords(f.state)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: files records %+v (%v), want one", what, recs, err)
		}
		return recs[0]
	}
	restore("first restore", runOptions{})
	first := record("first restore")
	if first.Dir.SHA256 == "" || first.Channel != "prod-to-bcp" || first.Target != f.bcpTree {
		t.Fatalf("record %+v", first)
	}
	hand := filepath.Join(f.bcpTree, "keep/sub/k2.txt")
	byHand := func() {
		t.Helper()
		testkit.WriteFile(t, hand, "changed by hand")
	}
	handIs := func(what, want string) {
		t.Helper()
		if b, err := os.ReadFile(hand); err != nil || string(b) != want {
			t.Fatalf("%s: %s = %q (%v), want %q", what, hand, b, err, want)
		}
	}

	// a change in prod's chg/; keep/ changed by hand on the standby
	byHand()
	testkit.WriteFile(t, filepath.Join(f.prodTree, "chg/c.txt"), "prod, changed")
	f.publish()
	f.transfer()
	restore("second restore", runOptions{})
	handIs("a skipping restore", "changed by hand")
	if b, _ := os.ReadFile(filepath.Join(f.bcpTree, "chg/c.txt")); string(b) != "prod, changed" {
		t.Fatalf("chg/c.txt = %q: the changed directory was not applied", b)
	}
	second := record("second restore")
	if second.Dir == first.Dir || !second.FullCompare.Equal(first.FullCompare) {
		t.Fatalf("second record %+v, first %+v: want a new tree, the same full comparison", second, first)
	}

	// --full-compare corrects it
	restore("--full-compare", runOptions{AllowOlder: true, FullCompare: true})
	handIs("restore --full-compare", "prod keep/sub/k2.txt")
	if rec := record("--full-compare"); !rec.FullCompare.After(second.FullCompare) {
		t.Fatalf("--full-compare did not record a full comparison: %+v", rec)
	}

	// so does the first restore full-compare-every after the last one
	byHand()
	restore("within the period", runOptions{AllowOlder: true})
	handIs("a restore within full-compare-every", "changed by hand")
	rec := record("within the period")
	rec.FullCompare = time.Now().Add(-25 * time.Hour)
	b, err := json.Marshal(rec)
	testkit.Must(t, err)
	testkit.Must(t, manifest.WriteFileAtomic(filesRecordPath(f.state, rec.Tree), b, 0o600))
	var st bytes.Buffer
	testkit.Must(t, runStatus(context.Background(), statusOptions{}, e, &st))
	if want := "files compared:  tree storage: every file at " + rec.FullCompare.UTC().Format(time.RFC3339); !strings.Contains(st.String(), want) {
		t.Fatalf("restore status does not say %q:\n%s", want, st.String())
	}
	restore("after the period", runOptions{AllowOlder: true})
	handIs("a restore after full-compare-every", "prod keep/sub/k2.txt")

	// --from another directory compares every file
	byHand()
	dir := filepath.Join(f.w.BCP.NFS, f.name+"-copy") // below the standby's path.repo
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	copyChannel(t, f.bcpCh, dir)
	restore("--from", runOptions{AllowOlder: true, From: dir})
	handIs("a restore --from another directory", "prod keep/sub/k2.txt")

	// a files stage that is interrupted leaves no record
	record("before an interrupted files stage")
	sets, err := manifest.List(f.bcpCh)
	testkit.Must(t, err)
	data, err := os.ReadFile(manifest.Layout{Root: f.bcpCh}.ManifestPath(sets[len(sets)-1].ID))
	testkit.Must(t, err)
	m, err := manifest.Decode(data)
	testkit.Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := newRestorer(e.cfg, e.log, e.rep)
	if _, err := r.applyRecorded(ctx, f.bcpCh, m.Channel.Name, m.Trees[0], f.bcpTree); err == nil {
		t.Fatal("an interrupted files stage succeeded")
	}
	noFilesRecord(t, f.state, "an interrupted files stage")

	// the recorded set's root list pruned from the channel: every
	// directory is compared (keep/ did not change, yet is compared)
	restore("after the interrupted one", runOptions{AllowOlder: true})
	rec = record("after the interrupted one")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "chg/c.txt"), "prod, changed again")
	f.publish()
	f.transfer()
	old := objects.New(manifest.Layout{Root: f.bcpCh}.ObjectsDir()).Path(rec.Dir.SHA256)
	testkit.Must(t, os.Chmod(old, 0o600))
	testkit.Must(t, os.Remove(old))
	byHand()
	restore("beside a pruned set", runOptions{})
	handIs("a restore beside a pruned set", "prod keep/sub/k2.txt")
}
