package es

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v7"
	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/manifest"
)

var (
	// ErrUnavailable: Elasticsearch did not answer or answered with an error
	// that is not about our request (down, wrong URL, wrong credentials).
	ErrUnavailable = errors.New("elasticsearch unavailable")
	// ErrOutsidePathRepo: the repository location is not below any of the
	// nodes' path.repo directories.
	ErrOutsidePathRepo = errors.New("repository location outside path.repo")
	// ErrSnapshotFailed: a snapshot ended PARTIAL, FAILED or INCOMPATIBLE,
	// or lacks an index it should hold (ErrSnapshotLacksIndex).
	ErrSnapshotFailed = errors.New("snapshot failed")
	// ErrSnapshotLacksIndex: a snapshot ended SUCCESS but does not hold an
	// index of the cluster that its scope covers (one that existed before
	// and after it); a kind of ErrSnapshotFailed.
	ErrSnapshotLacksIndex = fmt.Errorf("%w: an index of the cluster is not in the snapshot", ErrSnapshotFailed)
	// ErrNotFound: the snapshot or repository does not exist.
	ErrNotFound = errors.New("not found in elasticsearch")
)

// Options say how to reach the cluster.
type Options struct {
	URLs         []string
	Username     string
	PasswordFile string // read at connect time; never logged
	CACertFile   string // PEM; empty: system roots
	Timeout      time.Duration
}

// Client wraps the official client with the address for messages.
type Client struct {
	*elasticsearch.Client
	Addr string
}

// NewClient builds a client; it does not connect.
func NewClient(o Options) (*Client, error) {
	if len(o.URLs) == 0 {
		return nil, fmt.Errorf("elasticsearch: no URL configured (es-url)")
	}
	cfg := elasticsearch.Config{Addresses: o.URLs, Username: o.Username}
	if o.PasswordFile != "" {
		pw, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: read password file: %w", err)
		}
		cfg.Password = strings.TrimSpace(string(pw))
	}
	if o.CACertFile != "" {
		pem, err := os.ReadFile(o.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("elasticsearch: read CA file: %w", err)
		}
		cfg.CACert = pem
	}
	t := o.Timeout
	if t == 0 {
		t = 60 * time.Second
	}
	cfg.Transport = &http.Transport{ResponseHeaderTimeout: t}
	cfg.MaxRetries = 2
	c, err := elasticsearch.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch %s: %w", strings.Join(o.URLs, ","), err)
	}
	return &Client{Client: c, Addr: strings.Join(o.URLs, ",")}, nil
}

// Wrap wraps an existing client (tests).
func Wrap(c *elasticsearch.Client, addr string) *Client { return &Client{Client: c, Addr: addr} }

// apiError is an error response of Elasticsearch.
type apiError struct {
	Status int
	Type   string
	Reason string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Type, e.Reason)
}

// errCause is Elasticsearch's error object; caused_by nests.
type errCause struct {
	Type      string     `json:"type"`
	Reason    string     `json:"reason"`
	CausedBy  *errCause  `json:"caused_by"`
	RootCause []errCause `json:"root_cause"`
}

// chain joins the reason with every caused_by reason below it.
func (e *errCause) chain() string {
	parts := []string{}
	for c := e; c != nil; c = c.CausedBy {
		if c.Reason != "" {
			parts = append(parts, c.Reason)
		}
	}
	return strings.Join(parts, ": ")
}

// do runs req and decodes a successful JSON answer into out (may be nil).
func (c *Client) do(ctx context.Context, what string, req esapi.Request, out any) error {
	res, err := req.Do(ctx, c.Client)
	if err != nil {
		return fmt.Errorf("elasticsearch at %s: %s: %w: %w (is it running and is es-url right?)", c.Addr, what, ErrUnavailable, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("elasticsearch at %s: %s: read answer: %w", c.Addr, what, err)
	}
	if res.IsError() {
		ae := &apiError{Status: res.StatusCode}
		var eb struct {
			Error json.RawMessage `json:"error"`
		}
		if json.Unmarshal(body, &eb) == nil && len(eb.Error) > 0 {
			var d errCause
			if json.Unmarshal(eb.Error, &d) == nil {
				ae.Type, ae.Reason = d.Type, d.chain()
				if ae.Reason == "" && len(d.RootCause) > 0 {
					ae.Type, ae.Reason = d.RootCause[0].Type, d.RootCause[0].chain()
				}
			} else {
				ae.Reason = string(eb.Error)
			}
		} else {
			ae.Reason = strings.TrimSpace(string(body))
		}
		switch {
		case res.StatusCode == 404:
			return fmt.Errorf("elasticsearch at %s: %s: %w: %v", c.Addr, what, ErrNotFound, ae)
		case res.StatusCode == 401 || res.StatusCode == 403:
			return fmt.Errorf("elasticsearch at %s: %s: %w: %v (check es-username / es-password-file)", c.Addr, what, ErrUnavailable, ae)
		case res.StatusCode == 503:
			return fmt.Errorf("elasticsearch at %s: %s: %w: %v", c.Addr, what, ErrUnavailable, ae)
		}
		return fmt.Errorf("elasticsearch at %s: %s: %w", c.Addr, what, ae)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("elasticsearch at %s: %s: decode answer: %w", c.Addr, what, err)
		}
	}
	return nil
}

// Health is the cluster health summary.
type Health struct {
	ClusterName      string `json:"cluster_name"`
	Status           string `json:"status"` // green, yellow, red
	NumberOfNodes    int    `json:"number_of_nodes"`
	UnassignedShards int    `json:"unassigned_shards"`
}

// ClusterHealth returns the cluster health.
func (c *Client) ClusterHealth(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, "cluster health", esapi.ClusterHealthRequest{}, &h)
	return h, err
}

// Master returns the elected master's node name and host.
func (c *Client) Master(ctx context.Context) (name, host string, err error) {
	var rows []struct{ Node, Host, IP string }
	if err := c.do(ctx, "find master", esapi.CatMasterRequest{Format: "json"}, &rows); err != nil {
		return "", "", err
	}
	if len(rows) == 0 || rows[0].Node == "" {
		return "", "", fmt.Errorf("elasticsearch at %s: no elected master: %w (check the cluster's discovery settings)", c.Addr, ErrUnavailable)
	}
	return rows[0].Node, rows[0].Host, nil
}

// MasterEligible returns how many nodes can be elected master.
func (c *Client) MasterEligible(ctx context.Context) (int, error) {
	var info struct {
		Nodes map[string]struct {
			Roles []string `json:"roles"`
		} `json:"nodes"`
	}
	if err := c.do(ctx, "list nodes", esapi.NodesInfoRequest{FilterPath: []string{"nodes.*.roles"}}, &info); err != nil {
		return 0, err
	}
	n := 0
	for _, node := range info.Nodes {
		for _, r := range node.Roles {
			if r == "master" {
				n++
			}
		}
	}
	return n, nil
}

// Repository is a registered snapshot repository.
type Repository struct {
	Type     string
	Location string
	ReadOnly bool
}

// GetRepository returns the repository name, or ErrNotFound.
func (c *Client) GetRepository(ctx context.Context, name string) (Repository, error) {
	var out map[string]struct {
		Type     string `json:"type"`
		Settings struct {
			Location string `json:"location"`
			ReadOnly any    `json:"readonly"`
		} `json:"settings"`
	}
	if err := c.do(ctx, "get repository "+name, esapi.SnapshotGetRepositoryRequest{Repository: []string{name}}, &out); err != nil {
		return Repository{}, err
	}
	r, ok := out[name]
	if !ok {
		return Repository{}, fmt.Errorf("elasticsearch at %s: repository %s: %w", c.Addr, name, ErrNotFound)
	}
	ro := fmt.Sprint(r.Settings.ReadOnly) == "true"
	return Repository{Type: r.Type, Location: r.Settings.Location, ReadOnly: ro}, nil
}

// RegisterRepository registers (or re-registers) an fs repository at
// location. A location outside path.repo gives ErrOutsidePathRepo.
func (c *Client) RegisterRepository(ctx context.Context, name, location string, readonly bool) error {
	body, _ := json.Marshal(map[string]any{
		"type":     "fs",
		"settings": map[string]any{"location": location, "readonly": readonly, "compress": true},
	})
	err := c.do(ctx, "register repository "+name, esapi.SnapshotCreateRepositoryRequest{Repository: name, Body: bytes.NewReader(body)}, nil)
	var ae *apiError
	if errors.As(err, &ae) && strings.Contains(ae.Reason, "path.repo") {
		return fmt.Errorf("elasticsearch at %s: register repository %s at %s: %w: %s; add the channel's parent directory to path.repo in elasticsearch.yml on every node and restart them", c.Addr, name, location, ErrOutsidePathRepo, ae.Reason)
	}
	return err
}

// ShardFailure is a failed shard of a snapshot.
type ShardFailure struct {
	Index   string `json:"index"`
	ShardID int    `json:"shard_id"`
	Reason  string `json:"reason"`
	NodeID  string `json:"node_id"`
	Status  string `json:"status"`
}

// Snapshot is what Elasticsearch says about a snapshot.
type Snapshot struct {
	Name      string         `json:"snapshot"`
	UUID      string         `json:"uuid"`
	State     string         `json:"state"`
	Indices   []string       `json:"indices"`
	Failures  []ShardFailure `json:"failures"`
	StartTime time.Time      `json:"start_time"`
	// Closed are the indices of the snapshot that were closed when it
	// started (CreateSnapshot fills it; Elasticsearch does not say).
	Closed []string `json:"-"`
	// Fingerprints are those of the snapshot's indices that no operation
	// reached while it was taken (CreateSnapshot fills it, sorted by index;
	// see StableFingerprints).
	Fingerprints []manifest.IndexFingerprint `json:"-"`
	Shards       struct {
		Total      int `json:"total"`
		Failed     int `json:"failed"`
		Successful int `json:"successful"`
	} `json:"shards"`
}

// SnapshotOptions tune CreateSnapshot.
type SnapshotOptions struct {
	Indices            []string // index patterns; empty: every index but system ones (Scope)
	IncludeGlobalState bool
	Poll               time.Duration // 1s when zero
	Progress           manifest.Progress
}

// Scope is the scope (manifest.ESSnapshot.Scope) of a snapshot of the
// index patterns: the patterns one per element, or manifest.AllIndices when
// there are none.
func Scope(patterns []string) []string {
	var out []string
	for _, p := range patterns {
		for _, q := range strings.Split(p, ",") {
			if q = strings.TrimSpace(q); q != "" {
				out = append(out, q)
			}
		}
	}
	if len(out) == 0 {
		return slices.Clone(manifest.AllIndices)
	}
	return out
}

// CreateSnapshot takes snapshot name in repo of the indices in
// Scope(o.Indices), open and closed (expand_wildcards all; Elasticsearch
// would otherwise leave closed indices out without a word), and waits for
// it to finish. System indices (names starting with ".") are left out
// unless a pattern names them.
//
// It asks for partial=true so that a missing primary gives a PARTIAL
// snapshot whose failures name each shard and why (partial=false only says
// "indices do not have primary shards"); a PARTIAL snapshot is an error, so
// this never lets an index go missing. Anything but SUCCESS returns the
// snapshot and an error wrapping ErrSnapshotFailed that names the failed
// shards.
//
// A SUCCESS snapshot is then compared with the cluster's indices, listed
// before and after it (open and closed): one that existed both times and is
// in the scope but not in the snapshot gives ErrSnapshotLacksIndex, naming
// it. An index created or deleted while the snapshot ran is no error.
func (c *Client) CreateSnapshot(ctx context.Context, repo, name string, o SnapshotOptions) (Snapshot, error) {
	if o.Poll == 0 {
		o.Poll = time.Second
	}
	p := o.Progress
	if p == nil {
		p = manifest.NoProgress{}
	}
	scope := Scope(o.Indices)
	before, err := ListAllIndices(ctx, c.Client)
	if err != nil {
		return Snapshot{}, fmt.Errorf("elasticsearch at %s: %w", c.Addr, err)
	}
	fpBefore, err := Fingerprints(ctx, c.Client, nil, true)
	if err != nil {
		return Snapshot{}, fmt.Errorf("elasticsearch at %s: %w", c.Addr, err)
	}
	indices := slices.Clone(scope)
	if !slices.ContainsFunc(scope, func(p string) bool { return strings.HasPrefix(p, ".") }) {
		indices = append(indices, "-.*")
	}
	req := map[string]any{"include_global_state": o.IncludeGlobalState, "partial": true,
		"indices": strings.Join(indices, ","), "expand_wildcards": "all"}
	body, _ := json.Marshal(req)
	wait := false
	if err := c.do(ctx, "create snapshot "+name, esapi.SnapshotCreateRequest{Repository: repo, Snapshot: name, Body: bytes.NewReader(body), WaitForCompletion: &wait}, nil); err != nil {
		return Snapshot{}, err
	}
	begun := false
	defer func() {
		if begun {
			p.End()
		}
	}()
	var reported int64
	t := time.NewTicker(o.Poll)
	defer t.Stop()
	for {
		s, err := c.GetSnapshot(ctx, repo, name)
		if err != nil {
			return Snapshot{}, err
		}
		if s.State != "IN_PROGRESS" && s.State != "STARTED" && s.State != "" {
			if s.State != "SUCCESS" {
				return s, snapshotError(c.Addr, repo, s)
			}
			for _, ii := range before {
				if ii.Status == "close" && slices.Contains(s.Indices, ii.Index) {
					s.Closed = append(s.Closed, ii.Index)
				}
			}
			fpAfter, err := Fingerprints(ctx, c.Client, nil, true)
			if err != nil {
				return s, fmt.Errorf("elasticsearch at %s: %w", c.Addr, err)
			}
			s.Fingerprints = StableFingerprints(slices.Sorted(slices.Values(s.Indices)), fpBefore, fpAfter)
			return s, c.checkSnapshotHolds(ctx, repo, s, scope, before)
		}
		if done, total, err := c.snapshotBytes(ctx, repo, name); err == nil && total > 0 {
			if !begun {
				p.Begin("elasticsearch snapshot "+name, total, "bytes")
				begun = true
			}
			if done > reported {
				p.Add(done - reported)
				reported = done
			}
		}
		select {
		case <-ctx.Done():
			return Snapshot{}, ctx.Err()
		case <-t.C:
		}
	}
}

// checkSnapshotHolds returns ErrSnapshotLacksIndex when an index in scope
// that the cluster had before the snapshot, and still has, is not in it.
func (c *Client) checkSnapshotHolds(ctx context.Context, repo string, s Snapshot, scope []string, before []IndexState) error {
	after, err := ListAllIndices(ctx, c.Client)
	if err != nil {
		return fmt.Errorf("elasticsearch at %s: check snapshot %s/%s against the cluster's indices: %w", c.Addr, repo, s.Name, err)
	}
	still := map[string]string{}
	for _, ii := range after {
		still[ii.Index] = ii.Status
	}
	var missing []string
	for _, ii := range before {
		st, ok := still[ii.Index]
		if ok && manifest.InScope(scope, ii.Index) && !slices.Contains(s.Indices, ii.Index) {
			missing = append(missing, fmt.Sprintf("%s (%s)", ii.Index, st))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("elasticsearch at %s: snapshot %s/%s ended SUCCESS but lacks %d of the cluster's indices in scope %s: %s: %w; a set without them would make the standby delete them",
		c.Addr, repo, s.Name, len(missing), strings.Join(scope, ","), strings.Join(missing, ", "), ErrSnapshotLacksIndex)
}

func snapshotError(addr, repo string, s Snapshot) error {
	var parts []string
	for _, f := range s.Failures {
		parts = append(parts, fmt.Sprintf("%s[%d]: %s", f.Index, f.ShardID, f.Reason))
	}
	detail := ""
	if len(parts) > 0 {
		detail = ": " + strings.Join(parts, "; ")
	}
	return fmt.Errorf("elasticsearch at %s: snapshot %s/%s %s (%d of %d shards failed%s): %w; check those indices' health (GET _cluster/allocation/explain)",
		addr, repo, s.Name, s.State, s.Shards.Failed, s.Shards.Total, detail, ErrSnapshotFailed)
}

func (c *Client) snapshotBytes(ctx context.Context, repo, name string) (done, total int64, err error) {
	var st struct {
		Snapshots []struct {
			Stats struct {
				Processed struct {
					Size int64 `json:"size_in_bytes"`
				} `json:"processed"`
				Total struct {
					Size int64 `json:"size_in_bytes"`
				} `json:"total"`
			} `json:"stats"`
		} `json:"snapshots"`
	}
	if err := c.do(ctx, "snapshot status", esapi.SnapshotStatusRequest{Repository: repo, Snapshot: []string{name}}, &st); err != nil {
		return 0, 0, err
	}
	if len(st.Snapshots) == 0 {
		return 0, 0, nil
	}
	s := st.Snapshots[0].Stats
	return s.Processed.Size, s.Total.Size, nil
}

// GetSnapshot returns one snapshot, or ErrNotFound.
func (c *Client) GetSnapshot(ctx context.Context, repo, name string) (Snapshot, error) {
	var out struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if err := c.do(ctx, "get snapshot "+name, esapi.SnapshotGetRequest{Repository: repo, Snapshot: []string{name}}, &out); err != nil {
		return Snapshot{}, err
	}
	if len(out.Snapshots) == 0 {
		return Snapshot{}, fmt.Errorf("elasticsearch at %s: snapshot %s/%s: %w", c.Addr, repo, name, ErrNotFound)
	}
	return out.Snapshots[0], nil
}

// Snapshots lists every snapshot of repo.
func (c *Client) Snapshots(ctx context.Context, repo string) ([]Snapshot, error) {
	var out struct {
		Snapshots []Snapshot `json:"snapshots"`
	}
	if err := c.do(ctx, "list snapshots", esapi.SnapshotGetRequest{Repository: repo, Snapshot: []string{"_all"}}, &out); err != nil {
		return nil, err
	}
	return out.Snapshots, nil
}

// DeleteSnapshot deletes a snapshot through the API (also aborts a running one).
func (c *Client) DeleteSnapshot(ctx context.Context, repo, name string) error {
	return c.do(ctx, "delete snapshot "+name, esapi.SnapshotDeleteRequest{Repository: repo, Snapshot: name}, nil)
}

// UnassignedPrimary is a primary shard that is not allocated: a snapshot of
// its index would be PARTIAL.
type UnassignedPrimary struct {
	Index  string `json:"index"`
	Shard  string `json:"shard"`
	Reason string `json:"unassigned.reason"`
}

// UnassignedPrimaries lists primary shards that are not allocated, for the
// indices matching patterns (all when empty).
func (c *Client) UnassignedPrimaries(ctx context.Context, patterns []string) ([]UnassignedPrimary, error) {
	var rows []struct {
		Index  string `json:"index"`
		Shard  string `json:"shard"`
		PriRep string `json:"prirep"`
		State  string `json:"state"`
		Reason string `json:"unassigned.reason"`
	}
	req := esapi.CatShardsRequest{Index: patterns, Format: "json", H: []string{"index", "shard", "prirep", "state", "unassigned.reason"}}
	if err := c.do(ctx, "list shards", req, &rows); err != nil {
		return nil, err
	}
	var out []UnassignedPrimary
	for _, r := range rows {
		if r.PriRep == "p" && r.State == "UNASSIGNED" {
			out = append(out, UnassignedPrimary{Index: r.Index, Shard: r.Shard, Reason: r.Reason})
		}
	}
	return out, nil
}

// PathRepo returns the path.repo directories of every node (one list per
// node, by node id).
func (c *Client) PathRepo(ctx context.Context) (map[string][]string, error) {
	var out struct {
		Nodes map[string]struct {
			Settings struct {
				Path struct {
					Repo any `json:"repo"`
				} `json:"path"`
			} `json:"settings"`
		} `json:"nodes"`
	}
	if err := c.do(ctx, "read node settings", esapi.NodesInfoRequest{Metric: []string{"settings"}, FilterPath: []string{"nodes.*.settings.path.repo"}}, &out); err != nil {
		return nil, err
	}
	res := map[string][]string{}
	for id, n := range out.Nodes {
		switch v := n.Settings.Path.Repo.(type) {
		case string:
			res[id] = []string{v}
		case []any:
			for _, x := range v {
				res[id] = append(res[id], fmt.Sprint(x))
			}
		default:
			res[id] = nil
		}
	}
	return res, nil
}
