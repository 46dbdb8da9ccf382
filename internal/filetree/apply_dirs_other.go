//go:build !linux

package filetree

import (
	"errors"

	"github.com/squirro-bcp/bcp/manifest"
)

var errUnsupported = errors.ErrUnsupported

// Elsewhere than on Linux every file is written by path (Target).

type dirFD struct{ refs int }

func (d *dirFD) release() {}

type localDirs struct{ fan objectDirs }

type objectDirs struct{}

func (objectDirs) close() {}

func newLocalDirs(Target, Objects) *localDirs { return nil }

func (*localDirs) openRoot() (*dirFD, error)                                 { return nil, errUnsupported }
func (*localDirs) openDir(*dirFD, string) (*dirFD, error)                    { return nil, errUnsupported }
func (*localDirs) rename(*dirFD, string, string) error                       { return errUnsupported }
func (*localDirs) unlink(*dirFD, string)                                     {}
func (*localDirs) write(*dirFD, string, manifest.Entry, bool, *[]byte) error { return errUnsupported }
