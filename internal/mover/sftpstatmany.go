package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

var _ StatManyer = (*sftpFS)(nil)

// StatMany looks up the names of dirs without the helper: one command
// through the shell kept for sync -f per statManyBytes of it, where the
// shell's own tests ([ -d ], [ -e ], [ -L ]: no process each) say which
// directories are missing or not directories, the names of the others go
// NUL-separated to xargs -0 and find -P (a process per ARG_MAX of paths),
// which prints each existing one's size, time and kind, lstat'ed as a
// listing shows them (times in whole seconds, as SFTP carries them); a
// name find does not show is not there. A round trip or a few instead of a
// listing of each directory (a few round trips each) or a stat per name,
// and no name of a missing directory goes further than the shell. Every
// path goes out quoted; nothing in a name is run.
//
// Where that cannot be done (no shell, no GNU find, no xargs -0, no
// base64: find does not show "/", asked first) it returns an error
// wrapping remote.ErrNotOffered: the mover lists as before.
func (f *sftpFS) StatMany(ctx context.Context, dirs []remote.DirNames) ([]remote.DirList, error) {
	if f.findState.Load() == syncUnavailable {
		return nil, fmt.Errorf("%s: no helper, no find: %w", f.s, remote.ErrNotOffered)
	}
	out := make([]remote.DirList, len(dirs))
	c := &statChunk{}
	for i, d := range dirs {
		if n := badName(d.Names); n != "" {
			out[i].Err = fmt.Errorf("look up %q in %s: not one component", n, f.s.path(d.Dir))
			continue
		}
		c.add(f.s, i, d)
		if c.cmd.Len() >= statManyBytes {
			if err := f.statChunk(ctx, c, out); err != nil {
				return nil, err
			}
			c = &statChunk{}
		}
	}
	if len(c.at) > 0 {
		if err := f.statChunk(ctx, c, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// statManyBytes bounds a command StatMany sends (the shell holds it whole
// while it runs).
const statManyBytes = 1 << 20

// badName returns the first of names that is not one component, if any.
func badName(names []string) string {
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// statChunk is the directories and names one command looks up, and the
// command's part for them.
type statChunk struct {
	at    map[string][]int // a directory's path -> indexes in the caller's dirs
	paths map[string]statPath
	cmd   strings.Builder
}

// statPath is where a looked-up path's entry goes.
type statPath struct {
	name string
	dirs []int
}

// add adds d (index i in the caller's dirs): if the directory is there
// its paths go to xargs as the shell prints them (dir/name), else a mark
// goes to the output (fd 3).
func (c *statChunk) add(s *SFTP, i int, d remote.DirNames) {
	if c.at == nil {
		c.at, c.paths = map[string][]int{}, map[string]statPath{}
	}
	dir := shellPath(s.path(d.Dir)) // never an option or an expression to find
	if len(c.at[dir]) == 0 {
		c.cmd.WriteString("d=" + sshx.Quote(dir) + `; if [ -d "$d" ]; then`)
		if len(d.Names) > 0 {
			c.cmd.WriteString(" for n in")
			for _, n := range d.Names {
				c.cmd.WriteString(" " + sshx.Quote(n))
			}
			c.cmd.WriteString(`; do printf '%s/%s\0' "$d" "$n"; done`)
		} else {
			c.cmd.WriteString(" :")
		}
		c.cmd.WriteString(`; elif [ -e "$d" ] || [ -L "$d" ]; then printf '` + statNotDir + `\0%s\0' "$d" >&3; ` +
			`else printf '` + findMissing + `\0%s\0' "$d" >&3; fi; `)
	}
	c.at[dir] = append(c.at[dir], i)
	for _, n := range d.Names {
		p := dir + "/" + n // as the shell prints it
		c.paths[p] = statPath{name: n, dirs: append(c.paths[p].dirs, i)}
	}
}

const (
	statNotDir = "bcp-stat-notdir" // a directory that is not one
	statEnd    = "bcp-stat-end"
)

// statChunk runs c's command and fills out.
func (f *sftpFS) statChunk(ctx context.Context, c *statChunk, out []remote.DirList) error {
	// "/" first: find shows it, or it does not do what is asked. find's
	// and xargs' status say nothing here (a name not there is an error
	// to find).
	cmd := `{ { printf '/\0'; ` + c.cmd.String() + `} | xargs -0 sh -c '` + f.findCmd +
		` -P "$@" -maxdepth 0 -printf "%p\0%s\0%T@\0%y\0" 2>/dev/null' sh; printf '` + statEnd + `\0'; } 3>&1 | base64`
	r := &statReader{c: c, out: out}
	f.shellMu.Lock()
	err := f.shellRun(ctx, cmd, r.line)
	f.shellMu.Unlock()
	if err == nil {
		err = r.finish()
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		f.findState.Store(syncWorks)
		return nil
	case !r.shown && f.findState.CompareAndSwap(syncUnknown, syncUnavailable):
		return fmt.Errorf("%s: no helper, and find through a shell: %w: %w", f.s, err, remote.ErrNotOffered)
	}
	return fmt.Errorf("look up names at %s with find: %w: %w", f.s, err, remote.ErrNotOffered)
}

// statReader reads the output of a statChunk's command.
type statReader struct {
	c      *statChunk
	out    []remote.DirList
	in     nulFields
	fields []string
	shown  bool // find showed "/": it does what we ask
	ended  bool // the end mark was read
	err    error
}

func (r *statReader) line(s string) {
	if r.err == nil {
		r.err = r.in.line(s, r.field)
	}
}

func (r *statReader) field(field string) error {
	r.fields = append(r.fields, field)
	f := r.fields
	switch f[0] {
	case statEnd:
		r.ended = true
		r.fields = r.fields[:0]
		return nil
	case findMissing, statNotDir:
		if len(f) < 2 {
			return nil
		}
		r.fields = r.fields[:0]
		err := fmt.Errorf("look up names in %s: %w", f[1], fs.ErrNotExist)
		if f[0] == statNotDir {
			err = fmt.Errorf("look up names in %s: %w", f[1], errNotDir)
		}
		for _, i := range r.c.at[f[1]] {
			r.out[i].Err = err
		}
		return nil
	}
	if len(f) < 4 {
		return nil
	}
	r.fields = r.fields[:0]
	if f[0] == "/" {
		r.shown = true
		return nil
	}
	p, ok := r.c.paths[f[0]]
	if !ok {
		return fmt.Errorf("find showed %q, not asked for", f[0])
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return fmt.Errorf("find's size of %q: %w", f[0], err)
	}
	sec, _, _ := strings.Cut(f[2], ".") // SFTP carries whole seconds
	t, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return fmt.Errorf("find's time of %q: %w", f[0], err)
	}
	e := remote.Entry{Name: p.name, Size: n, ModTime: time.Unix(t, 0), Dir: f[3] == "d"}
	for _, i := range p.dirs {
		r.out[i].Entries = append(r.out[i].Entries, e)
	}
	return nil
}

// finish checks that the output ended well and find did what was asked.
func (r *statReader) finish() error {
	switch {
	case r.err != nil:
		return r.err
	case !r.ended || !r.in.ended() || len(r.fields) > 0:
		return errors.New("the output ended early")
	case !r.shown:
		return errors.New("find did not show /")
	}
	return nil
}
