//go:build !linux

package manifest

import (
	"errors"
	"io/fs"
)

// OpenUnnamed: unnamed files (O_TMPFILE) are Linux's; elsewhere callers
// write under a temporary name.
func OpenUnnamed(int, string, fs.FileMode) (int, error) { return -1, errors.ErrUnsupported }

// LinkUnnamed: see OpenUnnamed.
func LinkUnnamed(int, int, string) error { return errors.ErrUnsupported }

// UnnamedMax: none.
func UnnamedMax(int, int) int { return 0 }
