package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestPushFullCompare: a push whose set changed in one directory since the
// last push compares only that directory and says how many it did not;
// an object lost at the destination below an unchanged directory is
// copied again by --full-compare, and by every push with
// full-compare-every = 0.
func TestPushFullCompare(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.MTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	spec := func(changed string) movertest.Spec {
		s := movertest.Spec{Tree: map[string][]byte{}}
		for d := range 5 {
			for f := range 3 {
				p := fmt.Sprintf("d%d/f%d", d, f)
				s.Tree[p] = movertest.Content(p, 50)
			}
		}
		s.Tree["d0/f0"] = movertest.Content(changed, 50)
		return s
	}
	c.Publish(spec("one"))
	args := []string{"push", "--allowed-signers", c.Allowed, srcDir, dstDir}
	out, errs, code := transfer(t, nil, args...)
	want(t, "first push", code, 0, out, errs)
	c.Publish(spec("two"))
	out, errs, code = transfer(t, nil, args...)
	want(t, "push of a change in d0", code, 0, out, errs)
	if !strings.Contains(out, "4 directories unchanged") {
		t.Fatalf("push of a change in d0 does not say it skipped d1-d4: %s", out)
	}
	lost := filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("d3/f1", 50))))
	testkit.Must(t, os.Remove(lost))
	c.Publish(spec("three"))
	out, errs, code = transfer(t, nil, args...)
	want(t, "push of another change in d0", code, 0, out, errs)
	if _, err := os.Stat(lost); err == nil {
		t.Fatalf("the lost object is back without a full comparison: %s", out)
	}
	out, errs, code = transfer(t, nil, append([]string{"push", "--full-compare"}, args[1:]...)...)
	want(t, "push --full-compare", code, 0, out, errs)
	if _, err := os.Stat(lost); err != nil || strings.Contains(out, "unchanged") {
		t.Fatalf("push --full-compare: %v: %s", err, out)
	}
	testkit.Must(t, os.Remove(lost))
	c.Publish(spec("four"))
	out, errs, code = transfer(t, []string{"BCP_TRANSFER_FULL_COMPARE_EVERY=0"}, args...)
	want(t, "push with full-compare-every 0", code, 0, out, errs)
	if _, err := os.Stat(lost); err != nil || strings.Contains(out, "unchanged") {
		t.Fatalf("push with full-compare-every 0: %v: %s", err, out)
	}
}
