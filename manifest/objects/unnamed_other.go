//go:build !linux

package objects

import "errors"

// createUnnamed: unnamed files (O_TMPFILE) are Linux's; elsewhere objects
// are written under a temporary name.
func createUnnamed(string, []byte) (int, error) { return -1, errors.ErrUnsupported }

func linkUnnamed(int, string) error { return errors.ErrUnsupported }

func unnamedMax() int { return 0 }
