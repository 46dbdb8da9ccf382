package es

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func client(t *testing.T) (*Client, *testenv.ES) {
	t.Helper()
	node := testenv.Elasticsearch(t)
	return Wrap(node.Client(t), node.URL), node
}

func put(t *testing.T, c *Client, index, body string) {
	t.Helper()
	res, err := esapi.IndexRequest{Index: index, Body: strings.NewReader(body), Refresh: "true"}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("index into %s: %v %v", index, err, res)
	}
	_ = res.Body.Close()
}

func createIndex(t *testing.T, c *Client, index, settings string) {
	t.Helper()
	res, err := esapi.IndicesCreateRequest{Index: index, Body: strings.NewReader(settings)}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("create %s: %v %v", index, err, res)
	}
	_ = res.Body.Close()
}

func TestHealthMaster(t *testing.T) {
	c, _ := client(t)
	ctx := context.Background()
	h, err := c.ClusterHealth(ctx)
	if err != nil || h.Status == "" {
		t.Fatalf("health = %+v, %v", h, err)
	}
	if name, _, err := c.Master(ctx); err != nil || name == "" {
		t.Fatalf("master = %q, %v", name, err)
	}
	if n, err := c.MasterEligible(ctx); err != nil || n != 1 {
		t.Fatalf("master eligible = %d, %v; want 1", n, err)
	}
}

func TestDown(t *testing.T) {
	c, err := NewClient(Options{URLs: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ClusterHealth(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestRepositoryOutsidePathRepo(t *testing.T) {
	c, _ := client(t)
	err := c.RegisterRepository(context.Background(), "outside", t.TempDir(), false)
	if !errors.Is(err, ErrOutsidePathRepo) || !strings.Contains(err.Error(), "path.repo") {
		t.Fatalf("err = %v, want ErrOutsidePathRepo", err)
	}
}

func TestSnapshotAndFiles(t *testing.T) {
	c, node := client(t)
	ctx := context.Background()
	loc := filepath.Join(node.RepoRoot, "es-test-snap")
	if err := c.RegisterRepository(ctx, "snaptest", loc, false); err != nil {
		t.Fatal(err)
	}
	if r, err := c.GetRepository(ctx, "snaptest"); err != nil || r.Location != loc {
		t.Fatalf("GetRepository = %+v, %v", r, err)
	}
	createIndex(t, c, "snap-a", `{"settings":{"number_of_replicas":0}}`)
	put(t, c, "snap-a", `{"x":1}`)
	s, err := c.CreateSnapshot(ctx, "snaptest", "s1", SnapshotOptions{Indices: []string{"snap-a"}})
	if err != nil || s.State != "SUCCESS" || s.UUID == "" {
		t.Fatalf("snapshot = %+v, %v", s, err)
	}
	gen, err := Generation(loc)
	if err != nil {
		t.Fatal(err)
	}
	files, read1, err := RepoFiles(ctx, loc, gen, nil, nil)
	if err != nil || len(files) == 0 {
		t.Fatalf("RepoFiles = %v, %v", files, err)
	}
	known := map[string]manifest.ESFile{}
	for _, f := range files {
		known[f.Path] = f
		if strings.HasPrefix(f.Path, "tests-") {
			t.Errorf("verification file listed: %s", f.Path)
		}
	}
	if _, ok := known["index.latest"]; !ok {
		t.Error("index.latest missing")
	}
	files2, read2, err := RepoFiles(ctx, loc, gen, known, nil)
	if err != nil || len(files2) != len(files) {
		t.Fatal(err)
	}
	if read2 != 8 || read1 <= 8 {
		t.Errorf("second listing read %d bytes, want only index.latest's 8 (first read %d)", read2, read1)
	}
	if err := c.DeleteSnapshot(ctx, "snaptest", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSnapshot(ctx, "snaptest", "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestSnapshotPartial(t *testing.T) {
	c, node := client(t)
	ctx := context.Background()
	if err := c.RegisterRepository(ctx, "partial", filepath.Join(node.RepoRoot, "es-test-partial"), false); err != nil {
		t.Fatal(err)
	}
	createIndex(t, c, "unassigned", `{"settings":{"number_of_replicas":0,"index.routing.allocation.require._name":"nonexistent"}}`)
	_, err := c.CreateSnapshot(ctx, "partial", "p1", SnapshotOptions{Indices: []string{"unassigned"}})
	if !errors.Is(err, ErrSnapshotFailed) || !strings.Contains(err.Error(), "unassigned[0]") {
		t.Fatalf("err = %v, want ErrSnapshotFailed naming unassigned[0]", err)
	}
}

func TestPathRepoAndUnassigned(t *testing.T) {
	c, node := client(t)
	ctx := context.Background()
	repos, err := c.PathRepo(ctx)
	if err != nil || len(repos) != 1 {
		t.Fatalf("PathRepo = %v, %v", repos, err)
	}
	for _, r := range repos {
		if len(r) != 1 || r[0] != node.RepoRoot {
			t.Fatalf("path.repo = %v, want %s", r, node.RepoRoot)
		}
	}
	createIndex(t, c, "red-one", `{"settings":{"number_of_replicas":0,"index.routing.allocation.require._name":"nonexistent"}}`)
	un, err := c.UnassignedPrimaries(ctx, []string{"red-*"})
	if err != nil || len(un) != 1 || un[0].Index != "red-one" {
		t.Fatalf("UnassignedPrimaries = %+v, %v", un, err)
	}
}

// TestSnapshotClosedIndex: a closed index is in the snapshot (Elasticsearch
// leaves closed indices out unless asked), and the snapshot says it was
// closed.
func TestSnapshotClosedIndex(t *testing.T) {
	c, node := client(t)
	ctx := context.Background()
	if err := c.RegisterRepository(ctx, "closedtest", filepath.Join(node.RepoRoot, "es-test-closed"), false); err != nil {
		t.Fatal(err)
	}
	put(t, c, "closedtest-open", `{"a":1}`)
	put(t, c, "closedtest-hr", `{"a":2}`)
	res, err := esapi.IndicesCloseRequest{Index: []string{"closedtest-hr"}}.Do(ctx, c)
	if err != nil || res.IsError() {
		t.Fatalf("close: %v %v", err, res)
	}
	_ = res.Body.Close()
	s, err := c.CreateSnapshot(ctx, "closedtest", "c1", SnapshotOptions{Indices: []string{"closedtest-*"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Indices, "closedtest-hr") || !slices.Contains(s.Indices, "closedtest-open") {
		t.Fatalf("snapshot indices %v, want the closed index too", s.Indices)
	}
	if !slices.Equal(s.Closed, []string{"closedtest-hr"}) {
		t.Fatalf("closed %v, want [closedtest-hr]", s.Closed)
	}
}

// TestSnapshotLacksIndex: a snapshot that does not hold an index of the
// cluster in its scope is an error naming the index; one created or deleted
// meanwhile, or outside the scope, is not.
func TestSnapshotLacksIndex(t *testing.T) {
	c, _ := client(t)
	ctx := context.Background()
	put(t, c, "lacks-a", `{"a":1}`)
	put(t, c, "lacks-b", `{"a":1}`)
	before := []IndexState{{Index: "lacks-a", Status: "open"}, {Index: "lacks-b", Status: "close"}, {Index: "lacks-deleted-meanwhile"}, {Index: "other"}}
	s := Snapshot{Name: "x", Indices: []string{"lacks-a"}}
	err := c.checkSnapshotHolds(ctx, "repo", s, []string{"lacks-*"}, before)
	if !errors.Is(err, ErrSnapshotLacksIndex) || !errors.Is(err, ErrSnapshotFailed) || !strings.Contains(err.Error(), "lacks-b") ||
		strings.Contains(err.Error(), "meanwhile") || strings.Contains(err.Error(), "other") {
		t.Fatalf("err = %v, want ErrSnapshotLacksIndex naming lacks-b only", err)
	}
	s.Indices = append(s.Indices, "lacks-b")
	if err := c.checkSnapshotHolds(ctx, "repo", s, []string{"lacks-*"}, before); err != nil {
		t.Fatalf("complete snapshot: %v", err)
	}
}
