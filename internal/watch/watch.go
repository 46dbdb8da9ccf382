package watch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/squirro-bcp/bcp/manifest"
)

// Options configures Watch.
type Options struct {
	// Dir is the channel directory.
	Dir string
	// Poll is the interval of the safety-net poll; 60s when zero.
	Poll time.Duration
	// Debounce is how long events must be quiet before a trigger; 300ms when zero.
	Debounce time.Duration
	// Logf, if set, receives diagnostics (a watch that could not be added).
	Logf func(format string, args ...any)
}

// Why a trigger fired.
const (
	ReasonStart = "start"
	ReasonEvent = "event"
	ReasonPoll  = "poll"
)

// Watch sends on the returned channel once at start, after every quiet burst
// of file-system events under opts.Dir, and at every poll interval. A trigger
// is dropped if the previous one was not yet received (the receiver will look
// anyway). The channel is closed when ctx ends.
func Watch(ctx context.Context, opts Options) (<-chan string, error) {
	if opts.Poll <= 0 {
		opts.Poll = 60 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 300 * time.Millisecond
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if st, err := os.Stat(opts.Dir); err != nil || !st.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		return nil, fmt.Errorf("watch %s: %w", opts.Dir, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", opts.Dir, err)
	}
	wt := &watcher{opts: opts, w: w, watched: map[string]bool{}}
	wt.addTree()
	out := make(chan string, 1)
	go wt.loop(ctx, out)
	return out, nil
}

type watcher struct {
	opts    Options
	w       *fsnotify.Watcher
	watched map[string]bool
}

// interesting reports whether a directory (relative to the channel, slash
// separated) is one to watch: every directory of the channel except pins/,
// locks/ and temporary ones. A set is complete only when its last piece is
// there, and a mover may bring that piece anywhere, deep in es/indices too.
func interesting(rel string) bool {
	if rel == "." {
		return true
	}
	parts := strings.Split(rel, "/")
	if strings.HasPrefix(parts[len(parts)-1], manifest.TempPrefix) {
		return false
	}
	switch parts[0] {
	case manifest.PinsDirName, manifest.LocksDirName:
		return false
	}
	return true
}

func (wt *watcher) add(dir string) {
	if wt.watched[dir] {
		return
	}
	if err := wt.w.Add(dir); err != nil {
		wt.opts.Logf("watch: cannot watch %s: %v (the poll still sees it)", dir, err)
		return
	}
	wt.watched[dir] = true
}

// addTree adds every interesting directory that exists now.
func (wt *watcher) addTree() {
	root := wt.opts.Dir
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if !interesting(rel) {
			return filepath.SkipDir
		}
		wt.add(p)
		return nil
	})
}

func (wt *watcher) loop(ctx context.Context, out chan<- string) {
	defer close(out)
	defer wt.w.Close()
	send := func(reason string) {
		select {
		case out <- reason:
		default:
		}
	}
	send(ReasonStart)
	poll := time.NewTicker(wt.opts.Poll)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			wt.addTree() // directories an NFS client never told us about
			send(ReasonPoll)
		case ev, ok := <-wt.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					// a new set or fan-out directory: watch it and whatever
					// arrived in it before the watch was in place
					wt.addTree()
				}
			}
			if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				delete(wt.watched, ev.Name)
			}
			debounce.Reset(wt.opts.Debounce)
		case err, ok := <-wt.w.Errors:
			if !ok {
				return
			}
			// an overflow loses events: look again now
			wt.opts.Logf("watch: %v; looking again", err)
			send(ReasonEvent)
		case <-debounce.C:
			send(ReasonEvent)
		}
	}
}
