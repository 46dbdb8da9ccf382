package manifest

import (
	"path"
	"strings"
	"time"
)

// Format version of the manifest. A reader refuses a manifest whose major
// version it does not know (ErrUnknownVersion); a newer minor version only
// adds optional fields and is read.
//
// 1.1 added ESSnapshot.Scope and MySQLDump.AllDatabases: what the source
// had, so that a reader may delete what a set lacks (see DESIGN.md, "What a
// restore manages").
//
// 2.0 is one step for three changes (DESIGN.md, "Format 2.0"): the fencing
// Epoch, per-index Fingerprints of the snapshot, and file trees listed per
// directory. This package reads 1.0, 1.1 and 2.0 and writes 2.0.
const (
	FormatMajor = 2
	FormatMinor = 0
)

// newestMinor is, for each major version this package reads, the newest
// minor version it knows: a manifest of a newer minor is read leniently
// (unknown fields ignored), one of a known minor strictly.
var newestMinor = map[int]int{1: 1, FormatMajor: FormatMinor}

// AtLeast reports whether m's format version is major.minor or newer.
func (m *Manifest) AtLeast(major, minor int) bool {
	ma, mi, err := ParseVersion(m.Version)
	return err == nil && (ma > major || ma == major && mi >= minor)
}

// Namespace is the SSHSIG namespace every manifest signature uses. Operators
// pin it in allowed_signers with namespaces="...".
const Namespace = "manifest@squirro-bcp"

// Manifest names one consistent set: everything the standby needs to restore
// the source cluster's state as of Created. It is small: large lists (file
// trees, Elasticsearch repository files) live in objects it references by
// SHA-256, so its one signature covers everything (a Merkle chain).
type Manifest struct {
	// Version is the format version, "MAJOR.MINOR".
	Version string `json:"version"`
	// Channel repeats the channel identity; a set whose channel differs from
	// the reader's expectation is "not for us".
	Channel Channel `json:"channel"`
	// Sequence is monotonic per channel; the set directory is named SetID(Sequence).
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created"`
	Producer Producer  `json:"producer"`
	// Epoch (format 2.0) is the fencing epoch of the source site when it
	// made the set: a promotion of the other site raises the epoch of both
	// channels, and a standby refuses a set from an epoch older than the
	// one its channel records (DESIGN.md, "Fencing"). 0: not recorded
	// (format 1.x).
	Epoch uint64 `json:"epoch,omitempty"`

	Elasticsearch *ESSnapshot `json:"elasticsearch,omitempty"`
	MySQL         *MySQLDump  `json:"mysql,omitempty"`
	Trees         []Tree      `json:"trees,omitempty"`
}

// Channel is the identity of one replication direction, e.g. prod-to-bcp.
// It is stored in the channel's root as channel.json and repeated in every
// manifest.
type Channel struct {
	Name   string `json:"name"`   // directory name, e.g. "prod-to-bcp"
	Source string `json:"source"` // site that writes (runs backup), e.g. "prod"
	Target string `json:"target"` // site that restores, e.g. "bcp"
}

// Producer says who made the set.
type Producer struct {
	Host    string `json:"host"`
	Program string `json:"program"`
	Version string `json:"version"`
}

// Ref names an object in the channel's object store by its SHA-256 (lower-case
// hex) and size in bytes.
type Ref struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// ESSnapshot is the Elasticsearch part of a set: a snapshot in the channel's
// es/ fs repository, and the repository files it needs.
type ESSnapshot struct {
	Repository string   `json:"repository"` // name under which backup registered es/
	Snapshot   string   `json:"snapshot"`
	UUID       string   `json:"uuid"`
	State      string   `json:"state"` // always SUCCESS in a published set
	Indices    []string `json:"indices"`
	// Generation is the repository generation (index-N) that contains the snapshot.
	Generation int64 `json:"generation"`
	// Files is an object holding the list of repository files the snapshot
	// needs, as JSON Lines of ESFile sorted by path (paths relative to es/).
	// It includes index-<Generation> and index.latest.
	Files Ref `json:"files"`
	// FileCount and Bytes summarise Files, for display.
	FileCount int64 `json:"file_count"`
	Bytes     int64 `json:"bytes"`
	// Fingerprints (format 2.0) name, per index of the snapshot, what its
	// content was when the snapshot was taken, so a restore can tell an
	// index that did not change since the copy live on the standby and
	// skip it (DESIGN.md, "Index fingerprints"). Absent: restore every
	// index.
	Fingerprints []IndexFingerprint `json:"fingerprints,omitempty"`
	// Scope (format 1.1) is the index patterns the snapshot was taken of,
	// as Elasticsearch reads them ("*" any characters, a leading "-"
	// excludes what earlier patterns matched), after the producer checked
	// that Indices holds every index of the source cluster they match, open
	// or closed. Names starting with "." (system indices) are never in the
	// scope, whatever the patterns say. An index in the scope but not in
	// Indices is gone from the source (Covers). Empty (every 1.0 set): the
	// set does not say which indices the source has.
	Scope []string `json:"scope,omitempty"`
	// Closed (format 1.1) are the indices of Indices that were closed on
	// the source; Elasticsearch restores them open, the reader closes them.
	Closed []string `json:"closed,omitempty"`
	// Source (format 2.0) is the source cluster when the snapshot was
	// taken: a reader checks before restoring that its own version can
	// read the snapshot, and sees how much smaller it is. Optional.
	Source *ESSource `json:"source,omitempty"`
}

// ESSource describes the source Elasticsearch cluster of a snapshot.
type ESSource struct {
	Version string `json:"version"` // version.number, e.g. 7.17.29
	Nodes   int    `json:"nodes"`   // nodes in the cluster, at least 1
}

// IndexFingerprint is what one index held when the snapshot was taken:
// its UUID on the source, the versions of its mapping, settings and
// aliases, and, per shard, the primary's history UUID and highest sequence
// number. Two snapshots of an index with the same UUID, versions and
// per-shard history UUID and max_seq_no hold the same operations, hence the
// same documents, under the same mapping, settings and aliases.
type IndexFingerprint struct {
	Index string `json:"index"`
	UUID  string `json:"uuid"`
	// MappingVersion, SettingsVersion and AliasesVersion are the index
	// metadata's versions (cluster state): each grows with every change of
	// the mapping, settings or aliases, which assign no sequence number.
	MappingVersion  int64              `json:"mapping_version"`
	SettingsVersion int64              `json:"settings_version"`
	AliasesVersion  int64              `json:"aliases_version"`
	Shards          []ShardFingerprint `json:"shards"`
}

// ShardFingerprint is one shard of an IndexFingerprint.
type ShardFingerprint struct {
	Shard       int    `json:"shard"`
	HistoryUUID string `json:"history_uuid"`
	MaxSeqNo    int64  `json:"max_seq_no"`
}

// ESFile is one line of an ESSnapshot's file list.
type ESFile struct {
	Path   string `json:"path"` // relative to es/, slash-separated
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// MySQLDump is the MySQL part of a set: one mysqldump of the listed databases,
// compressed, stored as one object.
type MySQLDump struct {
	Object      Ref          `json:"object"`
	Compression string       `json:"compression"` // "zstd"
	Databases   []string     `json:"databases"`
	Tables      []TableCount `json:"tables"`
	// AllDatabases (format 1.1) says Databases are all the source's
	// databases apart from the system schemas (mysql, information_schema,
	// performance_schema, sys): a database not listed is gone from the
	// source. False (every 1.0 set, or an explicit database list): the set
	// speaks only for the databases it lists.
	AllDatabases bool `json:"all_databases,omitempty"`
}

// TableCount is the row count of one table at dump time, for the standby to
// check after the restore.
type TableCount struct {
	Database string `json:"database"`
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
}

// Tree is one captured file tree (e.g. "storage" for /var/lib/squirro/storage,
// "config" for /etc/squirro). Read its entries with TreeReader.Walk.
type Tree struct {
	Name string `json:"name"`
	Root string `json:"root"` // where it was captured from (informational)
	// List (format 1.x) is one object holding every entry: JSON Lines of
	// Entry sorted by path.
	List Ref `json:"list,omitzero"`
	// Dir (format 2.0, instead of List) is the root directory's list: a
	// zstd frame of JSON Lines of DirEntry sorted by name, each
	// subdirectory naming its own list (DESIGN.md, "Trees listed per
	// directory").
	Dir   Ref   `json:"dir,omitzero"`
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
	// Dirs (format 2.0) is the number of directories below the root, so
	// the number of list objects is Dirs+1.
	Dirs int64 `json:"dirs,omitempty"`
}

// Lists is the number of list objects of t: 1 for a 1.x tree, one per
// directory (the root included) for a 2.0 tree.
func (t *Tree) Lists() int64 {
	if t.Dir.SHA256 != "" {
		return t.Dirs + 1
	}
	return 1
}

// Entry types in a file list.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// Entry is one line of a Tree's file list.
type Entry struct {
	Path   string    `json:"path"` // relative to the tree root, slash-separated, clean, never ".." or absolute
	Type   string    `json:"type"` // TypeFile, TypeDir or TypeSymlink
	Mode   uint32    `json:"mode"` // permission bits (fs.FileMode.Perm plus setuid/setgid/sticky as in os.FileMode)
	UID    int       `json:"uid"`
	GID    int       `json:"gid"`
	User   string    `json:"user,omitempty"`
	Group  string    `json:"group,omitempty"`
	MTime  time.Time `json:"mtime"`
	Size   int64     `json:"size,omitempty"`   // files only
	Object string    `json:"object,omitempty"` // files only: SHA-256 of the content = object name
	Target string    `json:"target,omitempty"` // symlinks only: the link text, kept as is
}

// AllIndices is the scope of a snapshot of every index of the source apart
// from system indices.
var AllIndices = []string{"*"}

// Covers reports whether the snapshot speaks for index: the set says which
// indices the source has (Scope is set), and index is in the scope. A
// covered index that is not in Indices is gone from the source. A system
// index (name starting with ".") is never covered.
func (s *ESSnapshot) Covers(index string) bool {
	return s != nil && InScope(s.Scope, index)
}

// InScope reports whether index is matched by the patterns as Elasticsearch
// expands an index list: in order, a pattern adds the names it matches, a
// pattern starting with "-" (after the first) removes them; "*" matches any
// run of characters, nothing else is special. A name starting with "." is
// never in a scope.
func InScope(patterns []string, index string) bool {
	if index == "" || index[0] == '.' {
		return false
	}
	in := false
	for i, p := range patterns {
		if i > 0 && len(p) > 1 && p[0] == '-' {
			if in && wildcardMatch(p[1:], index) {
				in = false
			}
			continue
		}
		if !in && wildcardMatch(p, index) {
			in = true
		}
	}
	return in
}

// wildcardMatch matches name against a pattern whose only wildcard is "*"
// (index names never contain "/", where path.Match's "*" would stop).
func wildcardMatch(pattern, name string) bool {
	ok, _ := path.Match(globEscaper.Replace(pattern), name)
	return ok
}

var globEscaper = strings.NewReplacer(`\`, `\\`, "?", `\?`, "[", `\[`)
