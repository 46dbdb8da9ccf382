package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// maxEpochRecord bounds an epoch record or its signature.
const maxEpochRecord = 64 << 10

// copyEpochs copies the channel's fencing epoch records
// (epochs/<epoch>.json and .json.sig, manifest/DESIGN.md "Fencing") that the
// destination lacks, before any set: a record, then its signature. It never
// replaces or deletes one: the destination may hold records of its own site's
// promotion that the source does not have, and those must stay. The records
// are not checked here; every reader checks their signatures.
func (r *runner) copyEpochs(ctx context.Context) error {
	src, err := r.opts.Src.ReadDir(ctx, manifest.EpochsDirName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s/ at %s: %w", manifest.EpochsDirName, r.opts.Src, err)
	}
	have := map[string]bool{}
	dst, err := r.opts.Dst.ReadDir(ctx, manifest.EpochsDirName)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("list %s/ at %s: %w", manifest.EpochsDirName, r.opts.Dst, err)
	}
	for _, e := range dst {
		have[e.Name] = true
	}
	var todo []string
	for _, e := range src {
		if e.Dir || have[e.Name] || strings.HasPrefix(e.Name, manifest.TempPrefix) ||
			!strings.HasSuffix(e.Name, ".json") && !strings.HasSuffix(e.Name, ".json.sig") {
			continue
		}
		todo = append(todo, e.Name)
	}
	if len(todo) == 0 {
		return nil
	}
	sort.Strings(todo) // <n>.json before <n>.json.sig
	if err := r.opts.Dst.MkdirAll(ctx, manifest.EpochsDirName); err != nil {
		return fmt.Errorf("create %s/ at %s: %w", manifest.EpochsDirName, r.opts.Dst, err)
	}
	for _, name := range todo {
		rel := manifest.EpochsDirName + "/" + name
		data, err := readSmall(ctx, r.opts.Src, rel, maxEpochRecord)
		if err != nil {
			return err
		}
		if err := r.cp.writeBytes(ctx, rel, data, ""); err != nil {
			return err
		}
	}
	return nil
}
