package ledger

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/squirro-bcp/bcp/manifest"
)

// ESIndex is what the ledger knows of one index a restore put on the
// standby: from which set (and channel) it came, that set's fingerprint of
// it, and the standby's own fingerprint of the index read right after the
// restore. A later restore may keep the index as it is only when the new
// set's fingerprint equals Source and the standby's index still reads as
// Standby (manifest DESIGN.md, "Index fingerprints").
type ESIndex struct {
	Channel  string                    `json:"channel"`
	Set      string                    `json:"set"`
	Sequence uint64                    `json:"sequence"`
	Source   manifest.IndexFingerprint `json:"source"`
	Standby  manifest.IndexFingerprint `json:"standby"`
}

// ESIndices maps index name to what the ledger knows of it.
type ESIndices map[string]ESIndex

// esFile is the file beside the ledger holding ESIndices: it changes with
// every restore's Elasticsearch stage, not with each record, so it is kept
// apart from the records (whose number is bounded, each index is not).
const esFile = "es-indices.json"

// ESIndices returns what the ledger knows of the standby's indices (empty
// when nothing was recorded yet).
func (l *Ledger) ESIndices() (ESIndices, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := filepath.Join(filepath.Dir(l.path), esFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return ESIndices{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", p, err)
	}
	var v struct {
		Indices ESIndices `json:"indices"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("ledger: parse %s: %w (remove it: the next restore then restores every index)", p, err)
	}
	if v.Indices == nil {
		v.Indices = ESIndices{}
	}
	return v.Indices, nil
}

// SetESIndices replaces what the ledger knows of the standby's indices
// (written to a temporary file, synced and renamed).
func (l *Ledger) SetESIndices(ix ESIndices) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := json.MarshalIndent(struct {
		Indices ESIndices `json:"indices"`
	}{ix}, "", "  ")
	if err != nil {
		return err
	}
	return manifest.WriteFileAtomic(filepath.Join(filepath.Dir(l.path), esFile), append(b, '\n'), 0o600)
}

// ForgetESIndices removes names from what the ledger knows: call it before
// a restore deletes, closes or replaces them, so that a run that stops
// midway leaves no record claiming what the standby no longer holds.
func (l *Ledger) ForgetESIndices(names []string) error {
	ix, err := l.ESIndices()
	if err != nil {
		return err
	}
	n := len(ix)
	for _, name := range names {
		delete(ix, name)
	}
	if len(ix) == n {
		return nil
	}
	return l.SetESIndices(ix)
}
