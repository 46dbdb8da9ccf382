//go:build !linux

package filetree

import (
	"io"
	"io/fs"
	"os"
	"syscall"
)

// readDir lists directory dir and lstats each entry.
func readDir(dir string) ([]fs.FileInfo, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]fs.FileInfo, 0, len(ents))
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			if os.IsNotExist(err) {
				continue // vanished between readdir and lstat
			}
			return nil, err
		}
		out = append(out, fi)
	}
	return out, nil
}

// ownerOf returns the owner and inode of fi from its stat.
func ownerOf(fi fs.FileInfo) (uid, gid uint32, ino uint64, ok bool) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid, st.Gid, uint64(st.Ino), true
	}
	return 0, 0, 0, false
}

func openRead(name string) (io.ReadCloser, error) { return os.Open(name) }
