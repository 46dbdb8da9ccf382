package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// The tests of this file run against the cluster profile: a 3-node prod
// (three Elasticsearch JVMs, three app nodes, MariaDB and Redis with
// replicas) and a standby of 1 node (the reduced site) or of 3.

// createReplicated creates an index with shards primaries and 1 replica
// on prod's 3-node cluster and waits until it is green there.
func (f *fixture) createReplicated(idx string, shards int) {
	f.t.Helper()
	body := fmt.Sprintf(`{"settings":{"number_of_shards":%d,"number_of_replicas":1}}`, shards)
	resp, err := f.prodES.Indices.Create(f.index(idx), f.prodES.Indices.Create.WithBody(strings.NewReader(body)),
		f.prodES.Indices.Create.WithWaitForActiveShards("all"))
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		f.t.Fatalf("create index %s: %s", idx, resp.Status())
	}
}

// esHealth is the cluster health of this fixture's indices, after waiting
// up to 30 s for green.
func (f *fixture) esHealth(c *elasticsearch.Client) (status string, unassigned int) {
	f.t.Helper()
	resp, err := c.Cluster.Health(c.Cluster.Health.WithIndex(f.name+"_*"), c.Cluster.Health.WithWaitForStatus("green"),
		c.Cluster.Health.WithTimeout(30*time.Second))
	testkit.Must(f.t, err)
	defer resp.Body.Close()
	var h struct {
		Status     string `json:"status"`
		Unassigned int    `json:"unassigned_shards"`
	}
	testkit.Must(f.t, json.NewDecoder(resp.Body).Decode(&h))
	return h.Status, h.Unassigned
}

// replicas is number_of_replicas of each of this fixture's indices.
func (f *fixture) replicas(c *elasticsearch.Client) map[string]string {
	f.t.Helper()
	resp, err := c.Indices.GetSettings(c.Indices.GetSettings.WithIndex(f.name+"_*"), c.Indices.GetSettings.WithName("index.number_of_replicas"))
	testkit.Must(f.t, err)
	defer resp.Body.Close()
	var v map[string]struct {
		Settings struct {
			Index struct {
				Replicas string `json:"number_of_replicas"`
			} `json:"index"`
		} `json:"settings"`
	}
	testkit.Must(f.t, json.NewDecoder(resp.Body).Decode(&v))
	out := map[string]string{}
	for ix, s := range v {
		out[ix] = s.Settings.Index.Replicas
	}
	return out
}

// TestClusterReducedStandby backs up a 3-node prod with the backup
// program (the set records 3 source nodes) and restores its indices (2
// shards, 1 replica each) onto the reduced 1-node standby: with es-replicas "*=0"
// for them they come up green with prod's document counts (without it a
// replica could never be assigned: yellow). After the restore the
// standby's MySQL replica and Redis replica hold what their primaries hold
// (stage 7 goes through the binary log; stage 9's flush replicates).
func TestClusterReducedStandby(t *testing.T) {
	cw := testenv.SharedClusterWorld(t, testenv.ProfileCluster)
	f := newFixtureOn(t, cw.World())
	f.createReplicated("docs", 2)
	f.createReplicated("logs", 1)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two", "3": "three"})
	f.putDocs("logs", map[string]string{"a": "alpha"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY, v TEXT)")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".t VALUES (1,'a'),(2,'b')")
	testkit.WriteFile(t, f.prodTree+"/a.txt", "alpha")
	f.backupRun() // the real backup program against the 3-node cluster
	f.transfer()

	ctx := context.Background()
	bcp := cw.BCP
	rc := bcp.Redis.Client(t)
	testkit.Must(t, rc.Set(ctx, f.name+":cache", "stale", 0).Err())

	e := f.env()
	e.cfg.ESIndexSettings = nil // the override is per pattern, not for every index
	e.cfg.ESReplicas = []es.ReplicaRule{{Pattern: f.name + "_*", Replicas: 0}}
	p, err := newRestorer(e.cfg, e.log, e.rep).run(ctx, request{})
	if err != nil {
		t.Fatalf("restore onto 1 node: %v", err)
	}
	if src := p.Verify.Manifest.Elasticsearch.Source; src == nil || src.Nodes != 3 {
		t.Fatalf("the set's elasticsearch.source = %+v, want 3 nodes", src)
	}
	if len(p.ES.Replicas) != 2 {
		t.Fatalf("plan's replica overrides %v, want both indices", p.ES.Replicas)
	}
	if st, un := f.esHealth(f.bcpES); st != "green" || un != 0 {
		t.Fatalf("standby after the restore: %s with %d unassigned shards, want green", st, un)
	}
	if got, want := f.docCounts(f.bcpES), f.docCounts(f.prodES); !maps.Equal(got, want) {
		t.Fatalf("document counts: standby %v, prod %v", got, want)
	}
	if r := f.replicas(f.prodES); r[f.index("docs")] != "1" {
		t.Fatalf("prod's replicas changed: %v", r)
	}

	// Followers equal their primaries.
	testkit.Must(t, bcp.WaitReplicas(ctx))
	rdb, err := sql.Open("mysql", bcp.MariaDBReplica.DSN(""))
	testkit.Must(t, err)
	defer rdb.Close()
	if got, want := f.tables(rdb), f.tables(f.bcpDB); !maps.Equal(got, want) || len(want) == 0 {
		t.Fatalf("MySQL replica %v, primary %v: want equal", got, want)
	}
	rr := bcp.RedisReplica.Client(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := rr.Exists(ctx, f.name+":cache").Result()
		testkit.Must(t, err)
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Redis replica still holds a key the flush removed from the primary")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterFullStandby restores onto a 3-node standby: the indices keep
// prod's replicas and are green, and stage 10 restarts all three standby
// application nodes (three sshds) in parallel, one result per node.
func TestClusterFullStandby(t *testing.T) {
	cw := testenv.SharedClusterWorld(t, testenv.ProfileCluster3)
	f := newFixtureOn(t, cw.World())
	f.createReplicated("docs", 2)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY)")
	testkit.WriteFile(t, f.prodTree+"/a.txt", "alpha")
	f.publish()
	f.transfer()

	e := f.env()
	e.cfg.ESIndexSettings = nil
	e.cfg.SSH.KeyFile, e.cfg.SSH.KnownHosts = cw.BCP.KeyFile, cw.BCP.KnownHosts
	e.cfg.RestartNodes = nil
	for _, n := range cw.BCP.Apps {
		e.cfg.RestartNodes = append(e.cfg.RestartNodes, n.SSH.Addr())
	}
	e.cfg.RestartCommand = "echo restarted port ${SSH_CONNECTION##* } >> " + f.restarts
	p, err := newRestorer(e.cfg, e.log, e.rep).run(context.Background(), request{})
	if err != nil {
		t.Fatalf("restore onto 3 nodes: %v", err)
	}
	if st, un := f.esHealth(f.bcpES); st != "green" || un != 0 {
		t.Fatalf("standby after the restore: %s with %d unassigned shards, want green", st, un)
	}
	if r := f.replicas(f.bcpES); r[f.index("docs")] != "1" {
		t.Fatalf("standby replicas %v, want prod's 1", r)
	}
	if got, want := f.docCounts(f.bcpES), f.docCounts(f.prodES); !maps.Equal(got, want) {
		t.Fatalf("document counts: standby %v, prod %v", got, want)
	}
	if len(p.Restarts) != 3 {
		t.Fatalf("restart results %+v, want one per node (3)", p.Restarts)
	}
	b, err := os.ReadFile(f.restarts)
	testkit.Must(t, err)
	for i, n := range cw.BCP.Apps {
		if !p.Restarts[i].OK || p.Restarts[i].Node != n.SSH.Addr() {
			t.Fatalf("restart result %d: %+v, want OK on %s", i, p.Restarts[i], n.SSH.Addr())
		}
		if !strings.Contains(string(b), fmt.Sprintf("restarted port %d\n", n.SSH.Port)) {
			t.Fatalf("node %s (port %d) was not restarted:\n%s", n.Name, n.SSH.Port, b)
		}
	}
}
