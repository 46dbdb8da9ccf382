package es

import (
	"context"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/elastic/go-elasticsearch/v7"
)

// ReplicaRule sets number_of_replicas for the restored indices whose name
// matches Pattern (path.Match syntax): a standby with fewer nodes than
// prod gives the indices fewer replicas, so they come up green instead of
// staying yellow with replicas that can never be assigned (a 1-node
// standby: "*=0").
type ReplicaRule struct {
	Pattern  string
	Replicas int
}

// ParseReplicaRules reads "PATTERN=N" rules (es-replicas); the first rule
// that matches an index applies.
func ParseReplicaRules(rules []string) ([]ReplicaRule, error) {
	var out []ReplicaRule
	for _, r := range rules {
		p, n, ok := strings.Cut(r, "=")
		p = strings.TrimSpace(p)
		k, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || p == "" || err != nil || k < 0 {
			return nil, fmt.Errorf("es-replicas %q: want PATTERN=N, e.g. \"*=0\" on a 1-node standby", r)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("es-replicas %q: %w", r, err)
		}
		out = append(out, ReplicaRule{Pattern: p, Replicas: k})
	}
	return out, nil
}

// replicasFor maps each index that a rule matches to its replica count.
func replicasFor(indices []string, rules []ReplicaRule) map[string]int {
	out := map[string]int{}
	for _, ix := range indices {
		for _, r := range rules {
			if ok, _ := path.Match(r.Pattern, ix); ok {
				out[ix] = r.Replicas
				break
			}
		}
	}
	return out
}

// rsSetReplicas applies the replica counts after the restore, one settings
// request per count (and per chunk of names).
func rsSetReplicas(ctx context.Context, c *elasticsearch.Client, replicas map[string]int, p *restoreReport) error {
	byCount := map[int][]string{}
	for ix, n := range replicas {
		byCount[n] = append(byCount[n], ix)
	}
	for _, n := range slices.Sorted(maps.Keys(byCount)) {
		names := slices.Sorted(slices.Values(byCount[n]))
		p.step(fmt.Sprintf("number_of_replicas %d (es-replicas) for %s", n, strings.Join(names, ", ")))
		for _, ch := range rsChunks(names) {
			resp, err := c.Indices.PutSettings(rsJSON(map[string]any{"index": map[string]any{"number_of_replicas": n}}),
				c.Indices.PutSettings.WithIndex(ch...), c.Indices.PutSettings.WithContext(ctx), c.Indices.PutSettings.WithExpandWildcards("none"))
			if err != nil {
				return fmt.Errorf("elasticsearch: set number_of_replicas of %s: %w", strings.Join(ch, ","), err)
			}
			if err := rsCheck(resp, "set number_of_replicas of "+strings.Join(ch, ",")); err != nil {
				return err
			}
		}
	}
	return nil
}
