package main

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// indexStates maps this fixture's indices on a cluster to "open N docs" or
// "close" (a closed index cannot be counted).
func (f *fixture) indexStates(c *elasticsearch.Client) map[string]string {
	f.t.Helper()
	all, err := es.ListAllIndices(context.Background(), c)
	testkit.Must(f.t, err)
	var open []string
	out := map[string]string{}
	for _, ii := range all {
		switch {
		case !strings.HasPrefix(ii.Index, f.name+"_"):
		case ii.Status == "close":
			out[ii.Index] = "close"
		default:
			open = append(open, ii.Index)
		}
	}
	n, err := es.CountDocuments(context.Background(), c, open)
	testkit.Must(f.t, err)
	for ix, d := range n {
		out[ix] = "open " + strings.Repeat("d", int(d))
	}
	return out
}

func (f *fixture) closeIndex(c *elasticsearch.Client, idx string) {
	f.t.Helper()
	resp, err := c.Indices.Close([]string{f.index(idx)})
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		f.t.Fatalf("close %s: %s", idx, resp.Status())
	}
}

func (f *fixture) createStandbyIndex(idx string) {
	f.t.Helper()
	resp, err := f.bcpES.Indices.Create(idx)
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		f.t.Fatalf("create standby index %s: %s", idx, resp.Status())
	}
}

// newestManifest reads the newest set of the prod channel.
func (f *fixture) newestManifest() *manifest.Manifest {
	f.t.Helper()
	sets, err := manifest.List(f.prodCh)
	testkit.Must(f.t, err)
	if len(sets) == 0 {
		f.t.Fatal("no set published")
	}
	b, err := os.ReadFile(manifest.Layout{Root: f.prodCh}.ManifestPath(sets[len(sets)-1].ID))
	testkit.Must(f.t, err)
	m, err := manifest.Decode(b)
	testkit.Must(f.t, err)
	return m
}

// TestMirrorEverything: with backup capturing every index and every
// database of prod, the standby ends up with exactly prod's indices and
// databases. A closed index on prod is in the set and restored (never
// deleted on the standby); an index or database dropped on prod is dropped
// on the standby; the keep lists protect standby-only ones; the dry run
// names what is deleted.
func TestMirrorEverything(t *testing.T) {
	f := newFixture(t)
	f.createIndex("docs", 1)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two"})
	f.createIndex("gone", 1)
	f.putDocs("gone", map[string]string{"a": "a"})
	f.createIndex("closed", 1)
	f.putDocs("closed", map[string]string{"h": "hr"})
	f.closeIndex(f.prodES, "closed")
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY)")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".t VALUES (1)")
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("gonedb"))
	// the standby's own: kept by the keep lists, or stale
	f.createStandbyIndex(f.index("standby_notes"))
	f.createStandbyIndex(f.index("stale"))
	f.exec(f.bcpDB, "CREATE DATABASE "+f.db("keepdb"))
	f.exec(f.bcpDB, "CREATE DATABASE "+f.db("staledb"))
	env := f.env()
	env.cfg.ESKeep = []string{f.index("standby_*")}
	env.cfg.MySQLKeep = []string{f.db("keep*")}

	f.backupRunScope(backupScope{allIndices: true, allDatabases: true})
	m := f.newestManifest()
	if m.Version != manifest.Version || !slices.Equal(m.Elasticsearch.Scope, []string{"*"}) || !m.MySQL.AllDatabases {
		t.Fatalf("set %s: scope %v, all_databases %v", m.Version, m.Elasticsearch.Scope, m.MySQL.AllDatabases)
	}
	if !slices.Contains(m.Elasticsearch.Indices, f.index("closed")) {
		t.Fatalf("the closed index %s is not in the set: %v", f.index("closed"), m.Elasticsearch.Indices)
	}
	f.transfer()
	if _, err := f.restoreWith(env, runOptions{}); err != nil {
		t.Fatalf("cycle 1: %v", err)
	}
	want := f.indexStates(f.prodES)
	want[f.index("standby_notes")] = "open "
	if got := f.indexStates(f.bcpES); !maps.Equal(got, want) {
		t.Fatalf("cycle 1: standby indices\n%v\nwant\n%v", got, want)
	}
	if got, want := f.databases(f.bcpDB), []string{f.db("app"), f.db("gonedb"), f.db("keepdb")}; !slices.Equal(got, want) {
		t.Fatalf("cycle 1: standby databases %v, want %v", got, want)
	}

	// prod drops an index and a database
	f.deleteIndex("gone")
	f.exec(f.prodDB, "DROP DATABASE "+f.db("gonedb"))
	f.backupRunScope(backupScope{allIndices: true, allDatabases: true})
	f.transfer()
	out, err := f.restoreWith(env, runOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	for _, want := range []string{"delete (gone from prod): " + f.index("gone"), "keep (gone from prod, es-keep): " + f.index("standby_notes"),
		"drop (gone from prod): " + f.db("gonedb"), "keep (gone from prod, mysql-keep): " + f.db("keepdb")} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run does not say %q", want)
		}
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "delete (gone from prod)") && strings.Contains(l, f.index("closed")) {
			t.Errorf("dry run would delete the closed index: %s", l)
		}
	}
	if !strings.Contains(out.String(), "close after the restore (closed on prod): "+f.index("closed")) {
		t.Errorf("dry run does not say the closed index is closed after the restore")
	}
	if _, err := f.restoreWith(env, runOptions{}); err != nil {
		t.Fatalf("cycle 2: %v", err)
	}
	want = f.indexStates(f.prodES)
	want[f.index("standby_notes")] = "open "
	if got := f.indexStates(f.bcpES); !maps.Equal(got, want) {
		t.Fatalf("cycle 2: standby indices\n%v\nwant\n%v", got, want)
	}
	if got, want := f.databases(f.bcpDB), []string{f.db("app"), f.db("keepdb")}; !slices.Equal(got, want) {
		t.Fatalf("cycle 2: standby databases %v, want %v", got, want)
	}
}

// TestMirrorOnlyTheScope: with es-indices patterns and an explicit database
// list, restore manages only those: an index of the scope gone from prod is
// deleted, a standby index outside the scope and a database outside the
// list are left alone.
func TestMirrorOnlyTheScope(t *testing.T) {
	f := newFixture(t)
	f.createIndex("docs", 1)
	f.putDocs("docs", map[string]string{"1": "one"})
	f.createIndex("gone", 1)
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	outside := "other_" + f.name
	f.createStandbyIndex(outside)
	t.Cleanup(func() {
		if resp, err := f.bcpES.Indices.Delete([]string{outside}); err == nil {
			_ = resp.Body.Close()
		}
	})
	f.exec(f.bcpDB, "CREATE DATABASE "+f.db("standbydb"))

	f.backupRun() // es-indices = name_*, mysql-databases = [name_app]
	if m := f.newestManifest(); !slices.Equal(m.Elasticsearch.Scope, []string{f.name + "_*"}) || m.MySQL.AllDatabases {
		t.Fatalf("scope %v, all_databases %v", m.Elasticsearch.Scope, m.MySQL.AllDatabases)
	}
	f.transfer()
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("cycle 1: %v", err)
	}
	f.deleteIndex("gone")
	f.backupRun()
	f.transfer()
	out, err := f.restore(runOptions{})
	if err != nil {
		t.Fatalf("cycle 2: %v", err)
	}
	if !strings.Contains(out.String(), "left alone: the set holds only the databases it names") {
		t.Errorf("the plan does not say databases outside the list are left alone")
	}
	if got := f.indices(f.bcpES); !slices.Equal(got, []string{f.index("docs")}) {
		t.Fatalf("standby indices %v, want only %s", got, f.index("docs"))
	}
	all, err := es.ListAllIndices(context.Background(), f.bcpES)
	testkit.Must(t, err)
	if !slices.ContainsFunc(all, func(ii es.IndexState) bool { return ii.Index == outside }) {
		t.Fatalf("standby index %s outside es-indices was deleted", outside)
	}
	if got, want := f.databases(f.bcpDB), []string{f.db("app"), f.db("standbydb")}; !slices.Equal(got, want) {
		t.Fatalf("standby databases %v, want %v", got, want)
	}
}

// TestFormat10DeletesNothingAbsent: a set of format 1.0 does not say which
// indices prod has, so no standby index is deleted for being absent from it.
func TestFormat10DeletesNothingAbsent(t *testing.T) {
	f := newFixture(t)
	f.format10 = true
	f.createStandbyIndex(f.index("standby_only"))
	f.publishSmall()
	f.transfer()
	out, err := f.restore(runOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if strings.Contains(out.String(), "delete (gone from prod)") || !strings.Contains(out.String(), "format 1.0") {
		t.Errorf("the plan of a 1.0 set must delete nothing and say why:\n%s", out)
	}
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, want := f.indices(f.bcpES), []string{f.index("docs"), f.index("standby_only")}; !slices.Equal(got, want) {
		t.Fatalf("standby indices %v, want %v", got, want)
	}
}

func (f *fixture) restoreWith(e env, o runOptions) (*strings.Builder, error) {
	var out strings.Builder
	err := runRun(context.Background(), o, e, &out)
	f.t.Logf("restore run %+v:\n%s", o, out.String())
	return &out, err
}
