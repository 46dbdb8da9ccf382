package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// maxEpochRecord bounds an epoch record or its signature.
const maxEpochRecord = 64 << 10

// copyEpochs copies the channel's fencing epoch records
// (epochs/<epoch>.json and .json.sig, manifest/DESIGN.md "Fencing") that the
// destination lacks, before any set: a record, then its signature. It never
// replaces or deletes one: the destination may hold records of its own site's
// promotion that the source does not have, and those must stay. The records
// are not checked here; every reader checks their signatures. Where the
// destination publishes in steps, writeIdentity sends them with the
// channel's identity in one request instead.
func (r *runner) copyEpochs(ctx context.Context) error {
	todo, err := r.epochsToCopy(ctx)
	if err != nil || len(todo) == 0 {
		return err
	}
	if err := r.opts.Dst.MkdirAll(ctx, manifest.EpochsDirName); err != nil {
		return fmt.Errorf("create %s/ at %s: %w", manifest.EpochsDirName, r.opts.Dst, err)
	}
	for _, name := range todo {
		rel, data, err := r.readEpoch(ctx, name)
		if err != nil {
			return err
		}
		if err := r.cp.writeBytes(ctx, rel, data, ""); err != nil {
			return err
		}
	}
	return nil
}

// readEpoch reads the source's epoch record name: its path in the channel
// and its bytes.
func (r *runner) readEpoch(ctx context.Context, name string) (string, []byte, error) {
	rel := manifest.EpochsDirName + "/" + name
	data, err := readSmall(ctx, r.opts.Src, rel, maxEpochRecord)
	return rel, data, err
}

// epochsToCopy returns the names of the epoch records in the source's
// epochs/ that the destination lacks, sorted (<n>.json before
// <n>.json.sig). The destination's epochs/ is listed only where its root
// shows one (r.dst: one round trip less on a first copy).
func (r *runner) epochsToCopy(ctx context.Context) ([]string, error) {
	src, err := r.opts.Src.ReadDir(ctx, manifest.EpochsDirName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s/ at %s: %w", manifest.EpochsDirName, r.opts.Src, err)
	}
	have := map[string]bool{}
	if _, ok, err := r.dst.stat(ctx, manifest.EpochsDirName); err != nil {
		return nil, fmt.Errorf("list %s: %w", r.opts.Dst, err)
	} else if ok {
		dst, err := r.opts.Dst.ReadDir(ctx, manifest.EpochsDirName)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("list %s/ at %s: %w", manifest.EpochsDirName, r.opts.Dst, err)
		}
		for _, e := range dst {
			have[e.Name] = true
		}
	}
	var todo []string
	for _, e := range src {
		if e.Dir || have[e.Name] || strings.HasPrefix(e.Name, manifest.TempPrefix) ||
			!strings.HasSuffix(e.Name, ".json") && !strings.HasSuffix(e.Name, ".json.sig") {
			continue
		}
		todo = append(todo, e.Name)
	}
	sort.Strings(todo) // <n>.json before <n>.json.sig
	return todo, nil
}

// identitySteps is what writeIdentity publishes: the channel's identity
// (chData) where the destination has none, then the epoch records it
// lacks, publishMax a step; each file read, checked and admitted by the
// bandwidth limit. None: the destination has all of them.
func (r *runner) identitySteps(ctx context.Context, chData []byte) ([][]remote.Published, error) {
	var steps [][]remote.Published
	if _, ok, err := r.dst.stat(ctx, manifest.ChannelFileName); err != nil {
		return nil, err
	} else if !ok {
		f, err := r.admitted(ctx, manifest.ChannelFileName, chData, "")
		if err != nil {
			return nil, err
		}
		steps = append(steps, []remote.Published{f})
	}
	todo, err := r.epochsToCopy(ctx)
	if err != nil {
		return nil, err
	}
	for part := range slices.Chunk(todo, publishMax) {
		step := make([]remote.Published, 0, len(part))
		for _, name := range part {
			rel, data, err := r.readEpoch(ctx, name)
			if err != nil {
				return nil, err
			}
			f, err := r.admitted(ctx, rel, data, "")
			if err != nil {
				return nil, err
			}
			step = append(step, f)
		}
		steps = append(steps, step)
	}
	return steps, nil
}

// writeIdentity writes what the destination lacks of the channel's
// identity (chData) and then of its epoch records, before any set: in one
// request where the destination can (StepPublisher: its directories made,
// the identity durable before a record is written, a record before its
// signature is renamed into place - one round trip where file by file
// takes up to seven on a first copy), else one file after the other
// (writeChannel, copyEpochs).
func (r *runner) writeIdentity(ctx context.Context, chData []byte) error {
	if sp, ok := r.opts.Dst.(StepPublisher); ok && !r.noSteps {
		steps, err := r.identitySteps(ctx, chData)
		if err != nil || len(steps) == 0 {
			return err
		}
		_, err = sp.PublishSteps(ctx, nil, steps, nil)
		if !errors.Is(err, remote.ErrNotOffered) {
			if err != nil {
				return fmt.Errorf("write the channel's identity and epoch records at %s: %w", r.opts.Dst, err)
			}
			for _, step := range steps {
				r.addProgress(step)
			}
			return nil
		}
		r.noSteps = true // not asked again for the last phases (publishTail)
	}
	if err := r.writeChannel(ctx, chData); err != nil {
		return err
	}
	return r.copyEpochs(ctx)
}
