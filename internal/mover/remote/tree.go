package remote

// The tree requests (protocol version 3) let a caller bring a directory
// tree below the helper's root to a given state - restore's files stage
// with files-via-ssh - with every operation done by the helper next to the
// data, through an os.Root: no name, and no symlink that anyone put in the
// tree, can make it read or change anything outside the root. SFTP cannot
// promise that (its server follows every link in a path), so a check on
// the client would race with whoever else can change the tree.

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	opStat      = 12 // name: lstat; reply: a stat record
	opReadDir   = 13 // dir; reply: count u32, then per entry name and stat record (lstat)
	opReadlink  = 14 // name; reply: the link's text
	opMkdir     = 15 // name, perm u32
	opSymlink   = 16 // target, name
	opRemoveAll = 17 // name
	opChmod     = 18 // name, mode u32 (permission, setuid, setgid, sticky)
	opLchown    = 19 // name, uid u32, gid u32 (the link itself, for a symlink)
	opChtimes   = 20 // name, mtime in ns u64
	opFreeSpace = 21 // name; reply: bytes free to the helper's user on its file system, u64
)

// Info is what the helper reports of a file (lstat: a symlink is itself).
type Info struct {
	name    string
	mode    fs.FileMode
	size    int64
	modTime time.Time
	UID     int
	GID     int
}

var _ fs.FileInfo = (*Info)(nil)

func (i *Info) Name() string       { return i.name }
func (i *Info) Size() int64        { return i.size }
func (i *Info) Mode() fs.FileMode  { return i.mode }
func (i *Info) ModTime() time.Time { return i.modTime }
func (i *Info) IsDir() bool        { return i.mode.IsDir() }

// Sys returns the Info itself (UID and GID).
func (i *Info) Sys() any { return i }

// appendInfo encodes a stat record: mode u32 (fs.FileMode), size u64,
// mtime ns u64, uid u32, gid u32.
func appendInfo(b []byte, fi fs.FileInfo) []byte {
	var uid, gid uint32
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = st.Uid, st.Gid
	}
	b = binary.BigEndian.AppendUint32(b, uint32(fi.Mode()))
	b = binary.BigEndian.AppendUint64(b, uint64(fi.Size()))
	b = binary.BigEndian.AppendUint64(b, uint64(fi.ModTime().UnixNano()))
	b = binary.BigEndian.AppendUint32(b, uid)
	return binary.BigEndian.AppendUint32(b, gid)
}

func (d *decoder) info(name string) *Info {
	i := &Info{name: name, mode: fs.FileMode(d.u32()), size: int64(d.u64())}
	i.modTime = time.Unix(0, int64(d.u64()))
	i.UID, i.GID = int(d.u32()), int(d.u32())
	return i
}

// doTree carries out a tree request; known is false for an op it does not know.
func (s *server) doTree(op byte, d *decoder) (body []byte, known bool, err error) {
	name := d.str()
	root := func(fn func(r *os.Root) error) error {
		if d.err != nil {
			return d.err
		}
		return s.withRoot(fn)
	}
	switch op {
	case opStat:
		err = root(func(r *os.Root) error {
			fi, err := r.Lstat(name)
			if err == nil {
				body = appendInfo(nil, fi)
			}
			return err
		})
	case opReadDir:
		err = root(func(r *os.Root) error {
			f, err := r.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			des, err := f.ReadDir(-1)
			if err != nil {
				return err
			}
			body = binary.BigEndian.AppendUint32(body, 0)
			n := 0
			for _, de := range des {
				fi, err := de.Info()
				if err != nil {
					continue // removed since it was listed
				}
				body = appendInfo(appendString(body, de.Name()), fi)
				n++
			}
			binary.BigEndian.PutUint32(body, uint32(n))
			return nil
		})
	case opReadlink:
		err = root(func(r *os.Root) error {
			t, err := r.Readlink(name)
			body = appendString(nil, t)
			return err
		})
	case opMkdir:
		perm := fs.FileMode(d.u32())
		err = root(func(r *os.Root) error { return r.Mkdir(name, perm.Perm()) })
	case opSymlink:
		newname := d.str()
		err = root(func(r *os.Root) error { return r.Symlink(name, newname) })
	case opRemoveAll:
		err = root(func(r *os.Root) error {
			if path.Clean(name) == "." {
				return fmt.Errorf("remove the root %s: refused", s.rootPath)
			}
			return r.RemoveAll(name)
		})
	case opChmod:
		mode := fs.FileMode(d.u32()) & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		err = root(func(r *os.Root) error { return r.Chmod(name, mode) })
	case opLchown:
		uid, gid := int(d.u32()), int(d.u32())
		err = root(func(r *os.Root) error { return r.Lchown(name, uid, gid) })
	case opChtimes:
		t := time.Unix(0, int64(d.u64()))
		err = root(func(r *os.Root) error { return r.Chtimes(name, t, t) })
	case opFreeSpace:
		err = root(func(r *os.Root) error {
			var st unix.Statfs_t
			if err := unix.Statfs(path.Join(s.rootPath, name), &st); err != nil {
				return err
			}
			body = binary.BigEndian.AppendUint64(nil, uint64(st.Bavail)*uint64(st.Bsize))
			return nil
		})
	default:
		return nil, false, nil
	}
	return body, true, err
}

// Stat returns what lstat(2) says of name below the root.
func (c *Client) Stat(name string) (*Info, error) {
	body, err := c.call(context.Background(), opStat, 0, appendString(nil, name))
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	i := d.info(path.Base(name))
	return i, d.err
}

// ReadDir lists dir, each entry lstat'ed by the helper.
func (c *Client) ReadDir(dir string) ([]fs.FileInfo, error) {
	body, err := c.call(context.Background(), opReadDir, 0, appendString(nil, dir))
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	n := d.u32()
	if d.err != nil || uint64(n) > uint64(len(body)) {
		return nil, fmt.Errorf("read directory %s: %w", dir, errProtocol)
	}
	out := make([]fs.FileInfo, 0, n)
	for range n {
		i := d.info(d.str())
		if d.err != nil {
			return nil, fmt.Errorf("read directory %s: %w", dir, d.err)
		}
		out = append(out, i)
	}
	return out, nil
}

// Readlink returns the text of the symlink name.
func (c *Client) Readlink(name string) (string, error) {
	body, err := c.call(context.Background(), opReadlink, 0, appendString(nil, name))
	if err != nil {
		return "", err
	}
	d := decoder{b: body}
	t := d.str()
	return t, d.err
}

// Mkdir makes the directory name (its parent must exist).
func (c *Client) Mkdir(name string, perm fs.FileMode) error {
	_, err := c.call(context.Background(), opMkdir, 0, binary.BigEndian.AppendUint32(appendString(nil, name), uint32(perm)))
	return err
}

// Symlink makes name a symlink to target (kept as is).
func (c *Client) Symlink(target, name string) error {
	_, err := c.call(context.Background(), opSymlink, 0, appendString(appendString(nil, target), name))
	return err
}

// RemoveAll removes name and everything below it (never the root).
func (c *Client) RemoveAll(name string) error {
	_, err := c.call(context.Background(), opRemoveAll, 0, appendString(nil, name))
	return err
}

// Chmod sets the mode of name.
func (c *Client) Chmod(name string, mode fs.FileMode) error {
	_, err := c.call(context.Background(), opChmod, 0, binary.BigEndian.AppendUint32(appendString(nil, name), uint32(mode)))
	return err
}

// Lchown sets the owner of name (of a symlink itself).
func (c *Client) Lchown(name string, uid, gid int) error {
	b := binary.BigEndian.AppendUint32(appendString(nil, name), uint32(uid))
	_, err := c.call(context.Background(), opLchown, 0, binary.BigEndian.AppendUint32(b, uint32(gid)))
	return err
}

// Chtimes sets the access and modification times of name to mtime.
func (c *Client) Chtimes(name string, mtime time.Time) error {
	_, err := c.call(context.Background(), opChtimes, 0, binary.BigEndian.AppendUint64(appendString(nil, name), uint64(mtime.UnixNano())))
	return err
}

// FreeSpace returns the bytes free to the helper's user on the file system
// holding name (statfs(2)).
func (c *Client) FreeSpace(name string) (int64, error) {
	body, err := c.call(context.Background(), opFreeSpace, 0, appendString(nil, name))
	if err != nil {
		return 0, err
	}
	d := decoder{b: body}
	n := d.u64()
	return int64(n), d.err
}
