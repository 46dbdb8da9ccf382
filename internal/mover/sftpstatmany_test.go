package mover

import (
	"context"
	"errors"
	"io/fs"
	"reflect"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestSFTPStatMany: without the helper, the names looked up through the
// shell are the entries an SFTP listing of their directory shows (sizes,
// times in whole seconds, kinds, a symbolic link not followed), whatever
// the names hold; a name not there is left out, a missing directory and
// one that is a file say so, a name of more than one component fails its
// directory. Nothing in a name is run. Where find cannot be run the answer
// is remote.ErrNotOffered.
func TestSFTPStatMany(t *testing.T) {
	s := testenv.SSHD(t)
	root, dirs := oddDirs(t)
	ctx := context.Background()
	f := dialSFTP(t, s, root)
	var ask []remote.DirNames
	for _, d := range dirs {
		ask = append(ask, remote.DirNames{Dir: d, Names: []string{"plain", "new\nline", "$(touch pwned)", "-rf",
			"quote'd", ".hidden", "sub dir", "link", "not there", "`touch pwned2`"}})
	}
	ask = append(ask,
		remote.DirNames{Dir: "missing", Names: []string{"plain"}},
		remote.DirNames{Dir: "objects/ab/plain", Names: []string{"x"}},
		remote.DirNames{Dir: "objects/ab", Names: []string{"a/b"}},
		remote.DirNames{Dir: "objects/ab", Names: nil})
	got, err := f.viaSFTP.StatMany(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range ask[:len(dirs)] {
		ents, err := f.viaSFTP.ReadDir(ctx, d.Dir)
		if err != nil {
			t.Fatal(err)
		}
		var want []remote.Entry
		for _, e := range ents {
			for _, n := range d.Names {
				if e.Name == n {
					want = append(want, e)
				}
			}
		}
		sortEntries(want)
		sortEntries(got[i].Entries)
		if got[i].Err != nil || !reflect.DeepEqual(got[i].Entries, want) {
			t.Errorf("%q: looked up %v (%v)\nwant %v", d.Dir, got[i].Entries, got[i].Err, want)
		}
	}
	n := len(dirs)
	if !errors.Is(got[n].Err, fs.ErrNotExist) {
		t.Errorf("a missing directory: %v", got[n].Err)
	}
	if !errors.Is(got[n+1].Err, errNotDir) {
		t.Errorf("a file looked in: %v", got[n+1].Err)
	}
	if err := got[n+2].Err; err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a name of two components: %v", err)
	}
	if got[n+3].Err != nil || len(got[n+3].Entries) != 0 {
		t.Errorf("no names: %v %v", got[n+3].Entries, got[n+3].Err)
	}
	notRun(t, root)

	g := dialSFTP(t, s, root)
	g.viaSFTP.findCmd = "/nonexistent/find"
	for range 2 {
		if _, err := g.viaSFTP.StatMany(ctx, ask[:2]); !errors.Is(err, remote.ErrNotOffered) {
			t.Fatalf("no find: %v, want remote.ErrNotOffered", err)
		}
	}
}
