package main

import "testing"

// TestSetRecordsSourceCluster: a set records the source cluster's
// Elasticsearch version and node count (format 2.0 elasticsearch.source),
// so the standby can refuse a snapshot its version cannot read.
func TestSetRecordsSourceCluster(t *testing.T) {
	w := newWorld(t)
	w.mustRun(t)
	rep, err := w.verify(t, "")
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Manifest.Elasticsearch.Source
	if s == nil || s.Version != "7.17.29" || s.Nodes != 1 {
		t.Fatalf("elasticsearch.source = %+v, want version 7.17.29 on 1 node", s)
	}
}
