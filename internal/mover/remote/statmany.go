package remote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// opStatMany (optional, announced in opsLine) looks up names in many
// directories in one request, where a plan needs a few of a directory's
// thousands of files and a listing of each would cost most of a push
// over a far link.
//
// Request: count u16, then per directory: its name, count u16 and each
// name in it (one component). Reply, after statusOK: per directory a
// status (statusErr with the errno and message when the directory could
// not be opened or is not a directory: ENOENT, ENOTDIR, a path leading
// outside the root, a name that is not one component) and, after
// statusOK, the names found as opList's reply lists entries (a missing
// name left out), each lstat'ed with fstatat in the directory opened
// below the root.

// DirNames is a directory and names in it to look up (StatMany): each
// name one component, not "", "." or "..".
type DirNames struct {
	Dir   string
	Names []string
}

// StatMany has the helper look up each directory's names and returns, in
// the order of dirs, the entries found (a missing name left out) or why
// the directory could not be looked in (matching fs.ErrNotExist or
// syscall.ENOTDIR when it is missing or below a file): one round trip for
// all; the helper does them one after the other. A helper that did not
// announce it returns ErrNotOffered.
func (c *Client) StatMany(ctx context.Context, dirs []DirNames) ([]DirList, error) {
	if !c.ops[opStatMany] {
		return nil, ErrNotOffered
	}
	if len(dirs) > 1<<16-1 {
		return nil, fmt.Errorf("look up in %d directories at once: %w", len(dirs), errProtocol)
	}
	req := binary.BigEndian.AppendUint16(nil, uint16(len(dirs)))
	for _, d := range dirs {
		if len(d.Names) > 1<<16-1 {
			return nil, fmt.Errorf("look up %d names in %s at once: %w", len(d.Names), d.Dir, errProtocol)
		}
		req = append(appendString(req, d.Dir), encodeNames(d.Names)...)
	}
	body, err := c.call(ctx, opStatMany, 0, req)
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	out := make([]DirList, len(dirs))
	for i := 0; i < len(out) && d.err == nil; i++ {
		out[i] = d.dirList()
	}
	if d.err != nil {
		return nil, fmt.Errorf("look up many: %w", d.err)
	}
	return out, nil
}

// dirList reads a directory's result and, after statusOK, its entries
// (encodeList), as opListMany and opStatMany reply for each directory.
func (d *decoder) dirList() DirList {
	var l DirList
	if l.Err = d.result(); d.err == nil && l.Err == nil {
		l.Entries, d.err = decodeList(d)
	}
	return l
}

// statMany carries out an opStatMany request read from d: the reply's
// body, or why the request could not be read.
func (s *server) statMany(d *decoder) ([]byte, error) {
	var body []byte
	for range int(d.u16()) {
		dir := d.str()
		names := make([]string, d.u16())
		for i := range names {
			names[i] = d.str()
		}
		if d.err != nil {
			break
		}
		ents, err := s.statNames(dir, names)
		body = appendResult(body, err)
		if err == nil {
			body = append(body, encodeList(ents)...)
		}
	}
	return body, d.err
}

// statNames lstats each of names in dir (opened below the root): the
// entries found, a missing name left out.
func (s *server) statNames(dir string, names []string) ([]Entry, error) {
	var ents []Entry
	err := s.withRoot(func(r *os.Root) error {
		d, err := r.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		if fi, err := d.Stat(); err != nil {
			return err
		} else if !fi.IsDir() {
			return &os.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR}
		}
		fd := int(d.Fd())
		for _, name := range names {
			if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
				return &os.PathError{Op: "stat", Path: dir + "/" + name, Err: syscall.EINVAL}
			}
			e := Entry{Name: name}
			switch err := statAt(fd, &e); {
			case err == nil:
				ents = append(ents, e)
			case errors.Is(err, fs.ErrNotExist):
			default:
				return &os.PathError{Op: "stat", Path: dir + "/" + name, Err: err}
			}
		}
		return nil
	})
	return ents, err
}
