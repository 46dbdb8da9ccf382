//go:build !linux

package manifest

import (
	"errors"
	"os"
)

// SyncFS is Linux's syncfs(2); elsewhere it returns errors.ErrUnsupported
// and callers fsync each file.
func SyncFS(dirs ...string) error { return errors.ErrUnsupported }

// SyncFSAt is SyncFS with the directories opened by open.
func SyncFSAt(func(name string) (*os.File, error), []string) error { return errors.ErrUnsupported }
