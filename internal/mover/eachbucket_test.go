package mover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/manifest"
)

// testWindow is the buckets of a window of eachBucket in these tests: a
// file in every bucket (everyBucket), at most testWindow files a window.
const testWindow = 32

// windowLister is a destination that lists many directories at once
// (DirsLister) and tells, by window, when a request started; hold, where
// set, has a window's request wait for it (or for its context) first, and
// fail has a window's request fail.
type windowLister struct {
	*Local
	started  [numBuckets / testWindow]chan struct{}
	hold     map[int]chan struct{}
	fail     map[int]error
	inFlight atomic.Int32
	mu       sync.Mutex
	asked    [][]string
}

func newWindowLister(t *testing.T) *windowLister {
	d := &windowLister{Local: NewLocal(t.TempDir())}
	for i := range d.started {
		d.started[i] = make(chan struct{})
	}
	return d
}

func (d *windowLister) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	var k int
	if _, err := fmt.Sscanf(dirs[0], manifest.ObjectsDirName+"/%02x", &k); err != nil {
		return nil, err
	}
	win := k / testWindow
	d.mu.Lock()
	d.asked = append(d.asked, dirs)
	d.mu.Unlock()
	close(d.started[win])
	if h := d.hold[win]; h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := d.fail[win]; err != nil {
		return nil, err
	}
	out := make([]remote.DirList, len(dirs))
	for i, dir := range dirs {
		out[i].Entries = []Entry{{Name: baseOf(dir) + "-listed"}}
	}
	return out, nil
}

// everyBucket is a spool with a file in every bucket.
func everyBucket(t *testing.T) *bucketFiles {
	t.Helper()
	sp := &bucketFiles{base: t.TempDir()}
	t.Cleanup(sp.close)
	for k := range numBuckets {
		if err := sp.add(k, []byte{byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	return sp
}

func objectsDir(k int) string { return fmt.Sprintf("%s/%02x", manifest.ObjectsDirName, k) }

// Every bucket is handed over once, with its own window's listings, and
// the next window is listed while this one's buckets are handled: a
// bucket of each window but the last waits here for the next window's
// request to start.
func TestEachBucketListsNextWindowAhead(t *testing.T) {
	dst := newWindowLister(t)
	r := &runner{opts: Options{Dst: dst}, aheadEntries: testWindow}
	var mu sync.Mutex
	seen := map[int]int{}
	err := r.eachBucket(t.Context(), everyBucket(t), bucketWalk{look: true}, func(ctx context.Context, k int, ahead listings) error {
		win := k / testWindow
		if k%testWindow == 0 && win+1 < len(dst.started) {
			select {
			case <-dst.started[win+1]:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if len(ahead.lists) != testWindow {
			return fmt.Errorf("bucket %02x: %d listings held, want its window's %d", k, len(ahead.lists), testWindow)
		}
		for j := win * testWindow; j < (win+1)*testWindow; j++ {
			if _, ok := ahead.lists[objectsDir(j)]; !ok {
				return fmt.Errorf("bucket %02x: no listing of %s", k, objectsDir(j))
			}
		}
		mu.Lock()
		seen[k]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range numBuckets {
		if seen[k] != 1 {
			t.Errorf("bucket %02x handed over %d times, want 1", k, seen[k])
		}
	}
	if len(dst.asked) != numBuckets/testWindow {
		t.Errorf("%d listing requests, want one a window (%d)", len(dst.asked), numBuckets/testWindow)
	}
	for i, dirs := range dst.asked {
		want := make([]string, 0, testWindow)
		for j := i * testWindow; j < (i+1)*testWindow; j++ {
			want = append(want, objectsDir(j))
		}
		if !slices.Equal(dirs, want) {
			t.Errorf("request %d listed %v, want %v", i, dirs, want)
		}
	}
}

// A fetch that fails fails eachBucket once its window is reached, and the
// buckets of that window and after are not handed over; a failure while
// the next window is being fetched cancels that fetch and waits for it.
func TestEachBucketFetchFailures(t *testing.T) {
	errList := errors.New("list failed")
	errBucket := errors.New("bucket failed")
	for _, tc := range []struct {
		name    string
		fail    map[int]error // by window, of the fetch
		hold    map[int]chan struct{}
		failAt  int // a bucket whose fn fails; -1 for none
		want    error
		lastWin int // the last window whose buckets may be handed over
	}{
		{name: "fetch fails", fail: map[int]error{2: errList}, failAt: -1, want: errList, lastWin: 1},
		{name: "first fetch fails", fail: map[int]error{0: errList}, failAt: -1, want: errList, lastWin: -1},
		{name: "bucket fails while the next window is fetched", hold: map[int]chan struct{}{1: make(chan struct{})}, failAt: 5, want: errBucket, lastWin: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newWindowLister(t)
			dst.fail, dst.hold = tc.fail, tc.hold
			r := &runner{opts: Options{Dst: dst}, aheadEntries: testWindow}
			err := r.eachBucket(t.Context(), everyBucket(t), bucketWalk{look: true}, func(ctx context.Context, k int, _ listings) error {
				if k/testWindow > tc.lastWin {
					return fmt.Errorf("bucket %02x handed over after the failure", k)
				}
				if k == tc.failAt {
					<-dst.started[k/testWindow+1]
					return errBucket
				}
				return nil
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("eachBucket: %v, want %v", err, tc.want)
			}
			if n := dst.inFlight.Load(); n != 0 {
				t.Errorf("%d listing requests still running after eachBucket returned", n)
			}
		})
	}
}

// Windows are consecutive buckets holding at most the given number of
// files between them; a bucket with more is a window of its own, and
// buckets that hold nothing or are left out are in none.
func TestBucketWindows(t *testing.T) {
	sp := &bucketFiles{base: t.TempDir()}
	t.Cleanup(sp.close)
	for k, n := range map[int]int{0: 3, 1: 2, 3: 10, 4: 1, 5: 1, 9: 4, 200: 1} {
		for i := range n {
			if err := sp.add(k, []byte{byte(k), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name string
		bw   bucketWalk
		most int
		want []window
	}{
		{"split by files", bucketWalk{}, 5, []window{{0, 2}, {3, 4}, {4, 6}, {9, 201}}},
		{"one window", bucketWalk{}, aheadEntries, []window{{0, 201}}},
		{"left out", bucketWalk{skip: func(k int) bool { return k == 4 || k == 200 }}, 5, []window{{0, 2}, {3, 4}, {5, 10}}},
	} {
		if got := bucketWindows(sp, tc.bw, tc.most); !slices.Equal(got, tc.want) {
			t.Errorf("%s: windows %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A set of a few hundred files, a file in every bucket, is one window:
// every object directory listed in one request.
func TestEachBucketOneWindowForFewFiles(t *testing.T) {
	dst := newWindowLister(t)
	r := &runner{opts: Options{Dst: dst}}
	err := r.eachBucket(t.Context(), everyBucket(t), bucketWalk{look: true}, func(ctx context.Context, k int, ahead listings) error {
		if len(ahead.lists) != numBuckets {
			return fmt.Errorf("bucket %02x: %d listings held, want every bucket's %d", k, len(ahead.lists), numBuckets)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dst.asked) != 1 || len(dst.asked[0]) != numBuckets {
		t.Errorf("%d listing requests, want 1 of %d directories", len(dst.asked), numBuckets)
	}
}
