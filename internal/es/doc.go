// Package es holds the go-elasticsearch/v7 helpers the programs share.
//
// Snapshot side (backup): a client from Options; cluster health, the elected
// master and the number of master-eligible nodes (preflight warns on an even
// count: a split vote cannot be broken); RegisterRepository for the
// channel's es/ directory as an "fs" repository (a location outside the
// nodes' path.repo gives ErrOutsidePathRepo with what to configure);
// CreateSnapshot, which starts a snapshot without waiting, then polls
// _snapshot/<repo>/<name>/_status for byte progress and _snapshot/<repo>/<name>
// for the final state; PARTIAL or FAILED gives ErrSnapshotFailed naming every
// failed shard and why. It snapshots open and closed indices
// (expand_wildcards all; Elasticsearch's default leaves closed ones out) and
// compares a SUCCESS snapshot with the cluster's index list taken before and
// after it: an index in scope it lacks gives ErrSnapshotLacksIndex, so a set
// never silently misses an index (the standby would delete it). DeleteSnapshot through the API (never by deleting
// repository files: the repository's own index must stay consistent).
//
// RepoFiles lists the files of an fs repository that a set must carry:
// every blob below indices/, the snap-*/meta-* blobs, index-<gen> of the
// current generation and index.latest; temporary and verification files
// (pending-*, tests-*, names starting with '.') are skipped. Elasticsearch
// never rewrites a blob under the same name, so a file already known with the
// same path and size keeps its known SHA-256 and is not read again; only
// index.latest (rewritten in place each generation) is always hashed.
//
// Fingerprints (fingerprint.go) name what an index holds - its UUID and
// mapping/settings/aliases versions, each shard's history_uuid and
// max_seq_no - in two requests whatever the number of indices;
// CreateSnapshot reads them before and after the snapshot and keeps those
// of the indices nothing reached meanwhile (manifest DESIGN.md, "Index
// fingerprints").
//
// The restore side adds restore.go to this package (names Restore*).
package es
