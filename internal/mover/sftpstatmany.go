package mover

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

var _ StatManyer = (*sftpFS)(nil)

// StatMany looks up the names of dirs without the helper: one command
// through the shell kept for sync -f per statManyArgs bytes of paths, where
// the shell's own tests ([ -d ], [ -e ], [ -L ]: no process each) say
// which directories and names are missing and one find(1) -P of all the
// paths prints each existing one's size, time and kind, lstat'ed (as a
// listing shows them; times in whole seconds, as SFTP carries them). A
// round trip or a few instead of a listing of each directory (a few round
// trips each) or a stat per name. Every path goes out quoted; nothing in a
// name is run.
//
// Where that cannot be done (no shell, no GNU find, no base64, or a path
// neither shown nor missing) it returns an error wrapping
// remote.ErrNotOffered: the mover lists as before.
func (f *sftpFS) StatMany(ctx context.Context, dirs []remote.DirNames) ([]remote.DirList, error) {
	if f.findState.Load() == syncUnavailable {
		return nil, fmt.Errorf("%s: no helper, no find: %w", f.s, remote.ErrNotOffered)
	}
	out := make([]remote.DirList, len(dirs))
	var chunk statChunk
	for i, d := range dirs {
		if n := badName(d.Names); n != "" {
			out[i].Err = fmt.Errorf("look up %q in %s: not one component", n, f.s.path(d.Dir))
			continue
		}
		chunk.add(f.s, i, d)
		if chunk.size >= statManyArgs {
			if err := f.statChunk(ctx, &chunk, out); err != nil {
				return nil, err
			}
			chunk = statChunk{}
		}
	}
	if len(chunk.dirs) > 0 {
		if err := f.statChunk(ctx, &chunk, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// statManyArgs bounds the bytes of paths one command passes to find, well
// below a server's limit on a command's arguments (ARG_MAX, 2 MiB on
// Linux with the usual stack limit).
const statManyArgs = 256 << 10

// badName returns the first of names that is not one component, if any.
func badName(names []string) string {
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.Contains(n, "/") {
			return n
		}
	}
	return ""
}

// statChunk is the directories and names one command looks up.
type statChunk struct {
	dirs  []string         // as passed, one each
	at    map[string][]int // a directory's path -> indexes in the caller's dirs
	paths map[string]statPath
	order []string // paths as passed
	size  int
}

// statPath is where a looked-up path's entry goes.
type statPath struct {
	name string
	dirs []int
}

func (c *statChunk) add(s *SFTP, i int, d remote.DirNames) {
	if c.at == nil {
		c.at, c.paths = map[string][]int{}, map[string]statPath{}
	}
	dir := shellPath(s.path(d.Dir)) // never an option or an expression to find
	if len(c.at[dir]) == 0 {
		c.dirs = append(c.dirs, dir)
	}
	c.at[dir] = append(c.at[dir], i)
	for _, n := range d.Names {
		p := shellPath(path.Join(dir, n))
		sp, ok := c.paths[p]
		if !ok {
			c.order = append(c.order, p)
			c.size += len(p) + 3
		}
		c.paths[p] = statPath{name: n, dirs: append(sp.dirs, i)}
	}
}

const (
	statNotDir = "bcp-stat-notdir" // a directory that is not one
	statGone   = "bcp-stat-gone"   // a name that is not there
)

// statChunk runs c's command and fills out.
func (f *sftpFS) statChunk(ctx context.Context, c *statChunk, out []remote.DirList) error {
	var cmd strings.Builder
	cmd.WriteString("{ for d in")
	for _, d := range c.dirs {
		cmd.WriteString(" " + sshx.Quote(d))
	}
	cmd.WriteString(`; do [ -d "$d" ] || { if [ -e "$d" ] || [ -L "$d" ]; then printf '` + statNotDir + `\0%s\0' "$d"; ` +
		`else printf '` + findMissing + `\0%s\0' "$d"; fi; }; done; `)
	var args strings.Builder
	for _, p := range c.order {
		args.WriteString(" " + sshx.Quote(p))
	}
	if len(c.order) > 0 {
		cmd.WriteString("for p in" + args.String() + `; do [ -e "$p" ] || [ -L "$p" ] || printf '` + statGone + `\0%s\0' "$p"; done; `)
		// find's status says nothing here (a name gone meanwhile): every
		// path must be shown or gone.
		cmd.WriteString(f.findCmd + " -P" + args.String() + ` -maxdepth 0 -printf '%p\0%s\0%T@\0%y\0' 2>/dev/null; `)
	}
	cmd.WriteString(`printf '` + findStatus + `\0%s\0' 0; } | base64`)

	r := &statReader{c: c, out: out, answered: map[string]bool{}}
	f.shellMu.Lock()
	err := f.shellRun(ctx, cmd.String(), r.line)
	f.shellMu.Unlock()
	if err == nil {
		err = r.finish()
	}
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err == nil:
		if r.shown {
			f.findState.Store(syncWorks)
		}
		return nil
	case !r.shown && f.findState.CompareAndSwap(syncUnknown, syncUnavailable):
		return fmt.Errorf("%s: no helper, and find through a shell: %w: %w", f.s, err, remote.ErrNotOffered)
	}
	return fmt.Errorf("look up names at %s with find: %w: %w", f.s, err, remote.ErrNotOffered)
}

// statReader reads the output of a statChunk's command.
type statReader struct {
	c        *statChunk
	out      []remote.DirList
	in       nulFields
	fields   []string
	answered map[string]bool // paths shown or gone
	shown    bool            // find showed a path: it does what we ask
	ended    bool            // the end mark was read
	err      error
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
	case findMissing, statNotDir, statGone, findStatus:
		if len(f) < 2 {
			return nil
		}
	default:
		if len(f) < 4 {
			return nil
		}
	}
	r.fields = r.fields[:0]
	switch f[0] {
	case findMissing, statNotDir:
		err := fmt.Errorf("look up names in %s: %w", f[1], fs.ErrNotExist)
		if f[0] == statNotDir {
			err = fmt.Errorf("look up names in %s: %w", f[1], errNotDir)
		}
		for _, i := range r.c.at[f[1]] {
			r.out[i].Err = err
		}
	case statGone:
		r.answered[f[1]] = true
	case findStatus:
		r.ended = true
	default:
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
		r.shown = true
		r.answered[f[0]] = true
		e := remote.Entry{Name: p.name, Size: n, ModTime: time.Unix(t, 0), Dir: f[3] == "d"}
		for _, i := range p.dirs {
			r.out[i].Entries = append(r.out[i].Entries, e)
		}
	}
	return nil
}

// finish checks that the output ended well and every path was answered.
func (r *statReader) finish() error {
	if r.err != nil {
		return r.err
	}
	if !r.ended || !r.in.ended() || len(r.fields) > 0 {
		return errors.New("the output ended early")
	}
	for _, p := range r.c.order {
		if !r.answered[p] {
			return fmt.Errorf("find did not show %s", p)
		}
	}
	return nil
}
