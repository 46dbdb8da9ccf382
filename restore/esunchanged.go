package main

// Restoring only the indices that changed (manifest DESIGN.md, "Index
// fingerprints"). The ledger keeps, per index a restore put on the standby,
// the set's fingerprint of it and the standby's own fingerprint read right
// after the restore (ledger.ESIndex). The next restore keeps an index as it
// is when its new set has the same fingerprint, from the same channel, not
// an older set, and the standby's index still reads as recorded (its UUID,
// metadata versions and every shard's history and max_seq_no: nobody wrote
// to it, deleted or replaced it since). Anything else - no fingerprint (a
// set before 2.0, an index written while the snapshot was taken, a closed
// index), a first restore, another channel, --full - restores the index.

import (
	"context"
	"fmt"
	"slices"

	"github.com/elastic/go-elasticsearch/v7"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/manifest"
)

// Why an index is restored rather than kept.
const (
	whyFull          = "--full"
	whyNoFingerprint = "no fingerprint in the set (written during the snapshot, closed, or a set before format 2.0)"
	whyUnknown       = "not restored by this standby from a set with a fingerprint"
	whyOtherChannel  = "restored from another channel"
	whyOlderSet      = "the set is older than the one it was restored from"
	whyChangedProd   = "changed on prod"
	whyChangedHere   = "changed, replaced or missing on the standby since it was restored"
)

// esUnchanged returns the indices of the set the standby holds as the set
// has them, and for the others why they are restored (reason -> indices).
func (r *restorer) esUnchanged(ctx context.Context, c *elasticsearch.Client, m *manifest.Manifest) ([]string, map[string][]string, error) {
	s := m.Elasticsearch
	why := map[string][]string{}
	if r.full {
		why[whyFull] = slices.Clone(s.Indices)
		return nil, why, nil
	}
	l, err := r.openLedger()
	if err != nil {
		return nil, nil, err
	}
	known, err := l.ESIndices()
	if err != nil {
		return nil, nil, err
	}
	fps := map[string]manifest.IndexFingerprint{}
	for _, fp := range s.Fingerprints {
		fps[fp.Index] = fp
	}
	var candidates []string
	for _, ix := range s.Indices {
		fp, ok := fps[ix]
		k, known := known[ix]
		switch {
		case !ok:
			why[whyNoFingerprint] = append(why[whyNoFingerprint], ix)
		case !known:
			why[whyUnknown] = append(why[whyUnknown], ix)
		case k.Channel != m.Channel.Name:
			why[whyOtherChannel] = append(why[whyOtherChannel], ix)
		case k.Sequence > m.Sequence:
			why[whyOlderSet] = append(why[whyOlderSet], ix)
		case !es.SameFingerprint(k.Source, fp):
			why[whyChangedProd] = append(why[whyChangedProd], ix)
		default:
			candidates = append(candidates, ix)
		}
	}
	if len(candidates) == 0 {
		return nil, why, nil
	}
	now, err := es.Fingerprints(ctx, c, candidates, false)
	if err != nil {
		return nil, nil, fmt.Errorf("compare the standby's indices with the set: %w", err)
	}
	var unchanged []string
	for _, ix := range candidates {
		if fp, ok := now[ix]; ok && es.SameFingerprint(known[ix].Standby, fp.IndexFingerprint) {
			unchanged = append(unchanged, ix)
		} else {
			why[whyChangedHere] = append(why[whyChangedHere], ix)
		}
	}
	return unchanged, why, nil
}

// esForget is the restore's Changing hook: before any index is changed,
// the ledger forgets every index the restore deletes, closes or replaces,
// so a run that stops midway leaves no record of what is gone.
func esForget(l *ledger.Ledger) func(*es.RestorePlan) error {
	return func(p *es.RestorePlan) error {
		names := slices.Concat(p.Restore, p.Replace, p.Delete)
		if p.InProgress != nil {
			names = append(names, p.InProgress.Indices...)
		}
		return l.ForgetESIndices(names)
	}
}

// esRecord records, after a successful Elasticsearch stage, what the
// standby now holds: for each restored index with a fingerprint in the set,
// that fingerprint and the standby's own; the unchanged ones now belong to
// this set.
func (r *restorer) esRecord(ctx context.Context, c *elasticsearch.Client, m *manifest.Manifest, p *es.RestorePlan) error {
	l, err := r.openLedger()
	if err != nil {
		return err
	}
	known, err := l.ESIndices()
	if err != nil {
		return err
	}
	fps := map[string]manifest.IndexFingerprint{}
	for _, fp := range m.Elasticsearch.Fingerprints {
		fps[fp.Index] = fp
	}
	var restored []string
	for _, ix := range p.Restore {
		if _, ok := fps[ix]; ok && !slices.Contains(p.Close, ix) {
			restored = append(restored, ix)
		}
	}
	now, err := es.Fingerprints(ctx, c, restored, false)
	if err != nil {
		return err
	}
	rec := func(ix string, standby manifest.IndexFingerprint) {
		known[ix] = ledger.ESIndex{Channel: m.Channel.Name, Set: manifest.SetID(m.Sequence, m.Created), Sequence: m.Sequence, Source: fps[ix], Standby: standby}
	}
	for _, ix := range restored {
		if fp, ok := now[ix]; ok {
			rec(ix, fp.IndexFingerprint)
		}
	}
	for _, ix := range p.Unchanged {
		rec(ix, known[ix].Standby)
	}
	return l.SetESIndices(known)
}
