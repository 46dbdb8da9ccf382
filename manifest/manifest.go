package manifest

import (
	"time"
)

// Format version of the manifest. A reader refuses a manifest whose major
// version it does not know (ErrUnknownVersion); a newer minor version only
// adds optional fields and is read.
const (
	FormatMajor = 1
	FormatMinor = 0
)

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
}

// TableCount is the row count of one table at dump time, for the standby to
// check after the restore.
type TableCount struct {
	Database string `json:"database"`
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
}

// Tree is one captured file tree (e.g. "storage" for /var/lib/squirro/storage,
// "config" for /etc/squirro). Its entries are in an object: JSON Lines of
// Entry sorted by path.
type Tree struct {
	Name  string `json:"name"`
	Root  string `json:"root"` // where it was captured from (informational)
	List  Ref    `json:"list"`
	Files int64  `json:"files"`
	Bytes int64  `json:"bytes"`
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
