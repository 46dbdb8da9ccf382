package remote

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// statAt stats e.Name in the open directory d without following a
// symlink and fills in the rest of e.
func statAt(d *os.File, e *Entry) error {
	var st unix.Stat_t
	if err := unix.Fstatat(int(d.Fd()), e.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	e.Size = st.Size
	e.ModTime = time.Unix(0, st.Mtim.Nano())
	e.Dir = st.Mode&unix.S_IFMT == unix.S_IFDIR
	return nil
}

// syncFS calls syncfs(2) once per file system among dirs.
func (s *server) syncFS(dirs []string) error {
	return s.withRoot(func(r *os.Root) error {
		done := map[uint64]bool{}
		for _, dir := range dirs {
			d, err := r.Open(dir)
			if err != nil {
				return fmt.Errorf("syncfs %s: %w", dir, err)
			}
			var st unix.Stat_t
			err = unix.Fstat(int(d.Fd()), &st)
			if err == nil && !done[st.Dev] {
				done[st.Dev] = true
				err = unix.Syncfs(int(d.Fd()))
			}
			d.Close()
			if err != nil {
				return fmt.Errorf("syncfs %s: %w", dir, err)
			}
		}
		return nil
	})
}

// startWriteback asks the kernel to start writing a range of f to disk
// without waiting for it (sync_file_range SYNC_FILE_RANGE_WRITE). It is a
// hint: the fsync before the rename is what makes the data durable, so an
// error here is left for that fsync to report.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
