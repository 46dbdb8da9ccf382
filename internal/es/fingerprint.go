package es

// Index fingerprints (manifest DESIGN.md, "Index fingerprints"): what an
// index holds, named by numbers Elasticsearch keeps anyway, so that a
// restore can tell an index that did not change from one that did without
// reading a document.
//
// Two requests, whatever the number of indices: the index metadata of the
// cluster state (UUID, number of shards, mapping/settings/aliases versions;
// open and closed indices) and the shard-level index stats of the open
// indices (per shard copy: routing, seq_no and the last commit's
// history_uuid), both cut down with filter_path.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/manifest"
)

// Fingerprint is an index's fingerprint as read now, with the primary term
// of each shard (a failover raises it).
type Fingerprint struct {
	manifest.IndexFingerprint
	PrimaryTerms []int64
}

// Fingerprints returns the fingerprint of each index of names (nil: every
// index of the cluster) that has one now: it is open and every shard has a
// started primary. With quiet, a shard must also be at rest - the primary's
// max_seq_no equal to its local and global checkpoints, so every operation
// up to it is processed and held by every in-sync copy (none can be rolled
// back by a failover and its number given to another operation); an index
// with a shard that is not leaves no fingerprint. Indices without one are
// left out of the map; names the cluster lacks too.
func Fingerprints(ctx context.Context, c *elasticsearch.Client, names []string, quiet bool) (map[string]Fingerprint, error) {
	var meta struct {
		Metadata struct {
			Indices map[string]struct {
				State           string `json:"state"`
				MappingVersion  int64  `json:"mapping_version"`
				SettingsVersion int64  `json:"settings_version"`
				AliasesVersion  int64  `json:"aliases_version"`
				Settings        struct {
					Index struct {
						UUID   string `json:"uuid"`
						Shards string `json:"number_of_shards"`
					} `json:"index"`
				} `json:"settings"`
			} `json:"indices"`
		} `json:"metadata"`
	}
	resp, err := c.Cluster.State(c.Cluster.State.WithContext(ctx), c.Cluster.State.WithMetric("metadata"),
		c.Cluster.State.WithFilterPath("metadata.indices.*.state", "metadata.indices.*.mapping_version",
			"metadata.indices.*.settings_version", "metadata.indices.*.aliases_version",
			"metadata.indices.*.settings.index.uuid", "metadata.indices.*.settings.index.number_of_shards"))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: read index metadata for fingerprints: %w", err)
	}
	if err := rsDecode(resp, "read index metadata for fingerprints", &meta); err != nil {
		return nil, err
	}
	type copyStats struct {
		Routing struct {
			State   string `json:"state"`
			Primary bool   `json:"primary"`
		} `json:"routing"`
		Commit struct {
			UserData struct {
				HistoryUUID string `json:"history_uuid"`
			} `json:"user_data"`
		} `json:"commit"`
		RetentionLeases struct {
			PrimaryTerm int64 `json:"primary_term"`
		} `json:"retention_leases"`
		SeqNo struct {
			MaxSeqNo         int64 `json:"max_seq_no"`
			LocalCheckpoint  int64 `json:"local_checkpoint"`
			GlobalCheckpoint int64 `json:"global_checkpoint"`
		} `json:"seq_no"`
	}
	var stats struct {
		Indices map[string]struct {
			UUID   string                 `json:"uuid"`
			Shards map[string][]copyStats `json:"shards"`
		} `json:"indices"`
	}
	resp, err = c.Indices.Stats(c.Indices.Stats.WithContext(ctx), c.Indices.Stats.WithMetric("docs"),
		c.Indices.Stats.WithLevel("shards"), c.Indices.Stats.WithExpandWildcards("open,hidden"),
		c.Indices.Stats.WithFilterPath("indices.*.uuid", "indices.*.shards.*.routing.state", "indices.*.shards.*.routing.primary",
			"indices.*.shards.*.seq_no", "indices.*.shards.*.commit.user_data.history_uuid",
			"indices.*.shards.*.retention_leases.primary_term"))
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: read shard stats for fingerprints: %w", err)
	}
	if err := rsDecode(resp, "read shard stats for fingerprints", &stats); err != nil {
		return nil, err
	}
	if names == nil {
		names = slices.Collect(maps.Keys(meta.Metadata.Indices))
	}
	out := map[string]Fingerprint{}
next:
	for _, name := range names {
		md, ok := meta.Metadata.Indices[name]
		st, ok2 := stats.Indices[name]
		if !ok || !ok2 || md.State != "open" || md.Settings.Index.UUID == "" || st.UUID != md.Settings.Index.UUID {
			continue
		}
		n, err := strconv.Atoi(md.Settings.Index.Shards)
		if err != nil || n < 1 {
			continue
		}
		fp := Fingerprint{IndexFingerprint: manifest.IndexFingerprint{Index: name, UUID: md.Settings.Index.UUID, MappingVersion: md.MappingVersion,
			SettingsVersion: md.SettingsVersion, AliasesVersion: md.AliasesVersion}}
		for shard := range n {
			i := slices.IndexFunc(st.Shards[strconv.Itoa(shard)], func(c copyStats) bool { return c.Routing.Primary && c.Routing.State == "STARTED" })
			if i < 0 {
				continue next
			}
			p := st.Shards[strconv.Itoa(shard)][i]
			if p.Commit.UserData.HistoryUUID == "" || quiet && (p.SeqNo.LocalCheckpoint != p.SeqNo.MaxSeqNo || p.SeqNo.GlobalCheckpoint != p.SeqNo.MaxSeqNo) {
				continue next
			}
			fp.Shards = append(fp.Shards, manifest.ShardFingerprint{Shard: shard, HistoryUUID: p.Commit.UserData.HistoryUUID, MaxSeqNo: p.SeqNo.MaxSeqNo})
			fp.PrimaryTerms = append(fp.PrimaryTerms, p.RetentionLeases.PrimaryTerm)
		}
		out[name] = fp
	}
	return out, nil
}

// SameFingerprint reports whether a and b name the same content: same
// index UUID, mapping, settings and aliases versions, and every shard's
// history UUID and max_seq_no.
func SameFingerprint(a, b manifest.IndexFingerprint) bool {
	return a.UUID == b.UUID && a.MappingVersion == b.MappingVersion && a.SettingsVersion == b.SettingsVersion &&
		a.AliasesVersion == b.AliasesVersion && slices.Equal(a.Shards, b.Shards)
}

// StableFingerprints returns, in the order of indices, the fingerprints
// that before and after hold alike, primary terms included: read (quiet)
// just before and just after a snapshot, those are the indices no
// operation reached meanwhile and whose primaries did not fail over, so
// the snapshot holds exactly the operations up to each shard's max_seq_no.
func StableFingerprints(indices []string, before, after map[string]Fingerprint) []manifest.IndexFingerprint {
	var out []manifest.IndexFingerprint
	for _, ix := range indices {
		b, ok := before[ix]
		a, ok2 := after[ix]
		if ok && ok2 && SameFingerprint(a.IndexFingerprint, b.IndexFingerprint) && slices.Equal(a.PrimaryTerms, b.PrimaryTerms) {
			out = append(out, a.IndexFingerprint)
		}
	}
	return out
}
