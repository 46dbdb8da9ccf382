package manifest

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SyncFS calls syncfs(2) once per file system among dirs: every file
// written there so far, and every rename, is durable when it returns
// (Linux 5.8 and later also report write-back errors). One syncfs for a
// batch of files costs about what one fsync does, instead of one per file.
func SyncFS(dirs ...string) error { return SyncFSAt(os.Open, dirs) }

// SyncFSAt is SyncFS with the directories opened by open (an os.Root's
// Open, so that a name cannot lead outside it).
func SyncFSAt(open func(name string) (*os.File, error), dirs []string) error {
	done := map[uint64]bool{}
	for _, d := range dirs {
		f, err := open(d)
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		if err == nil && !done[st.Dev] {
			done[st.Dev] = true
			err = unix.Syncfs(int(f.Fd()))
		}
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", d, err)
		}
	}
	return nil
}
