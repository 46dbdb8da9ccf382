package mover

import (
	"context"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"
)

// The copy's hand-out of files to workers and what it keeps open for a
// batch (see writeFiles and finishBatch).

// maxRun is the most files handed to a worker at once by eachRun.
const maxRun = 64

// eachRun is each for workers goroutines. tryAdmit, if not nil, is admit
// without waiting (false: no room now); admit waits only once the run
// being gathered is handed out, so a run never holds room that the files
// it waits for would need. A run is len(files)/(4*workers) files (at
// least 1, at most maxRun), so that every worker has several runs and one
// slow file does not hold up a share of the batch.
func eachRun(ctx context.Context, files []*want, workers int, admit func(context.Context, *want) error, tryAdmit func(*want) bool, fn func(context.Context, *want) error) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan []*want)
	for range min(workers, len(files)) {
		g.Go(func() error {
			for run := range work {
				for _, w := range run {
					if err := fn(gctx, w); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	size := min(max(len(files)/(4*max(workers, 1)), 1), maxRun)
	var stopped error
	send := func(run []*want) bool {
		select {
		case work <- run:
			return true
		case <-gctx.Done():
			stopped = gctx.Err()
			return false
		}
	}
	start := 0 // files[start:i] are admitted and not handed out yet
feed:
	for i, w := range files {
		if admit != nil && (tryAdmit == nil || !tryAdmit(w)) {
			if i > start {
				if !send(files[start:i]) {
					break feed
				}
				start = i
			}
			if stopped = admit(gctx, w); stopped != nil {
				break
			}
		}
		if i+1-start == size {
			if !send(files[start : i+1]) {
				break
			}
			start = i + 1
		}
	}
	if stopped == nil && start < len(files) {
		send(files[start:])
	}
	close(work)
	if err := g.Wait(); err != nil {
		return err
	}
	return stopped // ctx ended while handing out files
}

// dirPinner is implemented by backends that can hold directories open
// for a while, so that the files in them are opened, created and renamed
// relative to the open directory (Local: openat and renameat instead of a
// lookup of every element of the path, twice for a rename). unpin closes
// what pinDirs opened; pins nest.
type dirPinner interface {
	pinDirs(dirs []string) (unpin func())
}

// pinDirs pins the directories of files at f where f can (dirPinner), for
// as long as a batch's files are read, written or renamed there; the
// returned func unpins them.
func pinDirs(f FS, files []*want) (unpin func()) {
	p, ok := f.(dirPinner)
	if !ok || len(files) == 0 {
		return func() {}
	}
	var dirs []string
	last := ""
	for _, w := range files {
		// A batch comes bucket by bucket: a few directories, in runs.
		if d := dirOf(w.name); d != last {
			dirs, last = append(dirs, d), d
		}
	}
	slices.Sort(dirs)
	return p.pinDirs(slices.Compact(dirs))
}

// localDiskWorkers is the most files in flight per CPU when both ends are
// on local disks. There a worker does not wait for a server: creating and
// renaming a file is CPU work in the kernel, under the lock of its
// directory (a batch comes bucket by bucket: a few directories at 100k
// files, one at 1M), and workers beyond a few per CPU spin on that lock
// (rwsem_spin_on_owner was 7.6% of a push's CPU with 512 in flight).
const localDiskWorkers = 2

// copyWorkers is how many files the copy has in flight: workers, but at
// most localDiskWorkers per CPU (at least 4) where source and destination
// are both directories on local disks (onLocalDisk). An NFS or SFTP end
// keeps workers: there each file waits for round trips, which many files
// in flight overlap.
func (c *copier) copyWorkers(workers int) int {
	c.workersOnce.Do(func() {
		c.localDisks = isLocalDisk(c.src) && isLocalDisk(c.dst)
	})
	if c.localDisks {
		return min(workers, max(4, localDiskWorkers*runtime.NumCPU()))
	}
	return workers
}

func isLocalDisk(f FS) bool {
	l, ok := f.(*Local)
	return ok && onLocalDisk(l.Root)
}
