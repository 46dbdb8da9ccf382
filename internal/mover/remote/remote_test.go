package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// pair runs Serve on root in-process, connected to a Client by pipes, with
// some login-shell chatter before the greeting.
func pair(t *testing.T, root string) *Client {
	t.Helper()
	return pairOffering(t, root, optionalOps)
}

// pairOffering is pair with a helper that announces only ops.
func pairOffering(t *testing.T, root string, ops []byte) *Client {
	t.Helper()
	sin, cin := io.Pipe()   // client writes cin, server reads sin
	sout, cout := io.Pipe() // server writes cout, client reads sout
	done := make(chan error, 1)
	go func() {
		_, _ = io.WriteString(cout, "Welcome to the standby\n")
		done <- serve(root, sin, cout, ops)
		_ = cout.Close()
		_ = sin.Close() // as a closed SSH channel: the client's writes fail, not hang
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := connect(ctx, cin, sout, &sshx.Tail{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Close() // the helper's own end is in done
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

func TestPutStreamListRename(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	if _, err := c.List(ctx, "."); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of a missing root: %v, want fs.ErrNotExist", err)
	}
	if err := c.MkdirAll(ctx, "objects/ab"); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "objects/ab/.tmp-x", []byte("small"), false); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB: streamed
	stream(t, c.Create("objects/ab/.tmp-big"), big, 1<<20)
	if err := c.SyncFS(ctx, []string{"objects/ab"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"x", "big"} {
		if err := c.Rename(ctx, "objects/ab/.tmp-"+n, "objects/ab/"+n); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(root, "objects/ab/big"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("streamed file: %d bytes, %v; want %d bytes", len(got), err, len(big))
	}
	ents, err := c.List(ctx, "objects/ab")
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[string]int64{}
	for _, e := range ents {
		sizes[e.Name] = e.Size
		if fi, _ := os.Stat(filepath.Join(root, "objects/ab", e.Name)); !fi.ModTime().Equal(e.ModTime) {
			t.Errorf("%s: mtime %v, want %v", e.Name, e.ModTime, fi.ModTime())
		}
	}
	if len(sizes) != 2 || sizes["x"] != 5 || sizes["big"] != int64(len(big)) {
		t.Fatalf("List = %v", sizes)
	}
	if err := c.Remove(ctx, "objects/ab/x"); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, "objects/ab/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second Remove: %v, want fs.ErrNotExist", err)
	}
}

// stream writes data to f in writes of chunk bytes, then syncs and closes it.
func stream(t *testing.T, f *File, data []byte, chunk int) {
	t.Helper()
	for p := data; len(p) > 0; {
		n := min(len(p), chunk)
		if _, err := f.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// A stream on a local file system is written around the page cache
// (O_DIRECT) from a block-aligned buffer, whatever sizes the writes come
// in, and the last bytes that are not a whole block through it.
func TestStreamDirect(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	want := make([]byte, 5<<20+12345)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(want)
	stream(t, c.Create("big"), want, 100003) // not a multiple of any block size
	if cached, ok := cachedPages(t, filepath.Join(root, "big"), 4<<20); ok && cached > 0 {
		t.Errorf("%d pages of the stream's first 4 MiB are in the page cache: not written directly", cached)
	}
	got, err := os.ReadFile(filepath.Join(root, "big"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("streamed file: %d bytes (%v), want %d identical bytes", len(got), err, len(want))
	}
}

// cachedPages counts the pages of the first n bytes of path that are in
// the page cache; ok is false where the helper writes through the page
// cache anyway (not ext4, xfs or btrfs).
func cachedPages(t *testing.T, path string, n int) (cached int, ok bool) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	switch uint32(st.Type) {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
	default:
		t.Logf("%s is not on ext4, xfs or btrfs: written through the page cache", path)
		return 0, false
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, n, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(m) }()
	vec := make([]byte, n/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		cached += int(v & 1)
	}
	return cached, true
}

// The helper's digest of a directory is Digest of its listing, and it
// changes with anything a listing shows: a file added, removed, resized or
// touched.
func TestDigest(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	ctx := context.Background()
	dir := filepath.Join(root, "objects", "ab")
	testkit.Must(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o750))
	// explicit times: two writes within one clock tick show the same time
	t0 := time.Now().Add(-time.Hour)
	for _, n := range []string{"x", "y", "z"} {
		testkit.Must(t, os.WriteFile(filepath.Join(dir, n), []byte("content "+n), 0o640))
		testkit.Must(t, os.Chtimes(filepath.Join(dir, n), t0, t0))
	}
	digest := func() [32]byte {
		t.Helper()
		res, err := c.Digests(ctx, []string{"objects/ab"})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
		n, sum := res[0].Entries, res[0].Sum
		ents, err := c.List(ctx, "objects/ab")
		if err != nil {
			t.Fatal(err)
		}
		if n != len(ents) || sum != Digest(ents) {
			t.Fatalf("helper: %d entries, digest %x; from its listing: %d, %x", n, sum, len(ents), Digest(ents))
		}
		return sum
	}
	seen := map[[32]byte]string{}
	step := func(what string) {
		t.Helper()
		sum := digest()
		if prev, ok := seen[sum]; ok {
			t.Fatalf("after %s the digest is the one after %s", what, prev)
		}
		seen[sum] = what
	}
	step("start")
	if a, b := digest(), digest(); a != b {
		t.Fatal("digest of an unchanged directory changed")
	}
	x := filepath.Join(dir, "x")
	testkit.Must(t, os.WriteFile(x, []byte("content X"), 0o640)) // same size, new time
	testkit.Must(t, os.Chtimes(x, t0.Add(time.Millisecond), t0.Add(time.Millisecond)))
	step("rewrite in place")
	testkit.Must(t, os.Chtimes(x, t0, t0)) // same size, old time back: a listing cannot tell
	if digest() != [32]byte(mustKey(t, seen, "start")) {
		t.Fatal("same names, sizes and times, different digest")
	}
	testkit.Must(t, os.WriteFile(filepath.Join(dir, "y"), []byte("longer content y"), 0o640))
	step("resize")
	testkit.Must(t, os.Remove(filepath.Join(dir, "z")))
	step("remove")
	testkit.Must(t, os.WriteFile(filepath.Join(dir, ".tmp-new"), nil, 0o640))
	step("add")
	testkit.Must(t, os.Rename(filepath.Join(dir, ".tmp-new"), filepath.Join(dir, "new")))
	step("rename")
	res, err := c.Digests(ctx, []string{"objects/cd", "objects/ab"})
	if err != nil || !errors.Is(res[0].Err, fs.ErrNotExist) || res[1].Err != nil || res[1].Sum != digest() {
		t.Fatalf("Digests of a missing and a present directory: %v %+v, want fs.ErrNotExist and the digest", err, res)
	}
}

func mustKey(t *testing.T, m map[[32]byte]string, v string) [32]byte {
	t.Helper()
	for k, w := range m {
		if w == v {
			return k
		}
	}
	t.Fatalf("no digest for %q", v)
	return [32]byte{}
}

// The helper keeps directories open between requests; one removed and made
// again behind its back (or by its own Remove) is opened again, not
// written into while deleted.
func TestReplacedDirectory(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	ctx := context.Background()
	dir := filepath.Join(root, "objects", "ab")
	put := func(name string) {
		t.Helper()
		if err := c.Put(ctx, name, []byte(name), false); err != nil {
			t.Fatal(err)
		}
		if err := c.Rename(ctx, name, name+".done"); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(root, name+".done")); err != nil || string(got) != name {
			t.Fatalf("%s: %q, %v", name, got, err)
		}
	}
	testkit.Must(t, os.MkdirAll(dir, 0o750))
	put("objects/ab/1")
	testkit.Must(t, os.RemoveAll(dir)) // behind the helper's back
	testkit.Must(t, os.MkdirAll(dir, 0o750))
	put("objects/ab/2")
	for _, n := range []string{"objects/ab/2.done", "objects/ab"} {
		if err := c.Remove(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.MkdirAll(ctx, "objects/ab"); err != nil {
		t.Fatal(err)
	}
	put("objects/ab/3")
	if err := c.Put(ctx, "objects/ab", nil, false); err == nil {
		t.Fatal("Put over a directory succeeded")
	}
}

func TestConfinedToRoot(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "channel")
	testkit.Must(t, os.Mkdir(root, 0o750))
	testkit.Must(t, os.Symlink(parent, filepath.Join(root, "out")))
	c := pair(t, root)
	ctx := context.Background()
	for _, name := range []string{"../escape", "out/escape", "/etc/escape"} {
		if err := c.Put(ctx, name, []byte("x"), false); err == nil {
			t.Errorf("Put %q succeeded outside the root", name)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "escape")); err == nil {
		t.Fatal("a file was written outside the root")
	}
}

func TestWriteErrorReportedAtClose(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	f := c.Create("no/such/dir/.tmp-f")
	if _, err := f.Write(make([]byte, 3<<20)); err != nil {
		t.Fatal(err) // writes are not answered; the error comes with Sync or Close
	}
	err := f.Sync()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no/such/dir") {
		t.Fatalf("Sync = %v, want a not-exist error naming the path", err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("Close after a failed open succeeded")
	}
}

func TestHelperGoneFailsCalls(t *testing.T) {
	sin, cin := io.Pipe()
	sout, cout := io.Pipe()
	go func() {
		_, _ = io.WriteString(cout, Hello+"\n")
		_, _ = io.CopyN(io.Discard, sin, 9) // read part of a request, then die
		cout.CloseWithError(io.ErrClosedPipe)
		_ = sin.Close()
	}()
	c, err := connect(context.Background(), cin, sout, &sshx.Tail{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MkdirAll(context.Background(), "x"); err == nil || !strings.Contains(err.Error(), "transfer helper") {
		t.Fatalf("call to a dead helper = %v", err)
	}
}

func TestNoGreeting(t *testing.T) {
	_, cin := io.Pipe()
	sout, cout := io.Pipe()
	go func() {
		_, _ = io.WriteString(cout, "sh: 1: transfer: not found\n")
		_ = cout.Close()
	}()
	_, err := connect(context.Background(), cin, sout, &sshx.Tail{})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("connect = %v, want ErrUnavailable", err)
	}
}

// TestBatchedCallsFailWhenHelperDies: puts and renames waiting in a batch
// return an error, never hang, when the helper goes away.
func TestBatchedCallsFailWhenHelperDies(t *testing.T) {
	sin, cin := io.Pipe()
	sout, cout := io.Pipe()
	go func() {
		_, _ = io.WriteString(cout, Hello+"\n")
		_, _ = io.CopyN(io.Discard, sin, 64) // take part of the first batch, then die
		cout.CloseWithError(io.ErrClosedPipe)
		sin.CloseWithError(io.ErrClosedPipe)
	}()
	c, err := connect(context.Background(), cin, sout, &sshx.Tail{})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 200)
	for i := range 200 {
		go func() {
			if i%2 == 0 {
				errs <- c.Put(context.Background(), fmt.Sprintf("f%d", i), make([]byte, 1000), false)
			} else {
				errs <- c.Rename(context.Background(), fmt.Sprintf("f%d", i), "g")
			}
		}()
	}
	for range 200 {
		select {
		case err := <-errs:
			if err == nil {
				t.Fatal("a call to a dead helper succeeded")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a call to a dead helper hangs")
		}
	}
}

// TestLater: puts and renames sent without waiting are all carried out
// when Wait returns; the first failure is reported with the file it was
// about; a helper that goes away ends the wait instead of hanging it.
func TestLater(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	ctx := context.Background()
	if err := c.MkdirAll(ctx, "objects/ab"); err != nil {
		t.Fatal(err)
	}
	l := NewLater()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait with nothing sent: %v", err)
	}
	for i := range 1000 {
		if err := c.PutLater(ctx, fmt.Sprintf("objects/ab/.tmp-%d", i), []byte(strconv.Itoa(i)), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait after 1000 puts: %v", err)
	}
	l = NewLater()
	for i := range 1000 {
		if err := c.RenameLater(ctx, fmt.Sprintf("objects/ab/.tmp-%d", i), fmt.Sprintf("objects/ab/%d", i), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait after 1000 renames: %v", err)
	}
	for i := range 1000 {
		b, err := os.ReadFile(filepath.Join(root, "objects", "ab", strconv.Itoa(i)))
		if err != nil || string(b) != strconv.Itoa(i) {
			t.Fatalf("objects/ab/%d: %q, %v", i, b, err)
		}
	}

	l = NewLater()
	testkit.Must(t, c.PutLater(ctx, "objects/ab/.tmp-ok", []byte("ok"), l))
	testkit.Must(t, c.PutLater(ctx, "missing/dir/.tmp-x", []byte("x"), l)) // fails in Wait, not here
	err := l.Wait(ctx)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing/dir/.tmp-x") {
		t.Fatalf("Wait after a put into a missing directory: %v, want ENOENT naming the file", err)
	}

	// The helper goes away with requests queued: Wait returns its failure.
	l = NewLater()
	_ = c.Close()
	if err := c.PutLater(ctx, "objects/ab/.tmp-late", []byte("x"), l); err == nil {
		if err := l.Wait(ctx); err == nil {
			t.Fatal("Wait after the helper closed: nil, want its failure")
		}
	}
}

// Publish writes, renames and syncs a phase's files in one request, and
// leaves nothing under a final name when one of them fails; ListMany lists
// several directories in one, each with its own error.
func TestPublishListMany(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "sets/s1"))
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	err := c.Publish(ctx, []Published{
		{Tmp: "sets/s1/.tmp-manifest.json", Name: "sets/s1/manifest.json", Data: []byte("{}")},
		{Tmp: "objects/ab/.tmp-x", Name: "objects/ab/x", Data: []byte("xx")},
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"sets/s1/manifest.json": "{}", "objects/ab/x": "xx"} {
		if got, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	err = c.Publish(ctx, []Published{
		{Tmp: "sets/s1/.tmp-manifest.json.sig", Name: "sets/s1/manifest.json.sig", Data: []byte("sig")},
		{Tmp: "missing/.tmp-y", Name: "missing/y", Data: []byte("y")},
	})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Publish into a missing directory: %v, want fs.ErrNotExist", err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "sets/s1"))
	if len(ents) != 1 || ents[0].Name() != "manifest.json" {
		t.Errorf("after a failed Publish sets/s1 holds %v, want only manifest.json", ents)
	}

	res, err := c.ListMany(ctx, []string{"objects/ab", "missing", "sets/s1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Err != nil || len(res[0].Entries) != 1 || res[0].Entries[0].Name != "x" || res[0].Entries[0].Size != 2 {
		t.Fatalf("ListMany objects/ab: %+v", res)
	}
	if !errors.Is(res[1].Err, fs.ErrNotExist) || res[1].Entries != nil {
		t.Errorf("ListMany of a missing directory: %+v, want fs.ErrNotExist", res[1])
	}
	one, err := c.List(ctx, "sets/s1")
	if err != nil || res[2].Err != nil || len(res[2].Entries) != len(one) || res[2].Entries[0] != one[0] {
		t.Errorf("ListMany sets/s1 = %+v, List = %+v (%v)", res[2], one, err)
	}
}

// PublishSteps syncs, then publishes each step in turn, making the
// directories of a step's files first; a step that fails stops the ones
// after it, and what it was writing is left under no final name.
func TestPublishSteps(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	testkit.Must(t, c.Put(ctx, "objects/ab/.tmp-x", []byte("xx"), false))
	testkit.Must(t, c.Rename(ctx, "objects/ab/.tmp-x", "objects/ab/x"))
	step := func(names ...string) []Published {
		var out []Published
		for _, n := range names {
			out = append(out, Published{Tmp: path.Join(path.Dir(n), ".tmp-"+path.Base(n)), Name: n, Data: []byte(n)})
		}
		return out
	}
	lists, err := c.PublishSteps(ctx, []string{"objects/ab"}, [][]Published{step("index-1"), step("sets/s1/manifest.json"), step("sets/s1/manifest.json.sig")}, nil)
	testkit.Must(t, err)
	if lists != nil {
		t.Errorf("PublishSteps with nothing to list: listings %+v", lists)
	}
	for _, n := range []string{"index-1", "sets/s1/manifest.json", "sets/s1/manifest.json.sig"} {
		if got, err := os.ReadFile(filepath.Join(root, n)); err != nil || string(got) != n {
			t.Errorf("%s: %q, %v", n, got, err)
		}
	}

	// Asked to, it lists directories once the steps are done, as
	// ListMany would: what the last step wrote is there, a missing
	// directory says so.
	lists, err = c.PublishSteps(ctx, nil, [][]Published{step("sets/s3/manifest.json"), step("sets/s3/manifest.json.sig")}, []string{"sets/s3", "pins", "."})
	testkit.Must(t, err)
	want, err := c.ListMany(ctx, []string{"sets/s3", "pins", "."})
	testkit.Must(t, err)
	names := func(l DirList) (out []string) {
		for _, e := range l.Entries {
			out = append(out, e.Name)
		}
		slices.Sort(out)
		return out
	}
	if len(lists) != 3 || !slices.Equal(names(lists[0]), []string{"manifest.json", "manifest.json.sig"}) ||
		!errors.Is(lists[1].Err, fs.ErrNotExist) || lists[2].Err != nil || !slices.Equal(names(lists[2]), names(want[2])) {
		t.Errorf("PublishSteps listed %+v, want %+v (sets/s3 holding both files, pins missing)", lists, want)
	}
	testkit.Must(t, os.RemoveAll(filepath.Join(root, "sets/s3")))

	// The second step cannot be written (its directory is a file): the
	// first stays published, the third is not begun.
	testkit.Must(t, os.WriteFile(filepath.Join(root, "sets/file"), nil, 0o640))
	_, err = c.PublishSteps(ctx, nil, [][]Published{step("index-2"), step("sets/file/manifest.json"), step("sets/s2/manifest.json.sig")}, []string{"."})
	if err == nil {
		t.Fatal("PublishSteps into a directory below a file: nil, want its failure")
	}
	if _, err := os.Stat(filepath.Join(root, "index-2")); err != nil {
		t.Errorf("the step before the failure: %v, want it published", err)
	}
	if _, err := os.Stat(filepath.Join(root, "sets/s2")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the step after the failure: sets/s2 %v, want it not begun", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 4 { // channel's: objects, index-1, index-2, sets
		t.Errorf("the root holds %v, want objects, index-1, index-2 and sets (no temporary file)", ents)
	}
}

// A helper that announces no optional requests (an older version) is
// still used: Publish and ListMany say ErrNotOffered, and the caller does
// without them. An older client skips the announcement like a login
// shell's chatter (it only refuses lines that begin as Hello does).
func TestOlderHelper(t *testing.T) {
	if strings.HasPrefix(opsLine, "bcp-transfer-serve ") {
		t.Fatal("an older client would refuse the announcement as another version")
	}
	_, cin := io.Pipe()
	sout, cout := io.Pipe()
	go func() { _, _ = io.WriteString(cout, "motd\n"+Hello+"\n") }()
	c, err := connect(context.Background(), cin, sout, &sshx.Tail{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Publish(context.Background(), nil); !errors.Is(err, ErrNotOffered) {
		t.Errorf("Publish to an older helper: %v, want ErrNotOffered", err)
	}
	if _, err := c.ListMany(context.Background(), []string{"."}); !errors.Is(err, ErrNotOffered) {
		t.Errorf("ListMany to an older helper: %v, want ErrNotOffered", err)
	}
	if _, err := c.PublishSteps(context.Background(), nil, nil, []string{"."}); !errors.Is(err, ErrNotOffered) {
		t.Errorf("PublishSteps to an older helper: %v, want ErrNotOffered", err)
	}
	if err := c.RenameStampLater(context.Background(), "a", "b", NewLater(), nil); !errors.Is(err, ErrNotOffered) {
		t.Errorf("RenameStampLater to an older helper: %v, want ErrNotOffered", err)
	}
}

// A stamped rename is a rename whose answer also says what the renamed
// file shows, exactly as a listing does (size and time to the
// nanosecond), also where the renames went compressed; one that fails is
// reported by Wait and stamps nothing.
func TestRenameStampLater(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	l := NewLater()
	const n = 600 // more than one batch
	for i := range n {
		testkit.Must(t, c.PutLater(ctx, fmt.Sprintf("objects/ab/.tmp-%d", i), bytes.Repeat([]byte("x"), i), l))
	}
	testkit.Must(t, l.Wait(ctx))
	var mu sync.Mutex
	got := map[string]Entry{}
	l = NewLater()
	for i := range n {
		name := fmt.Sprintf("objects/ab/%d", i)
		testkit.Must(t, c.RenameStampLater(ctx, fmt.Sprintf("objects/ab/.tmp-%d", i), name, l, func(e Entry) {
			mu.Lock()
			got[name] = e
			mu.Unlock()
		}))
	}
	testkit.Must(t, l.Wait(ctx))
	listed, err := c.List(ctx, "objects/ab")
	testkit.Must(t, err)
	if len(got) != n || len(listed) != n {
		t.Fatalf("%d stamps and %d files listed, want %d", len(got), len(listed), n)
	}
	for _, e := range listed {
		st := got["objects/ab/"+e.Name]
		if st.Size != e.Size || !st.ModTime.Equal(e.ModTime) {
			t.Errorf("%s: stamped %d bytes at %v, listed %d at %v", e.Name, st.Size, st.ModTime, e.Size, e.ModTime)
		}
	}
	if raw, sent := c.Compression(); sent >= raw {
		t.Logf("renames not compressed (%d of %d bytes)", sent, raw)
	}

	l = NewLater()
	stamps := 0
	testkit.Must(t, c.RenameStampLater(ctx, "objects/ab/.tmp-missing", "objects/ab/y", l, func(Entry) { stamps++ }))
	if err := l.Wait(ctx); !errors.Is(err, fs.ErrNotExist) || stamps != 0 {
		t.Errorf("stamped rename of a missing file: %v with %d stamps, want ENOENT and none", err, stamps)
	}
}

// A batch kept by the helper (Later.Keep) is renamed by reference: every
// file of it, and only those, under its name without the prefix, with
// stamps as a listing shows them and no name sent again; a file whose
// name lacks the prefix fails the request before anything is renamed; an
// older helper keeps nothing and the caller renames by name.
func TestRenameKept(t *testing.T) {
	root := t.TempDir()
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	testkit.Must(t, c.MkdirAll(ctx, "objects/cd"))
	other := NewLater() // put beside the batch, not kept: not renamed
	testkit.Must(t, c.PutLater(ctx, "objects/ab/.tmp-other", []byte("o"), other))
	l := NewLater()
	l.Keep()
	const n = 1500 // more than one put request
	for i := range n {
		name := fmt.Sprintf("objects/%s/.tmp-%d", []string{"ab", "cd"}[i%2], i)
		testkit.Must(t, c.PutLater(ctx, name, bytes.Repeat([]byte("x"), i), l))
	}
	testkit.Must(t, l.Wait(ctx))
	testkit.Must(t, other.Wait(ctx))
	if k := l.Kept(); k != n {
		t.Fatalf("Kept: %d, want %d", k, n)
	}
	var mu sync.Mutex
	got := map[string]Entry{}
	err := l.RenameKept(ctx, []string{"objects/ab", "objects/cd"}, ".tmp-", func(tmp string, e Entry, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			t.Errorf("%s: renamed without a stamp", tmp)
		}
		got[tmp] = e
	})
	testkit.Must(t, err)
	if len(got) != n || l.Kept() != 0 {
		t.Fatalf("%d files renamed, %d kept after, want %d and 0", len(got), l.Kept(), n)
	}
	for _, dir := range []string{"objects/ab", "objects/cd"} {
		listed, err := c.List(ctx, dir)
		testkit.Must(t, err)
		for _, e := range listed {
			if e.Name == ".tmp-other" {
				continue
			}
			st, ok := got[dir+"/.tmp-"+e.Name]
			if !ok || st.Size != e.Size || !st.ModTime.Equal(e.ModTime) {
				t.Errorf("%s/%s: listed %d bytes at %v, stamped %+v (%v)", dir, e.Name, e.Size, e.ModTime, st, ok)
			}
		}
		if len(listed) != n/2+map[string]int{"objects/ab": 1}[dir] {
			t.Errorf("%s: %d entries, want the batch's and the other file", dir, len(listed))
		}
	}

	l = NewLater()
	l.Keep()
	testkit.Must(t, c.PutLater(ctx, "objects/ab/.tmp-y", []byte("y"), l))
	testkit.Must(t, c.PutLater(ctx, "objects/ab/z", []byte("z"), l))
	testkit.Must(t, l.Wait(ctx))
	if err := l.RenameKept(ctx, nil, ".tmp-", func(string, Entry, bool) { t.Error("stamped a rename that failed") }); err == nil || !strings.Contains(err.Error(), `objects/ab/z: its name does not begin with ".tmp-"`) {
		t.Errorf("a kept name without the prefix: %v, want the name's error", err)
	}
	if _, err := os.Stat(filepath.Join(root, "objects/ab/y")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a batch with a name without the prefix: y renamed (%v)", err)
	}

	old := pairOffering(t, t.TempDir(), []byte{opRenameStat})
	testkit.Must(t, old.MkdirAll(ctx, "d"))
	l = NewLater()
	l.Keep()
	testkit.Must(t, old.PutLater(ctx, "d/.tmp-a", []byte("a"), l))
	testkit.Must(t, l.Wait(ctx))
	if l.Kept() != 0 {
		t.Errorf("an older helper keeps %d files, want 0", l.Kept())
	}
	testkit.Must(t, l.RenameKept(ctx, nil, ".tmp-", func(string, Entry, bool) { t.Error("renamed by an older helper") }))
}

// jsonLike is n bytes of text that compresses the way documents and
// Elasticsearch's JSON do (several times), different for each seed.
func jsonLike(seed, n int) []byte {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	words := []string{"title", "body", "squirro", "item", "score", "language", "en", "created_at", "keywords", "true", "null"}
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"%s":"%s %s","n":%d},`+"\n", rng.IntN(1e6), words[rng.IntN(len(words))],
			words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000))
	}
	return b.Bytes()[:n]
}

// randomBytes is n bytes that do not compress.
func randomBytes(seed, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

// The stream is compressed where the helper offers it and the data
// compresses, and goes as it is where the helper does not offer it (an
// older one), where the client turns it off, and for data that does not
// compress; in every case the files written have exactly the bytes given
// (their SHA-256 is that of the uncompressed data).
func TestCompressedStream(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ops        []byte
		off        bool
		random     bool
		compressed bool
		split      bool // only the batches' heads compressed (opPutSplit)
	}{
		{"offered", optionalOps, false, false, true, false},
		{"older helper", []byte{opPublish, opListMany}, false, false, false, false},
		{"turned off", optionalOps, true, false, false, false},
		{"incompressible", optionalOps, false, true, false, true},
		{"incompressible, older helper", []byte{opPublish, opListMany, opZstd}, false, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "channel")
			c := pairOffering(t, root, tc.ops)
			c.SetCompress(!tc.off)
			ctx := context.Background()
			testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
			data := jsonLike
			if tc.random {
				data = randomBytes
			}
			want := map[string][]byte{}
			l := NewLater()
			for i := range 200 {
				name := fmt.Sprintf("objects/ab/small%03d", i)
				want[name] = data(i, 100+i*41)
				testkit.Must(t, c.PutLater(ctx, name, want[name], l))
			}
			testkit.Must(t, l.Wait(ctx))
			want["objects/ab/big"] = data(1000, 5<<20+123) // streamed
			stream(t, c.Create("objects/ab/big"), want["objects/ab/big"], 100<<10)
			want["objects/ab/pub"] = data(2000, 50<<10)
			testkit.Must(t, c.Publish(ctx, []Published{{Tmp: "objects/ab/.tmp-pub", Name: "objects/ab/pub", Data: want["objects/ab/pub"]}}))
			for name, w := range want {
				got, err := os.ReadFile(filepath.Join(root, name))
				if err != nil || sha256.Sum256(got) != sha256.Sum256(w) {
					t.Fatalf("%s: %d bytes (%v), want %d bytes with the same SHA-256", name, len(got), err, len(w))
				}
			}
			raw, sent := c.Compression()
			if raw < 5<<20 {
				t.Fatalf("Compression counted %d bytes of file data, want above 5 MiB", raw)
			}
			switch {
			case tc.compressed && sent > raw/2,
				tc.split && (sent >= raw || sent < raw-raw/20),
				!tc.compressed && !tc.split && sent != raw:
				t.Errorf("%d bytes of file data took %d on the stream", raw, sent)
			}
		})
	}
}

// A compressed request that does not decompress fails with an error
// saying so, whether it is answered (a batch of files) or not (a stream's
// chunk, reported by the stream's close); the helper goes on.
func TestCorruptCompressedFrame(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "d"))
	corrupt := func(op byte, payload []byte) []byte {
		z := binary.BigEndian.AppendUint32([]byte{op}, uint32(len(payload)))
		z = zencoder().EncodeAll(payload, z)
		for i := 5 + 8; i < len(z); i += 7 {
			z[i] ^= 0x5a
		}
		return z
	}
	put := append(binary.BigEndian.AppendUint16(nil, 1), encodePut("d/x", jsonLike(1, 64<<10), false, 0)...)
	_, err := c.call(ctx, opZstd, 0, corrupt(opPutMany, put))
	if err == nil || !strings.Contains(err.Error(), "corrupt compressed request") {
		t.Fatalf("a corrupt compressed batch: %v, want an error saying so", err)
	}
	if _, err := os.Stat(filepath.Join(root, "d/x")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file of the corrupt batch was written (%v)", err)
	}

	id := c.next.Add(1)
	testkit.Must(t, c.send(opOpen, id, appendString(nil, "d/.tmp-y")))
	testkit.Must(t, c.send(opZstd, id, corrupt(opWrite, jsonLike(2, 128<<10))))
	_, err = c.call(ctx, opClose, id)
	if err == nil || !strings.Contains(err.Error(), "corrupt compressed request") || !strings.Contains(err.Error(), "d/.tmp-y") {
		t.Fatalf("close of a stream with a corrupt compressed chunk: %v, want an error naming it", err)
	}
	testkit.Must(t, c.Put(ctx, "d/z", []byte("after"), false))
}

// A batch of files whose data does not compress goes with its heads
// (temporary names of 64 hex digits, sizes) compressed apart (opPutSplit):
// every file written as sent, the heads at less than half their size on
// the stream. A corrupt frame of heads fails the batch, nothing of it
// written, and the helper goes on.
func TestSplitHeads(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	want := map[string][]byte{}
	l := NewLater()
	for i := range 300 {
		name := fmt.Sprintf("objects/ab/.bcp-tmp-transfer-%x", sha256.Sum256([]byte(strconv.Itoa(i))))
		want[name] = randomBytes(i, 4096)
		testkit.Must(t, c.PutLater(ctx, name, want[name], l))
	}
	testkit.Must(t, l.Wait(ctx))
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || !bytes.Equal(got, w) {
			t.Fatalf("%s: %d bytes (%v), want the %d sent", name, len(got), err, len(w))
		}
	}
	raw, sent := c.Compression()
	if heads := raw - 300*4096; sent-300*4096 > heads/2 {
		t.Errorf("heads of %d bytes took %d on the stream", heads, sent-300*4096)
	}

	parts := [][]byte{binary.BigEndian.AppendUint16(nil, splitMin+1)}
	for i := range splitMin + 1 {
		parts = append(parts, encodePut(fmt.Sprintf("objects/ab/x%d", i), randomBytes(i, 100), false, 0))
	}
	split, _, ok := splitPuts(parts)
	if !ok {
		t.Fatal("splitPuts refused a batch of files")
	}
	split[0][len(split[0])-3] ^= 0x5a
	_, err := c.call(ctx, opPutSplit, 0, split...)
	if err == nil || !strings.Contains(err.Error(), "corrupt heads") {
		t.Fatalf("a split batch with corrupt heads: %v, want an error saying so", err)
	}
	if _, err := os.Stat(filepath.Join(root, "objects/ab/x0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file of the corrupt batch was written (%v)", err)
	}
	testkit.Must(t, c.Put(ctx, "objects/ab/after", []byte("after"), false))
}

// A batch of renames (a temporary and a final name of 64 hex digits for
// each file) goes compressed to a third or less, and every file is renamed.
func TestCompressedRenames(t *testing.T) {
	root := filepath.Join(t.TempDir(), "channel")
	c := pair(t, root)
	ctx := context.Background()
	testkit.Must(t, c.MkdirAll(ctx, "objects/ab"))
	var names []string
	l := NewLater()
	for i := range 300 {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		name := fmt.Sprintf("objects/ab/%x", sum)
		names = append(names, name)
		testkit.Must(t, c.PutLater(ctx, "objects/ab/.tmp-"+name[len("objects/ab/"):], randomBytes(i, 100), l))
	}
	testkit.Must(t, l.Wait(ctx))
	raw0, sent0 := c.Compression()
	for _, n := range names {
		testkit.Must(t, c.RenameLater(ctx, "objects/ab/.tmp-"+n[len("objects/ab/"):], n, l))
	}
	testkit.Must(t, l.Wait(ctx))
	raw, sent := c.Compression()
	if raw-raw0 < 300*140 || sent-sent0 > (raw-raw0)/3 {
		t.Errorf("renames of %d bytes took %d on the stream", raw-raw0, sent-sent0)
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
}
