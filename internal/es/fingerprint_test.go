package es

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/manifest"
)

func fingerprintOf(t *testing.T, c *Client, index string) (manifest.IndexFingerprint, bool) {
	t.Helper()
	fps, err := Fingerprints(context.Background(), c.Client, []string{index}, true)
	if err != nil {
		t.Fatal(err)
	}
	fp, ok := fps[index]
	return fp.IndexFingerprint, ok
}

func esDo(t *testing.T, c *Client, what string, req esapi.Request) {
	t.Helper()
	res, err := req.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("%s: %v %v", what, err, res)
	}
	_ = res.Body.Close()
}

// TestFingerprints: an index's fingerprint names its UUID, metadata
// versions and each shard's history and max_seq_no; it stays the same while
// nothing happens and changes with every kind of change a restore must
// bring over - a document added or deleted, a mapping, settings or alias
// change (which take no sequence number). A closed index has none.
func TestFingerprints(t *testing.T) {
	c, _ := client(t)
	createIndex(t, c, "fp-a", `{"settings":{"number_of_shards":2,"number_of_replicas":0}}`)
	put(t, c, "fp-a", `{"x":1}`)
	first, ok := fingerprintOf(t, c, "fp-a")
	if !ok {
		t.Fatal("an open, quiet index has no fingerprint")
	}
	if first.Index != "fp-a" || first.UUID == "" || len(first.Shards) != 2 || first.Shards[0].Shard != 0 || first.Shards[1].Shard != 1 ||
		first.MappingVersion < 1 || first.SettingsVersion < 1 || first.AliasesVersion < 1 {
		t.Fatalf("fingerprint %+v", first)
	}
	if again, _ := fingerprintOf(t, c, "fp-a"); !SameFingerprint(first, again) {
		t.Fatalf("nothing happened, yet %+v became %+v", first, again)
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"document added", func() {
			esDo(t, c, "index", esapi.IndexRequest{Index: "fp-a", DocumentID: "d2", Body: strings.NewReader(`{"x":2}`), Refresh: "true"})
		}},
		{"document deleted", func() {
			esDo(t, c, "delete", esapi.DeleteRequest{Index: "fp-a", DocumentID: "d2", Refresh: "true"})
		}},
		{"mapping changed", func() {
			esDo(t, c, "put mapping", esapi.IndicesPutMappingRequest{Index: []string{"fp-a"}, Body: strings.NewReader(`{"properties":{"title":{"type":"keyword"}}}`)})
		}},
		{"settings changed", func() {
			esDo(t, c, "put settings", esapi.IndicesPutSettingsRequest{Index: []string{"fp-a"}, Body: strings.NewReader(`{"index":{"refresh_interval":"5s"}}`)})
		}},
		{"alias added", func() {
			esDo(t, c, "put alias", esapi.IndicesPutAliasRequest{Index: []string{"fp-a"}, Name: "fp-alias"})
		}},
	}
	prev := first
	for _, s := range steps {
		s.do()
		now, ok := fingerprintOf(t, c, "fp-a")
		if !ok || SameFingerprint(prev, now) {
			t.Fatalf("%s: fingerprint %+v did not change (%v)", s.name, now, ok)
		}
		prev = now
	}
	esDo(t, c, "close", esapi.IndicesCloseRequest{Index: []string{"fp-a"}})
	if fp, ok := fingerprintOf(t, c, "fp-a"); ok {
		t.Fatalf("closed index has fingerprint %+v", fp)
	}
}

// TestStableFingerprints: an index counts as unchanged across a snapshot
// only when the reads before and after agree, primary terms included.
func TestStableFingerprints(t *testing.T) {
	fp := func(seq int64, term int64) Fingerprint {
		return Fingerprint{IndexFingerprint: manifest.IndexFingerprint{UUID: "u", MappingVersion: 1, SettingsVersion: 1, AliasesVersion: 1,
			Shards: []manifest.ShardFingerprint{{HistoryUUID: "h", MaxSeqNo: seq}}}, PrimaryTerms: []int64{term}}
	}
	before := map[string]Fingerprint{"same": fp(5, 1), "written": fp(5, 1), "failed-over": fp(5, 1), "gone": fp(1, 1)}
	after := map[string]Fingerprint{"same": fp(5, 1), "written": fp(6, 1), "failed-over": fp(5, 2), "new": fp(1, 1)}
	got := StableFingerprints([]string{"failed-over", "gone", "new", "same", "written"}, before, after)
	if len(got) != 1 || got[0].Shards[0].MaxSeqNo != 5 {
		t.Fatalf("stable = %+v, want only the index named same", got)
	}
}

// TestSnapshotFingerprints: a snapshot names the fingerprints of its open
// indices that nothing wrote to meanwhile - valid in a set - and none for
// a closed index.
func TestSnapshotFingerprints(t *testing.T) {
	c, node := client(t)
	ctx := context.Background()
	if err := c.RegisterRepository(ctx, "fptest", filepath.Join(node.RepoRoot, "es-test-fp"), false); err != nil {
		t.Fatal(err)
	}
	createIndex(t, c, "fpsnap-a", `{"settings":{"number_of_shards":3,"number_of_replicas":0}}`)
	put(t, c, "fpsnap-a", `{"x":1}`)
	put(t, c, "fpsnap-c", `{"x":1}`)
	esDo(t, c, "close", esapi.IndicesCloseRequest{Index: []string{"fpsnap-c"}})
	s, err := c.CreateSnapshot(ctx, "fptest", "f1", SnapshotOptions{Indices: []string{"fpsnap-*"}})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fingerprintOf(t, c, "fpsnap-a")
	if len(s.Fingerprints) != 1 || !SameFingerprint(s.Fingerprints[0], want) || s.Fingerprints[0].Index != "fpsnap-a" {
		t.Fatalf("snapshot fingerprints %+v, want only fpsnap-a's %+v", s.Fingerprints, want)
	}
	es := &manifest.ESSnapshot{Repository: "fptest", Snapshot: s.Name, UUID: s.UUID, State: s.State, Indices: s.Indices,
		Files: manifest.Ref{SHA256: strings.Repeat("ab", 32)}, Fingerprints: s.Fingerprints}
	m := &manifest.Manifest{Version: manifest.Version, Channel: manifest.Channel{Name: "a-to-b", Source: "a", Target: "b"}, Sequence: 1, Epoch: 1, Created: time.Now(),
		Producer: manifest.Producer{Host: "h", Program: "p", Version: "v"}, Elasticsearch: es}
	if err := m.Validate(); err != nil {
		t.Fatalf("a set with these fingerprints is invalid: %v", err)
	}
}

// TestRestoreUnchanged: an index the caller says is unchanged is kept only
// when the standby has it open, it was not closed on the source and no
// interrupted restore was restoring it; everything else is restored.
func TestRestoreUnchanged(t *testing.T) {
	opts := RestoreOptions{Indices: []string{"e", "d", "c", "b", "a", "f"}, Unchanged: []string{"a", "b", "c", "d", "e", "x"}, Closed: []string{"c"}}
	existing := []IndexState{{Index: "a", Status: "open"}, {Index: "b", Status: "close"}, {Index: "c", Status: "open"}, {Index: "d", Status: "open"}, {Index: "f", Status: "open"}}
	restore, unchanged := rsUnchanged(opts, existing, &RestoreInProgress{Indices: []string{"d"}})
	if !slices.Equal(unchanged, []string{"a"}) || !slices.Equal(restore, []string{"b", "c", "d", "e", "f"}) {
		t.Fatalf("restore %v, unchanged %v; want a kept (b closed on the standby, c closed on prod, d being restored, e missing, f not unchanged)", restore, unchanged)
	}
}
