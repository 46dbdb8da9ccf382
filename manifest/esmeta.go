package manifest

// IsESMetadata reports whether path (relative to es/) is Elasticsearch
// repository metadata that a newer generation replaces: index.latest, the
// root index-N and the shard-level index-* files. A set older than the
// repository's generation needs none of them (see "Verification" in
// DESIGN.md); movers that copy such a set leave them out.
func IsESMetadata(path string) bool { return repoMeta(path) }
