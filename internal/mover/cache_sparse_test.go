package mover

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

// Save merges this run's changes (the last of each name winning) into
// each bucket's section without parsing the lines it keeps, and viewNames finds a few names of a bucket
// by binary search: both give what view gives. A record with a full
// comparison time and no directories (a push beside the recorded set)
// reads back.
func TestCheckedSparse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checked")
	sum := strings.Repeat("ab", 32)
	c, err := OpenChecked(path)
	testkit.Must(t, err)
	want := map[string]stamp{}
	put := func(name string, n int) {
		t.Helper()
		e := Entry{Size: int64(n), ModTime: time.Unix(1700000000, int64(n))}
		testkit.Must(t, c.set(name, e, sum))
		want[name] = stamp{e.Size, e.ModTime.UnixNano(), sum}
	}
	for i := range 3000 {
		put(fmt.Sprintf("objects/%02x/%04d", i%7, i), i)
	}
	put("es/a", 1)
	put("objects/02/0002", 42) // set again: the last stamp wins
	full := time.Unix(1700000000, 5)
	c.setRecord(&setRecord{set: "0000000001-20261125T120001Z", manifest: sum, files: 7, fullAt: full})
	testkit.Must(t, c.Save())
	check := func(when string) {
		t.Helper()
		c.Close()
		c, err = OpenChecked(path)
		testkit.Must(t, err)
		if rec := c.record(); rec == nil || !rec.fullAt.Equal(full) || len(rec.dirs) != 0 {
			t.Fatalf("%s: record %+v, want one with the full comparison's time", when, rec)
		}
		got := map[string]stamp{}
		for k := range numBuckets {
			m, err := c.view(k)
			testkit.Must(t, err)
			maps.Copy(got, m)
			var names []string
			for name := range m {
				names = append(names, name)
			}
			names = append(names, "objects/00/none", "zz")
			sparse, err := c.viewNames(k, names[max(0, len(names)-viewSearchMax):])
			testkit.Must(t, err)
			for _, name := range names[max(0, len(names)-viewSearchMax):] {
				if sparse[name] != m[name] {
					t.Fatalf("%s: viewNames %s = %+v, view %+v", when, name, sparse[name], m[name])
				}
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s: %d stamps read back, want %d", when, len(got), len(want))
		}
	}
	check("first save")
	// A few changed, dropped and added, in a few buckets.
	put("objects/03/0010", 99)
	put("objects/03/9999", 98)
	put("objects/05/0000a", 97)
	testkit.Must(t, c.drop("objects/04/0004"))
	delete(want, "objects/04/0004")
	testkit.Must(t, c.drop("objects/04/0011"))
	delete(want, "objects/04/0011")
	put("objects/04/0011", 96) // dropped, then set again
	put("objects/06/0006", 95)
	put("objects/06/0006", 94)
	put("objects/06/0013a", 93) // set, then dropped
	testkit.Must(t, c.drop("objects/06/0013a"))
	delete(want, "objects/06/0013a")
	testkit.Must(t, c.Save())
	check("merged save")
}
