package es

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v7/esapi"
)

// ErrIncompatible: this cluster's Elasticsearch version cannot restore a
// snapshot taken by the source's version.
var ErrIncompatible = errors.New("elasticsearch version cannot read the snapshot")

// ClusterInfo is what a restore needs to know about a cluster before it
// starts: the version it runs and how many nodes it has.
type ClusterInfo struct {
	Version        string // version.number of the node answering
	Nodes          int
	MasterEligible int
}

// Info returns the cluster's version and node counts.
func (c *Client) Info(ctx context.Context) (ClusterInfo, error) {
	var root struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
	}
	if err := c.do(ctx, "read version", esapi.InfoRequest{}, &root); err != nil {
		return ClusterInfo{}, err
	}
	h, err := c.ClusterHealth(ctx)
	if err != nil {
		return ClusterInfo{}, err
	}
	m, err := c.MasterEligible(ctx)
	if err != nil {
		return ClusterInfo{}, err
	}
	return ClusterInfo{Version: root.Version.Number, Nodes: h.NumberOfNodes, MasterEligible: m}, nil
}

// VerifyRepository asks every master and data node to prove it can reach
// the repository (POST _snapshot/NAME/_verify) and returns the names of
// the nodes that did. A node that cannot fails the whole call.
func (c *Client) VerifyRepository(ctx context.Context, name string) ([]string, error) {
	var out struct {
		Nodes map[string]struct {
			Name string `json:"name"`
		} `json:"nodes"`
	}
	if err := c.do(ctx, "verify repository "+name, esapi.SnapshotVerifyRepositoryRequest{Repository: name}, &out); err != nil {
		return nil, err
	}
	var names []string
	for id, n := range out.Nodes {
		if n.Name == "" {
			n.Name = id
		}
		names = append(names, n.Name)
	}
	return names, nil
}

// CanRestore says whether a cluster of version cluster can restore a
// snapshot taken by version snapshot: Elasticsearch restores a snapshot
// into the same or a newer version, at most one major version newer.
func CanRestore(snapshot, cluster string) error {
	sv, err := parseVersion(snapshot)
	if err != nil {
		return fmt.Errorf("snapshot version: %w", err)
	}
	cv, err := parseVersion(cluster)
	if err != nil {
		return fmt.Errorf("cluster version: %w", err)
	}
	switch {
	case cmpVersion(cv, sv) < 0:
		return fmt.Errorf("%w: the snapshot was taken by %s, this cluster runs the older %s: upgrade the standby to %s or later", ErrIncompatible, snapshot, cluster, snapshot)
	case cv[0] > sv[0]+1:
		return fmt.Errorf("%w: the snapshot was taken by %s, this cluster runs %s: a snapshot restores at most one major version up", ErrIncompatible, snapshot, cluster)
	}
	return nil
}

func parseVersion(v string) ([3]int, error) {
	var out [3]int
	core, _, _ := strings.Cut(v, "-") // 8.0.0-rc1
	parts := strings.Split(core, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return out, fmt.Errorf("%q is not a version MAJOR.MINOR.PATCH", v)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, fmt.Errorf("%q is not a version MAJOR.MINOR.PATCH", v)
		}
		out[i] = n
	}
	return out, nil
}

func cmpVersion(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
