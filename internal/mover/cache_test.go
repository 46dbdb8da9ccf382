package mover

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

// The cache file keeps the record and the per-file stamps across runs; a
// line it cannot read is dropped, never trusted.
func TestCheckedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checked")
	sum := strings.Repeat("ab", 32)
	e := Entry{Name: "x", Size: 5, ModTime: time.Unix(1700000000, 123)}
	c, err := OpenChecked(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.set("objects/ab/x", e, sum); err != nil {
		t.Fatal(err)
	}
	rec := &setRecord{set: "0000000001-20261125T120001Z", manifest: sum, files: 7, dirs: []string{"es", "objects/ab"}, digests: [][32]byte{{1}, {2}}}
	c.setRecord(rec)
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	c, _ = OpenChecked(path)
	got := c.record()
	if got == nil || got.set != rec.set || got.manifest != sum || got.files != 7 || len(got.dirs) != 2 || got.digests[1] != rec.digests[1] {
		t.Fatalf("record read back: %+v, want %+v", got, rec)
	}
	st, found, err := c.lookup("objects/ab/x")
	if err != nil {
		t.Fatal(err)
	}
	ok, other := okStamp(st, found, e, sum), okStamp(st, found, e, strings.Repeat("cd", 32))
	if !ok || other {
		t.Fatalf("stamp read back: ok %v with its sum, %v with another; want true, false", ok, other)
	}

	data, _ := os.ReadFile(path)
	for name, bad := range map[string]string{
		"digest cut short":  strings.Replace(string(data), "@dir 02", "@dir 2", 1),
		"unknown line":      "@what is this\n" + string(data),
		"dirs out of order": strings.Replace(string(data), " es\n", " zz\n", 1),
	} {
		testkit.Must(t, os.WriteFile(path, []byte(bad), 0o600))
		if c, _ := OpenChecked(path); c.record() != nil {
			t.Errorf("%s: record trusted", name)
		}
	}
	// A line of the format before sums were kept ("size mtime name").
	testkit.Must(t, os.WriteFile(path, []byte("5 1700000000000000123 objects/ab/x\n"), 0o600))
	c, _ = OpenChecked(path)
	st, found, _ = c.lookup("objects/ab/x")
	if okStamp(st, found, e, sum) {
		t.Fatal("a line without a sum was trusted")
	}
}

// A cache file in no order (as an older version wrote it) is read whole
// into the journal and written back sorted by bucket; this run's sets and
// drops win over what the file says.
func TestCheckedUnsortedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checked")
	sum := strings.Repeat("ab", 32)
	names := []string{"objects/ff/x", "es/indices/a/0/__b", "objects/00/y", "objects/7a/z", "sets/s/manifest.json"}
	var lines string
	for _, n := range names {
		lines += "5 1700000000000000123 " + sum + " " + n + "\n"
	}
	if err := os.WriteFile(path, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := OpenChecked(path)
	e := Entry{Size: 5, ModTime: time.Unix(1700000000, 123)}
	for _, n := range names {
		if st, ok, err := c.lookup(n); err != nil || !okStamp(st, ok, e, sum) {
			t.Fatalf("%s: not read from an unsorted file (%v)", n, err)
		}
	}
	if err := c.drop("objects/7a/z"); err != nil {
		t.Fatal(err)
	}
	if err := c.set("objects/00/y", Entry{Size: 6, ModTime: time.Unix(1700000001, 0)}, sum); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	prev := -1
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		k := bucketOf(lineName([]byte(line)))
		if k < prev {
			t.Fatalf("saved file not in bucket order:\n%s", data)
		}
		prev = k
	}
	c, _ = OpenChecked(path)
	if _, ok, _ := c.lookup("objects/7a/z"); ok {
		t.Error("a dropped name came back")
	}
	if st, ok, _ := c.lookup("objects/00/y"); !ok || st.size != 6 {
		t.Errorf("a set stamp was not kept: %+v", st)
	}
	if st, ok, _ := c.lookup("objects/ff/x"); !okStamp(st, ok, e, sum) {
		t.Error("an untouched stamp was lost")
	}
}

// A run's spools go beside the cache file. A dry run (Close without Save)
// of a cache file in no order and over the spool's memory bound leaves no
// journal behind; a spool a killed run left there is removed by the next
// run's OpenChecked, while one in use by a live run is left alone.
func TestCheckedSpools(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "checked")
	base := path + ".spool"
	sum := strings.Repeat("ab", 32)
	var b strings.Builder
	for i := 0; b.Len() <= spoolHeld+(1<<20); i++ {
		// Buckets in falling order: not sorted.
		fmt.Fprintf(&b, "5 1700000000000000123 %s objects/%02x/%d\n", sum, 255-i%256, i)
	}
	testkit.Must(t, os.WriteFile(path, []byte(b.String()), 0o600))
	spools := func() []string {
		ents, err := os.ReadDir(base)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	c, err := OpenChecked(path)
	testkit.Must(t, err)
	if _, _, err := c.lookup("objects/00/1"); err != nil {
		t.Fatal(err)
	}
	if n := spools(); len(n) != 1 || !strings.HasPrefix(n[0], spoolPrefix) {
		t.Fatalf("spools beside the cache while its journal is large: %v, want one", n)
	}
	c.Close()
	if n := spools(); len(n) != 0 {
		t.Fatalf("spools left by a closed (dry) run: %v", n)
	}

	// A killed run's spool (no lock held) and a live one's.
	stale := filepath.Join(base, spoolPrefix+"killed")
	testkit.Must(t, os.MkdirAll(stale, 0o700))
	testkit.Must(t, os.WriteFile(filepath.Join(stale, "00"), []byte("x"), 0o600))
	live := &bucketFiles{base: base}
	defer live.close()
	testkit.Must(t, live.add(0, make([]byte, spoolHeld+1)))
	c, err = OpenChecked(path)
	testkit.Must(t, err)
	defer c.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a killed run's spool is still there (%v)", err)
	}
	if _, err := os.Stat(live.path(0)); err != nil {
		t.Errorf("a live run's spool was removed: %v", err)
	}
}

// BenchmarkCheckedSave saves the stamps of a first copy of 100k files
// (the end of such a push waits for it).
func BenchmarkCheckedSave(b *testing.B) {
	now := time.Now()
	for range b.N {
		b.StopTimer()
		c, err := OpenChecked(filepath.Join(b.TempDir(), "checked"))
		testkit.Must(b, err)
		for i := range 100000 {
			sum := fmt.Sprintf("%064x", i)
			testkit.Must(b, c.set(fmt.Sprintf("objects/%s/%s/%s", sum[62:], sum[60:62], sum), Entry{Size: 4096, ModTime: now}, sum))
		}
		b.StartTimer()
		testkit.Must(b, c.Save())
		b.StopTimer()
		c.Close()
	}
}

// parseInt reads what strconv.ParseInt reads, and fails where it fails.
func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "7", "-7", "+7", "007", "-0", "", "-", "+", "1a", " 1", "1_000",
		"1764772800123456789", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "00000000000000000000009", "18446744073709551616", "99999999999999999999"} {
		want, err := strconv.ParseInt(s, 10, 64)
		got, ok := parseInt([]byte(s))
		if ok != (err == nil) || ok && got != want {
			t.Errorf("parseInt(%q) = %d, %v; strconv.ParseInt: %d, %v", s, got, ok, want, err)
		}
	}
}
