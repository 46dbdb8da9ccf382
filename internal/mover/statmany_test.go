package mover

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// The helper's requests this test reads from what the helpers were sent
// (remote/proto.go; fixed by the protocol's version).
const (
	wireList         = 10
	wireDigest       = 11
	wireListMany     = 23
	wireStatMany     = 25
	wireZstd         = 24
	wireRenameStat   = 26
	wirePublishSteps = 27
	wirePutSplit     = 28
	wireRenameKept   = 29
	wirePublishList  = 30
)

// helperRequests is what the helpers of one connection to the
// destination were sent: each helper's input is kept (tee) and read back
// frame by frame.
type helperRequests struct {
	objLists    int // objects/ directories listed (opList, opListMany)
	objDigests  int // objects/ directories fingerprinted (opDigest)
	statMany    int // opStatMany requests
	looked      int // directories looked in by them
	lookedObj   int // objects/ directories among them
	renameStats int // opRenameStat requests
	renameKept  int // opRenameKept requests
	steps       int // opPublishSteps and opPublishList requests
	stepsListed int // opPublishList requests among them
}

// recordingHelper returns the helper command for SFTPOptions.Helper that
// keeps each helper's input in dir and announces the optional requests
// as filter has them: "" all; as the helper before each was added (the
// newest are announced last), "no-publishlist" all but opPublishList,
// "no-renamekept" without opRenameKept either,
// "no-steps" without opPublishSteps either, "no-renamestat" without
// opRenameStat either, "no-statmany" without opStatMany either; "none"
// none (the oldest of version 3).
func recordingHelper(t *testing.T, dir, filter string) string {
	t.Helper()
	newer := map[string]string{ // the announcement's end left out
		"no-publishlist": fmt.Sprintf(" %d", wirePublishList),
		"no-renamekept":  fmt.Sprintf(" %d %d", wireRenameKept, wirePublishList),
		"no-steps":       fmt.Sprintf(" %d %d %d %d", wirePublishSteps, wirePutSplit, wireRenameKept, wirePublishList),
		"no-renamestat":  fmt.Sprintf(" %d %d %d %d %d", wireRenameStat, wirePublishSteps, wirePutSplit, wireRenameKept, wirePublishList),
		"no-statmany":    fmt.Sprintf(" %d %d %d %d %d %d", wireStatMany, wireRenameStat, wirePublishSteps, wirePutSplit, wireRenameKept, wirePublishList),
	}
	announce := "" // the line announcing them, the first the helper prints
	switch suffix, ok := newer[filter]; {
	case ok:
		announce = fmt.Sprintf(`IFS= read -r l; printf '%%s\n' "${l%%%s}"; `, suffix)
	case filter == "none":
		announce = `IFS= read -r l; `
	}
	return fmt.Sprintf(`f() { %s "$@" | { %sexec cat; }; }; tee %s/in.$$ | f`, sshx.Quote(helperBin(t)), announce, sshx.Quote(dir))
}

// readRequests reads the requests kept by recordingHelper in dir.
func readRequests(t *testing.T, dir string) helperRequests {
	t.Helper()
	var n helperRequests
	ins, err := filepath.Glob(filepath.Join(dir, "in.*"))
	testkit.Must(t, err)
	if len(ins) == 0 {
		t.Fatal("no helper input kept")
	}
	for _, in := range ins {
		data, err := os.ReadFile(in)
		testkit.Must(t, err)
		for len(data) > 0 {
			if len(data) < 9 || len(data) < 9+int(binary.BigEndian.Uint32(data[5:9])) {
				t.Fatalf("%s: a frame cut short", in)
			}
			op, size := data[0], int(binary.BigEndian.Uint32(data[5:9]))
			n.add(t, op, data[9:9+size])
			data = data[9+size:]
		}
	}
	return n
}

func (n *helperRequests) add(t *testing.T, op byte, p []byte) {
	str := func() string {
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			t.Fatalf("request %d: a name cut short", op)
		}
		s := string(p[2 : 2+binary.BigEndian.Uint16(p)])
		p = p[2+len(s):]
		return s
	}
	u16 := func() int {
		if len(p) < 2 {
			t.Fatalf("request %d cut short", op)
		}
		v := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		return v
	}
	isObj := func(dir string) bool { return strings.HasPrefix(dir, manifest.ObjectsDirName+"/") }
	switch op {
	case wireList:
		if isObj(str()) {
			n.objLists++
		}
	case wireListMany:
		for range u16() {
			if isObj(str()) {
				n.objLists++
			}
		}
	case wireDigest:
		for range u16() {
			if isObj(str()) {
				n.objDigests++
			}
		}
	case wireRenameStat:
		n.renameStats++
	case wireRenameKept:
		n.renameKept++
	case wirePublishSteps:
		n.steps++
	case wirePublishList:
		n.steps++
		n.stepsListed++
	case wireZstd: // the inner request's op first
		switch {
		case len(p) > 0 && p[0] == wireRenameStat:
			n.renameStats++
		case len(p) > 0 && p[0] == wireRenameKept:
			n.renameKept++
		case len(p) > 0 && p[0] == wirePublishSteps:
			n.steps++
		case len(p) > 0 && p[0] == wirePublishList:
			n.steps++
			n.stepsListed++
		}
	case wireStatMany:
		n.statMany++
		for range u16() {
			dir := str()
			for range u16() {
				str()
			}
			n.looked++
			if isObj(dir) {
				n.lookedObj++
			}
		}
	}
}

// dialRecorded connects to dir through recordingHelper's helpers; the
// returned func closes the connection (the helpers end) and reads back
// what they were sent.
func dialRecorded(t *testing.T, dir, filter string) (*SFTP, func() helperRequests) {
	t.Helper()
	logs := t.TempDir()
	f, err := DialSFTP(context.Background(), testenv.SSHD(t).Config(), dir, SFTPOptions{Conns: 2, Sessions: 2,
		Helper: recordingHelper(t, logs, filter), Notice: func(msg string) { t.Errorf("helper not used: %s", msg) }})
	testkit.Must(t, err)
	var once sync.Once
	closeF := func() { once.Do(func() { _ = f.Close() }) }
	t.Cleanup(closeF)
	if f.remote(context.Background()) == nil {
		t.Fatal("the helper did not start")
	}
	return f, func() helperRequests { closeF(); return readRequests(t, logs) }
}

// stamped is the files of the destination dir that c has a stamp of,
// each checked against what the destination shows.
func stamped(t *testing.T, c *Checked, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, err := filepath.Rel(dir, p)
		testkit.Must(t, err)
		st, ok, err := c.lookup(filepath.ToSlash(name))
		if err != nil || !ok {
			return err
		}
		fi, err := d.Info()
		testkit.Must(t, err)
		if st.size != fi.Size() || st.mtime != fi.ModTime().UnixNano() {
			t.Errorf("%s: stamp %+v, the destination shows %d bytes at %v", name, st, fi.Size(), fi.ModTime())
		}
		n++
		return nil
	})
	testkit.Must(t, err)
	return n
}

// eachHelper runs fn as a subtest for each recordingHelper filter, named
// by it ("all" for "").
func eachHelper(t *testing.T, filters []string, fn func(t *testing.T, name, filter string)) {
	for _, filter := range filters {
		name := filter
		if name == "" {
			name = "all"
		}
		t.Run(name, func(t *testing.T) { fn(t, name, filter) })
	}
}

// spreadChannel is a channel at dir with one set of spread("1"), its
// files of a fixed time.
func spreadChannel(t *testing.T, dir string) (*movertest.Channel, string) {
	c := movertest.New(t, dir)
	c.MTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	return c, c.Publish(spread("1"))
}

// A push beside the recorded set through the helper looks up the few
// changed files of each objects/<aa> in a few requests for all of them,
// before and after the copy, instead of listing the directories; what it
// plans, copies and stamps is what a push through an older helper (which
// lists them) gets.
func TestPushLooksUpThroughHelper(t *testing.T) {
	type outcome struct {
		res     Result
		stamped int
	}
	var outcomes []outcome
	looked := map[string]int{} // objects/ directories looked in, by filter
	eachHelper(t, []string{"", "no-renamekept", "no-renamestat", "no-statmany", "none"}, func(t *testing.T, name, filter string) {
		srcDir, dstDir := t.TempDir(), t.TempDir()
		c, _ := spreadChannel(t, srcDir)
		o := opts(c, NewLocal(srcDir), dialHelper(t, testenv.SSHD(t), dstDir))
		o.FullCompareEvery = 24 * time.Hour
		cache := filepath.Join(t.TempDir(), "checked")
		o.Checked = mustOpenChecked(t, cache)
		if res := run(t, o); res.Copied != res.Files {
			t.Fatalf("first push: %+v, want every file copied", res)
		}
		testkit.Must(t, o.Checked.Save())

		// 13 files in 2 of 20 directories change.
		changed := []string{"d07/f5"}
		for f := range 10 {
			changed = append(changed, fmt.Sprintf("d03/f%d", f))
		}
		id2 := c.Publish(spread("2", append(changed, "d03/f1", "d03/f2")...))
		dst, requests := dialRecorded(t, dstDir, filter)
		o.Dst = dst
		o.Checked = mustOpenChecked(t, cache)
		res := run(t, o)
		if res.Set != id2 || res.SkippedDirs != 18 || res.Copied != 20 {
			t.Fatalf("second push: %+v, want %s with 18 directories skipped and 20 files copied", res, id2)
		}
		verifyDst(t, c, dstDir, id2)
		n := requests()
		t.Logf("%s: %+v", name, n)
		looked[filter] = n.lookedObj
		switch filter {
		case "", "no-renamekept":
			// The changed objects' objects/<aa> (and the lists'),
			// looked up before the copy (a request for the buckets'
			// files and one for the held files) and after it only
			// where a file was checked, not copied: the copied ones'
			// stamps came with their renames (by reference where the
			// helper kept the batch).
			if n.objLists != 0 {
				t.Errorf("%d objects/ directories listed, want 0 (looked up)", n.objLists)
			}
			if n.lookedObj < 10 || n.statMany > 2*2 || n.renameStats+n.renameKept == 0 {
				t.Errorf("%d look-up requests for %d directories (%d objects/), %d+%d stamped renames; want a few for at least 10, and stamped renames", n.statMany, n.looked, n.lookedObj, n.renameStats, n.renameKept)
			}
			if kept := filter == ""; (n.renameKept > 0) != kept {
				t.Errorf("%d batches renamed by reference, want some: %v", n.renameKept, kept)
			}
		case "no-renamestat":
			// Looked up before and after the copy, the copied
			// files' directories too.
			if n.objLists != 0 || n.lookedObj < 2*10 || n.statMany > 2*2 || n.renameStats != 0 {
				t.Errorf("%+v: want objects/ directories looked up (at least 2x10), not listed, no stamped renames", n)
			}
			if looked[""] >= n.lookedObj {
				t.Errorf("%d objects/ directories looked in with stamped renames, %d without: want fewer", looked[""], n.lookedObj)
			}
		default:
			if n.statMany != 0 || n.objLists == 0 {
				t.Errorf("older helper: %d look-up requests and %d objects/ directories listed, want none and some", n.statMany, n.objLists)
			}
		}
		outcomes = append(outcomes, outcome{*res, stamped(t, o.Checked, dstDir)})
	})
	if len(outcomes) == 0 {
		return // each case skipped (no sshd) or failed
	}
	for _, oc := range outcomes[1:] {
		a, b := outcomes[0], oc
		a.res.Set, b.res.Set = "", "" // the sets' times differ
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("looked up: %+v; listed: %+v", outcomes[0], oc)
		}
	}
}

// A first push through the helper neither looks in nor lists a
// destination's object directory: the listing of objects/ fetched at the
// start shows they are all missing, and each file's stamp comes back with
// its rename (the directories' digests for the record in a few requests);
// the last phases go in one request with the data's last SyncFS. A large
// file among the small ones (copied behind the batches) is stamped with
// its rename too. What it copies, stamps and records is what a push
// through an older helper gets, and the next push finds the set unchanged
// by those digests alone.
func TestFirstPushThroughHelper(t *testing.T) {
	type outcome struct {
		res, again Result
		stamped    int
	}
	var outcomes []outcome
	eachHelper(t, []string{"", "no-publishlist", "no-renamekept", "no-steps", "no-renamestat", "none"}, func(t *testing.T, name, filter string) {
		srcDir, dstDir := t.TempDir(), t.TempDir()
		c := movertest.New(t, srcDir)
		c.MTime = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		sp := spread("1")
		for i := range 2 {
			p := fmt.Sprintf("d%02d/large", i*7)
			sp.Tree[p] = movertest.Content(p, smallFile+1+i)
		}
		id := c.Publish(sp)
		dst, requests := dialRecorded(t, dstDir, filter)
		o := opts(c, NewLocal(srcDir), dst)
		cache := filepath.Join(t.TempDir(), "checked")
		o.Checked = mustOpenChecked(t, cache)
		res := run(t, o)
		if res.Set != id || res.Copied != res.Files || res.Files < 200 {
			t.Fatalf("first push: %+v, want every file of %s copied", res, id)
		}
		testkit.Must(t, o.Checked.Save())
		verifyDst(t, c, dstDir, id)
		n := requests()
		t.Logf("%s: %+v", name, n)
		switch filter {
		case "", "no-publishlist", "no-renamekept", "no-steps":
			if n.objLists != 0 || n.lookedObj != 0 || n.renameStats+n.renameKept == 0 || n.objDigests < 20 {
				t.Errorf("%+v: want no objects/ directory listed or looked in, stamped renames and the digests of at least 20", n)
			}
			// The batches renamed by reference where the helper keeps
			// them: one request per batch (a batch of every file here)
			// and helper that was sent some of its files; the two
			// large files by name, each stamped (a request or two).
			if kept := filter == "" || filter == "no-publishlist"; kept && (n.renameKept == 0 || n.renameKept > 2 || n.renameStats > 2) || !kept && n.renameKept != 0 {
				t.Errorf("%d batches renamed by reference and %d stamped renames by name, want by reference: %v", n.renameKept, n.renameStats, kept)
			}
			// The channel's identity and epoch records before the
			// copy in one request, the last phases (index, manifest,
			// signature) and the data's last SyncFS in another, which
			// also lists the held files' directories and pins/.
			if want := map[string]int{"": 2, "no-publishlist": 2, "no-renamekept": 2, "no-steps": 0}[filter]; n.steps != want {
				t.Errorf("%d requests of steps in one, want %d", n.steps, want)
			}
			if want := map[string]int{"": 1}[filter]; n.stepsListed != want {
				t.Errorf("%d requests of steps that list after them, want %d", n.stepsListed, want)
			}
		default:
			if n.objLists < 20 || n.renameStats != 0 {
				t.Errorf("older helper: %+v, want the objects/ directories listed after the copy and no stamped renames", n)
			}
		}
		st := stamped(t, o.Checked, dstDir)
		if int64(st) != res.Files {
			t.Errorf("%d files stamped, want %d", st, res.Files)
		}

		o.Dst = dialHelper(t, testenv.SSHD(t), dstDir)
		o.Checked = mustOpenChecked(t, cache)
		again := run(t, o)
		if again.Copied != 0 || again.Present != res.Files {
			t.Errorf("second push: %+v, want the set unchanged, every file present", again)
		}
		res.Set, again.Set = "", "" // the sets' times differ
		outcomes = append(outcomes, outcome{*res, *again, st})
	})
	for _, oc := range outcomes[1:] {
		if fmt.Sprint(outcomes[0]) != fmt.Sprint(oc) {
			t.Errorf("stamped as renamed: %+v; listed: %+v", outcomes[0], oc)
		}
	}
}

// A push without a verified-file cache to a destination that holds an
// older set plans its buckets while it connects as if the destination
// lacked them (planEarly); the destination's listings show it does not,
// and the buckets are planned again against what is there: only the
// changed files are copied, the rest found present (hashed, not copied).
func TestEarlyPlanOfAFilledDestination(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c, _ := spreadChannel(t, srcDir)
	o := opts(c, NewLocal(srcDir), dialHelper(t, testenv.SSHD(t), dstDir))
	o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "checked"))
	if res := run(t, o); res.Copied != res.Files {
		t.Fatalf("first push: %+v, want every file copied", res)
	}
	changed := []string{"d07/f5", "d03/f1", "d03/f2"}
	id2 := c.Publish(spread("2", changed...))
	dst, requests := dialRecorded(t, dstDir, "")
	o.Dst = dst
	o.Checked = mustOpenChecked(t, filepath.Join(t.TempDir(), "fresh"))
	taken := earlyTaken.Load()
	res := run(t, o)
	if earlyTaken.Load() != taken {
		t.Error("the plan made while connecting was taken, the destination holding an older set")
	}
	verifyDst(t, c, dstDir, id2)
	// The changed objects, the lists of the changed directories and of
	// the tree's root, and the set's own files (manifest, signature).
	if res.Set != id2 || res.Copied == 0 || res.Copied > 12 || res.Present+res.Copied != res.Files {
		t.Fatalf("second push, no cache: %+v, want %s with a few files copied and the rest present", res, id2)
	}
	if n := requests(); n.lookedObj+n.objLists < 20 {
		t.Errorf("%+v: want the 20 objects/ directories looked in or listed", n)
	}
}

// The helper's look-up, over SSH: a missing directory, a directory below
// a file and a path outside the root are each their own answer, not the
// request's failure.
func TestHelperStatMany(t *testing.T) {
	dir := t.TempDir()
	testkit.Must(t, os.MkdirAll(filepath.Join(dir, "objects/ab"), 0o750))
	testkit.Must(t, os.WriteFile(filepath.Join(dir, "objects/ab/x"), []byte("xx"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(dir, "objects/cd"), []byte("file"), 0o640))
	f := dialHelper(t, testenv.SSHD(t), dir)
	res, err := f.StatMany(context.Background(), []remote.DirNames{
		{Dir: "objects/ab", Names: []string{"x", "y"}},
		{Dir: "objects/ef", Names: []string{"x"}},
		{Dir: "objects/cd/ef", Names: []string{"x"}},
		{Dir: "../" + filepath.Base(dir), Names: []string{"objects"}},
	})
	testkit.Must(t, err)
	if len(res) != 4 || res[0].Err != nil || len(res[0].Entries) != 1 || res[0].Entries[0].Name != "x" || res[0].Entries[0].Size != 2 {
		t.Fatalf("objects/ab: %+v", res)
	}
	if !errors.Is(res[1].Err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v, want fs.ErrNotExist", res[1].Err)
	}
	if !errors.Is(res[2].Err, syscall.ENOTDIR) {
		t.Errorf("below a file: %v, want ENOTDIR", res[2].Err)
	}
	if res[3].Err == nil || res[3].Entries != nil {
		t.Errorf("outside the root: %+v, want an error", res[3])
	}
}
