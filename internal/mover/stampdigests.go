package mover

import (
	"context"
	"sync"
)

// copiedDigests takes, behind the copy, the digests (for the set's
// record, recordDirs) of the directories of each bucket as soon as every
// file of it was stamped as it was renamed (stampCopied): the directories
// remember would not list. Asked for all at the end of the copy, they were
// a request that walked every directory of the set after the last file
// was in place: 0.3 s of a first copy of 100k files over a far link
// (bench/wan.md). The held files' directories are left out (remember
// lists them). A digest taken early is of the directory as it stays: the
// bucket's files are all in place and nothing else of the run writes
// there before the record is kept; were it not so, the next run would
// find a digest that differs and compare the directory, never the
// reverse.
type copiedDigests struct {
	dg   Digester
	want [numBuckets]int32    // files of each bucket to stamp
	dirs [numBuckets][]string // each bucket's directories to digest

	mu    sync.Mutex
	ready []int               // buckets stamped whole, not asked for yet
	sums  map[string][32]byte // taken so far
	stop  bool
	wake  chan struct{}
	done  chan struct{}
}

// startCopiedDigests starts taking the digests of p's directories behind
// the copy where the destination can fingerprint them (Digester);
// finish returns them. nil where it cannot.
func (r *runner) startCopiedDigests(ctx context.Context, p *plan) *copiedDigests {
	dg, ok := r.opts.Dst.(Digester)
	if !ok {
		return nil
	}
	c := &copiedDigests{dg: dg, sums: map[string][32]byte{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	held := r.heldDirs()
	for d := range p.dirs {
		if !held[d] {
			k := bucketOf(d + "/-")
			c.dirs[k] = append(c.dirs[k], d)
		}
	}
	for k := range numBuckets {
		c.want[k] = int32(p.spool.count(k))
	}
	go c.run(ctx)
	return c
}

// stamped is called as the nth file of bucket k was stamped.
func (c *copiedDigests) stamped(k int, n int32) {
	if c == nil || n != c.want[k] || len(c.dirs[k]) == 0 {
		return
	}
	c.mu.Lock()
	c.ready = append(c.ready, k)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// digestsInFlight bounds the requests of copiedDigests out at once: the
// last few batches of a copy end within a round trip of each other, and
// the digests of each one's buckets, asked for one request after the
// other, came back a round trip after the last phases were written.
const digestsInFlight = 8

// run asks for the digests of the buckets stamped whole, up to
// digestsInFlight requests at once (those that became so while as many
// were out go together in the next), until finish. A request that fails
// is not asked again: its directories are left to the end.
func (c *copiedDigests) run(ctx context.Context) {
	defer close(c.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, digestsInFlight)
	for {
		c.mu.Lock()
		ready, stop := c.ready, c.stop
		c.ready = nil
		c.mu.Unlock()
		if len(ready) == 0 {
			if stop {
				return
			}
			select {
			case <-c.wake:
			case <-ctx.Done():
				return
			}
			continue
		}
		var dirs []string
		for _, k := range ready {
			dirs = append(dirs, c.dirs[k]...)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-slots }()
			sums, err := c.dg.DirDigests(ctx, dirs)
			if err != nil {
				return
			}
			c.mu.Lock()
			for i, d := range dirs {
				c.sums[d] = sums[i]
			}
			c.mu.Unlock()
		})
	}
}

// finish waits for the requests out and returns the digests taken (the
// caller's from then: nothing else writes to it).
func (c *copiedDigests) finish() map[string][32]byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.stop = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	return c.sums
}

// heldDirs returns the directories of the held files of the set being
// copied.
func (r *runner) heldDirs() map[string]bool {
	dirs := map[string]bool{}
	for w := range r.held {
		dirs[dirOf(w.name)] = true
	}
	return dirs
}
