//go:build !linux

package remote

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("transfer serve needs Linux (fstatat, syncfs)")

func readNames(d *os.File) ([]string, error) { return d.Readdirnames(-1) }

func statAt(int, *Entry) error { return errUnsupported }

func (s *server) syncFS([]string) error { return errUnsupported }

func startWriteback(*os.File, int64, int64) {}
