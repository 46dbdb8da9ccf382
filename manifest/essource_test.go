package manifest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// TestESSource: format 2.0 records the source cluster's Elasticsearch
// version and node count; it survives a round trip, is optional, must
// name at least one node, and a 1.x manifest that has it is invalid.
func TestESSource(t *testing.T) {
	m := sampleManifest()
	m.Elasticsearch.Source = &manifest.ESSource{Version: "7.17.29", Nodes: 3}
	data, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := manifest.Decode(data)
	if err != nil || back.Elasticsearch.Source == nil || *back.Elasticsearch.Source != *m.Elasticsearch.Source {
		t.Fatalf("round trip: %+v, %v", back.Elasticsearch.Source, err)
	}
	m.Elasticsearch.Source.Nodes = 0
	if _, err := manifest.Encode(m); !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), "source.nodes") {
		t.Fatalf("0 nodes: %v, want invalid", err)
	}
	old := sampleManifest()
	old.Version, old.Epoch, old.Elasticsearch.Fingerprints, old.Trees = "1.1", 0, nil, nil
	if _, err := manifest.Encode(old); err != nil {
		t.Fatalf("the 1.1 control manifest: %v", err)
	}
	old.Elasticsearch.Source = &manifest.ESSource{Version: "7.17.29", Nodes: 3}
	if _, err := manifest.Encode(old); !errors.Is(err, manifest.ErrInvalid) || !strings.Contains(err.Error(), "format 2.0") {
		t.Fatalf("source in a 1.1 manifest: %v, want invalid (a field of format 2.0)", err)
	}
}
