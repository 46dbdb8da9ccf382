package main

import (
	"context"
	"testing"
)

// TestEvenClusterWarning: backup's stage 1 warns (and goes on) when the
// prod site has an even number of application nodes (cluster-nodes).
func TestEvenClusterWarning(t *testing.T) {
	w := newWorld(t)
	for _, tt := range []struct {
		nodes []string
		warn  bool
	}{{[]string{"node1", "node2"}, true}, {[]string{"node1", "node2", "node3"}, false}} {
		cfg := *w.cfg
		cfg.ClusterNodes = tt.nodes
		pre, err := runPreflight(context.Background(), &cfg)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, c := range pre.Checks {
			if c.Name == "application nodes" {
				found = true
				if c.Warn != tt.warn {
					t.Errorf("%d nodes: warn %v (%s), want %v", len(tt.nodes), c.Warn, c.Detail, tt.warn)
				}
			}
		}
		if !found {
			t.Fatalf("%d nodes: no application nodes check in %+v", len(tt.nodes), pre.Checks)
		}
	}
}
