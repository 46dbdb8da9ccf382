package mover

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SyncFS calls syncfs(2) once per file system among dirs: every file
// written there so far, and every rename, is durable when it returns (Linux
// 5.8 and later also report write-back errors).
func (l *Local) SyncFS(_ context.Context, dirs []string) error {
	done := map[uint64]bool{}
	for _, d := range dirs {
		f, err := os.Open(l.path(d))
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", l.path(d), err)
		}
		var st unix.Stat_t
		err = unix.Fstat(int(f.Fd()), &st)
		if err == nil && !done[st.Dev] {
			done[st.Dev] = true
			err = unix.Syncfs(int(f.Fd()))
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", l.path(d), err)
		}
	}
	return nil
}
