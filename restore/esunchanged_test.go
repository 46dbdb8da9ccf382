package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

// indexUUIDs maps this fixture's indices on a cluster to their index UUIDs.
func (f *fixture) indexUUIDs(c *elasticsearch.Client) map[string]string {
	f.t.Helper()
	resp, err := c.Cat.Indices(c.Cat.Indices.WithIndex(f.name+"_*"), c.Cat.Indices.WithFormat("json"), c.Cat.Indices.WithH("index", "uuid"),
		c.Cat.Indices.WithExpandWildcards("all"))
	testkit.Must(f.t, err)
	defer resp.Body.Close()
	var rows []struct{ Index, UUID string }
	testkit.Must(f.t, json.NewDecoder(resp.Body).Decode(&rows))
	out := map[string]string{}
	for _, r := range rows {
		out[r.Index] = r.UUID
	}
	return out
}

// restoredNow runs a restore and returns its output, failing the test on
// an error or when its Elasticsearch stage did not restore exactly
// restored indices (of three) and keep the rest.
func (f *fixture) restoredNow(what string, o runOptions, restored int) string {
	f.t.Helper()
	out, err := f.restore(o)
	if err != nil {
		f.t.Fatalf("%s: %v", what, err)
	}
	for _, w := range []string{fmt.Sprintf("restored, %d unchanged", 3-restored), fmt.Sprintf(" %d indices (", restored)} {
		if !strings.Contains(out.String(), w) {
			f.t.Fatalf("%s: the report does not say %q:\n%s", what, w, out)
		}
	}
	return out.String()
}

// sameIndices fails unless the standby's indices hold prod's documents.
func (f *fixture) sameIndices(what string) {
	f.t.Helper()
	if p, b := f.docCounts(f.prodES), f.docCounts(f.bcpES); !maps.Equal(p, b) {
		f.t.Fatalf("%s: standby documents %v, prod %v", what, b, p)
	}
}

// uuidsKept fails unless the indices named keep have the same UUID in
// both maps and every other index a different one.
func uuidsKept(t *testing.T, what string, before, after map[string]string, keep ...string) {
	t.Helper()
	for ix, u := range before {
		kept := false
		for _, k := range keep {
			kept = kept || strings.HasSuffix(ix, "_"+k)
		}
		if kept != (after[ix] == u) {
			t.Fatalf("%s: index %s uuid %s -> %s; want it kept: %v", what, ix, u, after[ix], kept)
		}
	}
}

// TestESRestoresOnlyChangedIndices: with sets from the real backup, a
// restore keeps the indices the standby holds as the set has them (their
// documents and index UUID unchanged) and restores only the others: one
// changed on prod (a document added; a document deleted, which disappears),
// one changed on the standby by hand; nothing when nothing changed;
// everything with --full, and everything when the standby's record of the
// indices is from another channel.
func TestESRestoresOnlyChangedIndices(t *testing.T) {
	f := newFixture(t)
	f.createIndex("a", 1)
	f.putDocs("a", map[string]string{"1": "one", "2": "two"})
	f.createIndex("b", 2)
	f.putDocs("b", map[string]string{"1": "one", "2": "two", "3": "three"})
	f.createIndex("c", 1)
	f.putDocs("c", map[string]string{"x": "ex", "y": "why"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))

	f.backupRun()
	if m := f.newestManifest(); len(m.Elasticsearch.Fingerprints) != 3 {
		t.Fatalf("the set has fingerprints %+v, want one per index", m.Elasticsearch.Fingerprints)
	}
	f.transfer()
	f.restoredNow("cycle 1 (first)", runOptions{}, 3)
	f.sameIndices("cycle 1")
	u1 := f.indexUUIDs(f.bcpES)

	// prod: b gains a document, c loses one
	f.putDocs("b", map[string]string{"4": "four"})
	f.deleteDoc("c", "y")
	f.backupRun()
	f.transfer()
	out, err := f.restore(runOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for _, w := range []string{"restore 2 indices from snapshot", "keep 1 unchanged", "unchanged (the standby holds them as the set has them): " + f.index("a"),
		"restore (changed on prod): " + f.index("b") + ", " + f.index("c")} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("the plan does not say %q", w)
		}
	}
	f.restoredNow("cycle 2 (b and c changed on prod)", runOptions{}, 2)
	f.sameIndices("cycle 2")
	u2 := f.indexUUIDs(f.bcpES)
	uuidsKept(t, "cycle 2", u1, u2, "a")
	if resp, err := f.bcpES.Get(f.index("c"), "y"); err != nil || resp.StatusCode != 404 {
		t.Fatalf("the document deleted on prod is still on the standby: %v %v", resp, err)
	}

	// nothing changed
	f.backupRun()
	f.transfer()
	f.restoredNow("cycle 3 (nothing changed)", runOptions{}, 0)
	uuidsKept(t, "cycle 3", u2, f.indexUUIDs(f.bcpES), "a", "b", "c")

	// someone writes to a on the standby
	resp, err := f.bcpES.Index(f.index("a"), strings.NewReader(`{"text":"by hand"}`), f.bcpES.Index.WithRefresh("true"))
	testkit.Must(t, err)
	_ = resp.Body.Close()
	f.backupRun()
	f.transfer()
	out2 := f.restoredNow("cycle 4 (a changed on the standby)", runOptions{}, 1)
	if !strings.Contains(out2, "restore (changed, replaced or missing on the standby since it was restored): "+f.index("a")) {
		t.Errorf("cycle 4: the report does not say a changed on the standby")
	}
	f.sameIndices("cycle 4")
	u4 := f.indexUUIDs(f.bcpES)
	uuidsKept(t, "cycle 4", u2, u4, "b", "c")

	// --full
	f.backupRun()
	f.transfer()
	f.restoredNow("cycle 5 (--full)", runOptions{Full: true}, 3)
	f.sameIndices("cycle 5")
	u5 := f.indexUUIDs(f.bcpES)
	uuidsKept(t, "cycle 5", u4, u5)

	// the standby's record of the indices is from another channel
	p := filepath.Join(f.state, "es-indices.json")
	b, err := os.ReadFile(p)
	testkit.Must(t, err)
	if !strings.Contains(string(b), `"channel": "prod-to-bcp"`) {
		t.Fatalf("%s does not record the channel:\n%s", p, b)
	}
	testkit.Must(t, os.WriteFile(p, []byte(strings.ReplaceAll(string(b), `"channel": "prod-to-bcp"`, `"channel": "other-to-bcp"`)), 0o600))
	f.backupRun()
	f.transfer()
	out6 := f.restoredNow("cycle 6 (another channel)", runOptions{}, 3)
	if !strings.Contains(out6, "restore (restored from another channel)") {
		t.Errorf("cycle 6: the report does not say why")
	}
	uuidsKept(t, "cycle 6", u5, f.indexUUIDs(f.bcpES))
	f.sameIndices("cycle 6")
}
