package mover

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

// DirDigests fingerprints dirs without the helper: one find(1) of all of
// them through the shell kept for sync -f prints each entry's name, size,
// time and kind (findDirs), and remote.Digest is computed here from what
// an SFTP listing of the same directory shows (times in whole seconds, as
// SFTP's attributes carry them), so a digest recorded from the listings
// after a copy and one taken here on the next run are equal exactly when
// the listings are. One command instead of a listing per directory
// (opendir, readdirs, close: a few round trips each, 262 of them for 5000
// files).
//
// Where the account cannot run commands, or the server's find lacks GNU's
// -printf, it returns an error wrapping ErrNoDigest (and does so for the
// rest of the run without asking again): the mover then lists. A missing
// directory is an error.
func (f *sftpFS) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	sums := make([][32]byte, len(dirs))
	errs, err := f.findDirs(ctx, dirs, func(i []int, ents []remote.Entry) {
		sum := remote.Digest(ents)
		for _, j := range i {
			sums[j] = sum
		}
	})
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		return nil, err
	}
	return sums, nil
}

// ReadDirs lists dirs without the helper: one find through the shell for
// all of them (findDirs), instead of a listing each (a few round trips
// each: 256 of them took 3.4 s at 50 ms, 32 at a time). A missing
// directory's Err wraps fs.ErrNotExist. Where find cannot be run (no
// shell, no GNU find, no base64), or it fails, each is listed over SFTP
// (readDirsSFTP).
func (f *sftpFS) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	out := make([]remote.DirList, len(dirs))
	errs, err := f.findDirs(ctx, dirs, func(i []int, ents []remote.Entry) {
		for _, j := range i {
			out[j].Entries = slices.Clone(ents)
		}
	})
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return f.readDirsSFTP(ctx, dirs)
	}
	for i, e := range errs {
		out[i].Err = e
	}
	return out, nil
}

// findDirs runs one find(1) of dirs through the shell kept for sync -f
// and hands each directory's entries, as an SFTP listing shows them, to
// dir with the indexes in dirs it stands for; it returns each
// directory's own failure (missing: wrapping fs.ErrNotExist; not a
// directory). A find that cannot be run returns an error wrapping
// ErrNoDigest, and so does every later call without asking again.
//
// Names come back NUL-separated (any byte but NUL and '/' is a name's),
// base64-coded so that the shell's line protocol carries them; paths go
// out quoted, and only the shell's own [ -e ] decides which are missing
// (find is given the others).
func (f *sftpFS) findDirs(ctx context.Context, dirs []string, dir func(i []int, ents []remote.Entry)) ([]error, error) {
	if f.findState.Load() == syncUnavailable {
		return nil, fmt.Errorf("%s: no helper, no find: %w", f.s, ErrNoDigest)
	}
	at := make(map[string][]int, len(dirs)) // argument -> indexes in dirs
	var cmd strings.Builder
	cmd.WriteString("{ set --; for d in")
	for i, d := range dirs {
		p := shellPath(f.s.path(d)) // never an option or an expression to find
		if len(at[p]) == 0 {
			cmd.WriteString(" " + sshx.Quote(p))
		}
		at[p] = append(at[p], i)
	}
	cmd.WriteString(`; do if [ -e "$d" ] || [ -L "$d" ]; then set -- "$@" "$d"; else printf '` + findMissing + `\0%s\0' "$d"; fi; done; `)
	cmd.WriteString(`[ $# -eq 0 ] || ` + f.findCmd + ` -H "$@" -maxdepth 1 -printf '%d\0%H\0%f\0%s\0%T@\0%y\0'; printf '` + findStatus + `\0%s\0' "$?"; } | base64`)

	d := &findList{at: at, dir: dir, errs: make([]error, len(dirs)), seen: make([]bool, len(dirs)), status: -1}
	f.shellMu.Lock()
	err := f.shellRun(ctx, cmd.String(), d.line)
	f.shellMu.Unlock()
	if err == nil {
		err = d.finish()
	}
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err == nil:
		if d.works {
			f.findState.Store(syncWorks)
		}
		return d.errs, nil
	case !d.works && f.findState.CompareAndSwap(syncUnknown, syncUnavailable):
		// never a directory shown: no shell, no base64, no GNU find
		return nil, fmt.Errorf("%s: no helper, and find through a shell: %w: %w", f.s, err, ErrNoDigest)
	}
	return nil, fmt.Errorf("list directories at %s with find: %w", f.s, err)
}

// findMissing marks a directory that is not there in what findDirs'
// command prints.
const findMissing = "bcp-find-missing"

// findStatus marks find's exit status in what the command prints.
const findStatus = "bcp-find-status"

// findList reads the output of findDirs' command as it arrives: the
// missing directories, then each starting point's record (depth 0) and its
// entries (depth 1), one directory after the other, so only one
// directory's listing is held.
type findList struct {
	at     map[string][]int
	dir    func(i []int, ents []remote.Entry)
	errs   []error // each directory's own failure
	seen   []bool
	works  bool // a starting point was shown: this find does what we ask
	err    error
	in     nulFields
	fields []string // of the record being read
	cur    []int    // indexes of the directory being read
	ents   []remote.Entry
	status int // find's exit status once read, else -1
}

// line takes one line of the command's output.
func (d *findList) line(s string) {
	if d.err != nil {
		return
	}
	d.err = d.in.line(s, func(field string) error {
		d.fields = append(d.fields, field)
		d.record()
		return d.err
	})
}

// nulFields reads what a command printed as NUL-terminated fields piped
// through base64(1), so that the shell's line protocol carries any byte
// but NUL (every byte of a name but '/').
type nulFields struct {
	buf []byte // what is not yet a whole field
}

// line takes one line of base64 (a whole number of 4-character groups,
// as base64(1) wraps at 76) and hands each field it completes to field,
// stopping at its first error.
func (n *nulFields) line(s string, field func(string) error) error {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("find's output: %w", err)
	}
	n.buf = append(n.buf, b...)
	for {
		i := bytes.IndexByte(n.buf, 0)
		if i < 0 {
			break
		}
		f := string(n.buf[:i])
		n.buf = n.buf[i+1:]
		if err := field(f); err != nil {
			return err
		}
	}
	n.buf = append([]byte(nil), n.buf...) // keep the tail only
	return nil
}

// ended says whether the output ended between two fields.
func (n *nulFields) ended() bool { return len(n.buf) == 0 }

// record acts on the fields read so far once they make a record.
func (d *findList) record() {
	f := d.fields
	if f[0] == findMissing {
		if len(f) < 2 {
			return
		}
		d.fields = d.fields[:0]
		for _, i := range d.at[f[1]] {
			d.seen[i] = true
			d.errs[i] = fmt.Errorf("list %s: %w", f[1], fs.ErrNotExist)
		}
		return
	}
	if f[0] == findStatus {
		if len(f) < 2 {
			return
		}
		d.status, d.err = strconv.Atoi(f[1])
		d.fields = d.fields[:0]
		return
	}
	if len(f) < 6 {
		return
	}
	d.fields = d.fields[:0]
	depth, start, name, size, mtime, kind := f[0], f[1], f[2], f[3], f[4], f[5]
	switch depth {
	case "0":
		d.flush()
		d.cur = d.at[start]
		if len(d.cur) == 0 {
			d.err = fmt.Errorf("find showed %q, not asked for", start)
			return
		}
		for _, i := range d.cur {
			d.seen[i] = true
		}
		if kind != "d" {
			for _, i := range d.cur {
				d.errs[i] = fmt.Errorf("%s is not a directory", start)
			}
			d.cur = nil // find shows no entries of it
			return
		}
		d.works = true
	case "1":
		if len(d.cur) == 0 {
			d.err = errors.New("find showed an entry before its directory")
			return
		}
		n, err := strconv.ParseInt(size, 10, 64)
		if err != nil {
			d.err = fmt.Errorf("find's size of %q: %w", name, err)
			return
		}
		sec, _, _ := strings.Cut(mtime, ".") // SFTP carries whole seconds
		s, err := strconv.ParseInt(sec, 10, 64)
		if err != nil {
			d.err = fmt.Errorf("find's time of %q: %w", name, err)
			return
		}
		d.ents = append(d.ents, remote.Entry{Name: name, Size: n, ModTime: time.Unix(s, 0), Dir: kind == "d"})
	default:
		d.err = fmt.Errorf("find showed depth %q", depth)
	}
}

// flush hands over the directory read so far.
func (d *findList) flush() {
	if len(d.cur) == 0 {
		return
	}
	d.dir(d.cur, d.ents)
	d.ents = d.ents[:0]
}

// finish checks that find ended well, having shown every directory.
func (d *findList) finish() error {
	if d.err != nil {
		return d.err
	}
	if d.status < 0 || !d.in.ended() || len(d.fields) > 0 {
		return errors.New("find's output ended early")
	}
	d.flush()
	if d.status != 0 {
		return fmt.Errorf("find exited with status %d", d.status)
	}
	for i, ok := range d.seen {
		if !ok {
			return fmt.Errorf("find did not show directory %d", i)
		}
	}
	return nil
}
