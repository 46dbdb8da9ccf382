package mover

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// OlderSet is a set older than the newest that the destination lacked.
type OlderSet struct {
	Set    string `json:"set"`
	Files  int64  `json:"files"`
	Copied int64  `json:"copied"`
	Bytes  int64  `json:"bytes"`
	// Beside is the set this one was planned beside (the newest, copied
	// by the run): Files counts only the files of directories the two do
	// not share.
	Beside string `json:"beside,omitempty"`
	// Reason is why it was not copied ("" when it was): not complete or
	// not trusted at the source.
	Reason string `json:"reason,omitempty"`
}

// copyOlder brings the destination the history: every set older than the
// newest (r.res.Set, already there) that the source holds and the
// destination lacks (no signature there), oldest first, so that the
// destination holds the sets an operator may restore by hand - as many as
// the source's retention keeps. A set that is not complete and trusted at
// the source is left out (Result.Older says why); a failed copy fails the
// run, as for the newest.
//
// The newest set goes first because it is the one the standby restores,
// and because it brings the repository generation that makes the older
// sets whole: Elasticsearch has deleted or rewritten an older set's
// repository metadata (index-N, shard index-*, index.latest) at the
// source, and the newest generation lists every snapshot still there. So
// an older set is copied without those files and is complete at the
// destination the moment its signature lands; index.latest is never
// written for it (that would roll the repository back).
//
// Finding what is lacking costs one listing per set directory both sides
// hold; nothing else when nothing is lacking.
func (r *runner) copyOlder(ctx context.Context, newest *setFiles, srcSets, dstSets []string, chData []byte) error {
	lacking, err := r.lackingOlder(ctx, srcSets, dstSets)
	if err != nil || len(lacking) == 0 {
		return err
	}
	gen, err := r.generation(ctx, newest)
	if err != nil {
		return err
	}
	// The newest set, copied whole by this run, is a base to plan each
	// older one beside: the directories they share are not descended.
	var base *manifest.Manifest
	if newest != nil {
		base = newest.m
	}
	copied := false
	for _, id := range lacking {
		s, p, err := r.olderSet(ctx, id, gen, base)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.res.Older = append(r.res.Older, OlderSet{Set: id, Reason: err.Error()})
			continue
		}
		// copySet reports into the result; the result's figures stay the
		// newest set's, this one's go to its own line.
		keep := *r.res
		r.res.Files, r.res.Copied, r.res.Bytes, r.res.Present, r.res.Replaced = 0, 0, 0, 0, 0
		err = r.copySet(ctx, s, p, chData)
		s.close()
		p.close()
		o := OlderSet{Set: id, Files: r.res.Files, Copied: r.res.Copied, Bytes: r.res.Bytes}
		if s.beside {
			o.Beside = newest.id
		}
		*r.res = keep // copySet changes only the set's own figures
		if err != nil {
			return fmt.Errorf("older set %s: %w", id, err)
		}
		r.res.Older = append(r.res.Older, o)
		copied = copied || o.Copied > 0
	}
	// The newest set's record (unchanged-set fast path) took the digests
	// of its directories before these copies wrote into some of them.
	if _, ok := r.opts.Dst.(Digester); ok && copied && !r.opts.DryRun {
		if rec := r.opts.Checked.record(); rec != nil && rec.set == r.res.Set {
			return r.recordDirs(ctx, rec, nil)
		}
	}
	return nil
}

// lackingOlder lists the source's sets older than r.res.Set that the
// destination does not hold signed, oldest first.
func (r *runner) lackingOlder(ctx context.Context, srcSets, dstSets []string) ([]string, error) {
	atDst := map[string]bool{}
	for _, id := range dstSets {
		atDst[id] = true
	}
	var both, lacking []string
	for _, id := range srcSets {
		switch {
		case id >= r.res.Set:
		case atDst[id]:
			both = append(both, manifest.SetsDirName+"/"+id)
		default:
			lacking = append(lacking, id)
		}
	}
	if err := r.dst.prefetchDirs(ctx, both, listWorkers); err != nil {
		return nil, err
	}
	for _, d := range both {
		id := strings.TrimPrefix(d, manifest.SetsDirName+"/")
		if _, ok, err := r.dst.stat(ctx, setRel(id, manifest.SignatureFileName)); err != nil {
			return nil, err
		} else if !ok {
			lacking = append(lacking, id) // a copy stopped before the signature
		}
	}
	slices.Sort(lacking) // ids sort by sequence
	return lacking, nil
}

// generation is the Elasticsearch repository generation of the newest
// set (0 if it has no snapshot): read from newest, or from the source
// when the run found the set unchanged and did not load it.
func (r *runner) generation(ctx context.Context, newest *setFiles) (int64, error) {
	var m *manifest.Manifest
	if newest != nil {
		m = newest.m
	} else {
		var err error
		if _, _, m, err = readManifest(ctx, r.opts.Src, r.res.Set, r.opts.VerifySignature); err != nil {
			return 0, err
		}
	}
	if m.Elasticsearch == nil {
		return 0, nil
	}
	return m.Elasticsearch.Generation, nil
}

// olderSet loads set id, leaves out the repository metadata that the
// newest generation gen supersedes, and checks that the rest is complete
// at the source. base, if not nil, is a set whole at the destination (the
// newest, just copied): the files of directories id shares with it are
// left out (loadSet's old), as they are there - a first push of a channel
// holding a few sets of a million files, most of them shared, planned each
// older set's million files at both ends.
func (r *runner) olderSet(ctx context.Context, id string, gen int64, base *manifest.Manifest) (*setFiles, *plan, error) {
	keep := func(m *manifest.Manifest, name string) bool {
		if name == indexLatest {
			return false // the newest set's alone
		}
		if es := m.Elasticsearch; es != nil && es.Generation < gen {
			if rest, ok := strings.CutPrefix(name, manifest.ESDirName+"/"); ok && manifest.IsESMetadata(rest) {
				return false
			}
		}
		return true
	}
	s, err := loadSet(ctx, r.opts.Src, id, r.opts.VerifySignature, keep, nil, r.opts.Checked.spoolBase(), base)
	if err != nil {
		return nil, nil, err
	}
	if !s.m.Channel.Matches(r.channel) {
		s.close()
		return nil, nil, fmt.Errorf("set %s is for channel %s, the source is %s: %w", id, s.m.Channel, r.channel, manifest.ErrNotForUs)
	}
	p, err := r.planSet(ctx, s, nil)
	if err != nil {
		s.close()
		return nil, nil, err
	}
	return s, p, nil
}
