package mover

import (
	"context"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sync/errgroup"
)

// mkdirsInFlight bounds the directories created at once: the 256 object
// directories of a first copy in one round trip.
const mkdirsInFlight = 256

// mkdirs creates dirs (and their parents) at dst, a level at a time - every
// parent before its children - and each level's directories concurrently:
// over SFTP or the helper each creation costs a round trip or more, and
// made one after the other, the 256 object directories of a first copy
// took 13 s (helper) and 75 s (SFTP) at 50 ms RTT before a byte moved.
func mkdirs(ctx context.Context, dst FS, dirs []string, workers int) error {
	levels := map[int]map[string]bool{}
	for _, d := range dirs {
		for p := path.Clean(d); p != "." && p != "/"; p = path.Dir(p) {
			n := strings.Count(p, "/")
			if levels[n] == nil {
				levels[n] = map[string]bool{}
			}
			if levels[n][p] {
				break
			}
			levels[n][p] = true
		}
	}
	for n := range len(levels) { // depths 0..max: every parent is listed
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(1, min(workers, mkdirsInFlight)))
		for _, d := range sortedKeys(levels[n]) {
			g.Go(func() error {
				if err := dst.MkdirAll(gctx, d); err != nil {
					return fmt.Errorf("create %s at %s: %w", d, dst, err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	}
	return nil
}
