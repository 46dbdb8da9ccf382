package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Names inside a channel directory. See DESIGN.md, "Channel layout".
const (
	ChannelFileName   = "channel.json"
	ESDirName         = "es"
	ObjectsDirName    = "objects"
	SetsDirName       = "sets"
	PinsDirName       = "pins"
	LocksDirName      = "locks"
	ManifestFileName  = "manifest.json"
	SignatureFileName = "manifest.json.sig"
	// TempPrefix starts the name of every temporary file; movers and readers
	// ignore such names, and stale-temp removal (backup prune) finds them.
	// Every temporary name in a channel starts with it; the names below
	// only add to it.
	TempPrefix = ".tmp-"
	// MoverTempPrefix starts a file a mover (transfer) writes before it is
	// complete: MoverTempPrefix + its final name, deterministic, so that a
	// rerun resumes or replaces it and prune recognises it.
	MoverTempPrefix = TempPrefix + "transfer-"
)

// Permissions of what is written into a channel, by backup and by every
// mover path alike (DESIGN.md, "Channel layout"): objects hold database
// dumps, so only their owner reads them; the rest (manifests, signatures,
// the channel identity, Elasticsearch's repository files, pins) is also
// readable by the group, as are directories.
const (
	ObjectPerm fs.FileMode = 0o600
	FilePerm   fs.FileMode = 0o640
	DirPerm    fs.FileMode = 0o750
)

// PermOf is the permission a file of the channel is created with; rel is
// its slash-separated path relative to the channel root (a temporary name
// counts as its directory's kind).
func PermOf(rel string) fs.FileMode {
	if rel == ObjectsDirName || strings.HasPrefix(strings.TrimPrefix(rel, "./"), ObjectsDirName+"/") {
		return ObjectPerm
	}
	return FilePerm
}

// Layout gives the paths of one channel directory. It does no I/O and does
// not validate its arguments: callers pass set ids from SetID or List and
// object names checked with ValidSHA256.
type Layout struct {
	Root string
}

// ChannelFile is <root>/channel.json, the channel identity.
func (l Layout) ChannelFile() string { return filepath.Join(l.Root, ChannelFileName) }

// ESDir is <root>/es, the Elasticsearch fs repository.
func (l Layout) ESDir() string { return filepath.Join(l.Root, ESDirName) }

// ObjectsDir is <root>/objects, the content-addressed object store.
func (l Layout) ObjectsDir() string { return filepath.Join(l.Root, ObjectsDirName) }

// ObjectPath is <root>/objects/<aa>/<sha>, aa being the first two hex digits.
func (l Layout) ObjectPath(sha string) string {
	return filepath.Join(l.Root, filepath.FromSlash(ObjectRel(sha)))
}

// ObjectRel is the slash-separated path of an object relative to the channel
// root: objects/<aa>/<sha>.
func ObjectRel(sha string) string {
	if len(sha) < 2 {
		return ObjectsDirName + "/" + sha
	}
	return ObjectsDirName + "/" + sha[:2] + "/" + sha
}

// SetsDir is <root>/sets.
func (l Layout) SetsDir() string { return filepath.Join(l.Root, SetsDirName) }

// SetDir is <root>/sets/<id>.
func (l Layout) SetDir(id string) string { return filepath.Join(l.Root, SetsDirName, id) }

// ManifestPath is <root>/sets/<id>/manifest.json.
func (l Layout) ManifestPath(id string) string {
	return filepath.Join(l.Root, SetsDirName, id, ManifestFileName)
}

// SignaturePath is <root>/sets/<id>/manifest.json.sig.
func (l Layout) SignaturePath(id string) string {
	return filepath.Join(l.Root, SetsDirName, id, SignatureFileName)
}

// PinsDir is <root>/pins.
func (l Layout) PinsDir() string { return filepath.Join(l.Root, PinsDirName) }

// PinPath is <root>/pins/<id>.
func (l Layout) PinPath(id string) string { return filepath.Join(l.Root, PinsDirName, id) }

// Pinned is the set of set ids the channel's pins/ names (restore pins
// the set it restores and the one the standby holds; prune keeps them).
// A temporary file of a pin being written is not a pin; a channel without
// pins/ pins nothing.
func (l Layout) Pinned() (map[string]bool, error) {
	ents, err := os.ReadDir(l.PinsDir())
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read pins: %w", err)
	}
	pinned := map[string]bool{}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), TempPrefix) {
			pinned[e.Name()] = true
		}
	}
	return pinned, nil
}

// LocksDir is <root>/locks (never copied by movers).
func (l Layout) LocksDir() string { return filepath.Join(l.Root, LocksDirName) }
