package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestLeader runs `backup run` on a node that is and one that is not the
// leader, for every leader mode. The cluster service is Squirro's own, so
// an honest HTTP server on loopback stands in for it.
func TestLeader(t *testing.T) {
	w := newWorld(t)
	svc := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprint(rw, `{"cluster":{"leader":"node1"}}`)
	}))
	t.Cleanup(svc.Close)
	db := w.db.DB(t)
	tests := []struct {
		name   string
		setup  func(c *config)
		leader bool
	}{
		{"static leader", func(c *config) { c.Leader.Mode, c.Leader.Host = "static", "node1" }, true},
		{"static other", func(c *config) { c.Leader.Mode, c.Leader.Host = "static", "node2" }, false},
		{"http leader", func(c *config) { c.Leader.Mode, c.Leader.URL, c.Leader.Field = "http", svc.URL, "cluster.leader" }, true},
		{"http other", func(c *config) {
			c.Leader.Mode, c.Leader.URL, c.Leader.Field, c.Leader.NodeName = "http", svc.URL, "cluster.leader", "node3"
		}, false},
		{"mysql writable", func(c *config) { c.Leader.Mode = "mysql" }, true},
		{"mysql read-only", func(c *config) {
			c.Leader.Mode = "mysql"
			if _, err := db.Exec("SET GLOBAL read_only = 1"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = db.Exec("SET GLOBAL read_only = 0") })
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := *w.cfg
			tt.setup(&cfg)
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			pre, err := runPreflight(context.Background(), &cfg)
			if err != nil {
				t.Fatal(err)
			}
			if pre.Leader != tt.leader || pre.LeaderNote == "" {
				t.Fatalf("leader = %v (%s), want %v", pre.Leader, pre.LeaderNote, tt.leader)
			}
			if !tt.leader {
				res, err := runBackup(context.Background(), backupOptions{cfg: &cfg})
				if err != nil || !res.Skipped {
					t.Fatalf("run on a non-leader = %+v, %v; want skipped, exit 0", res, err)
				}
			}
		})
	}
}
