//go:build !linux

package remote

import (
	"errors"
	"os"

	"github.com/squirro-bcp/bcp/manifest"
)

var errUnsupported = errors.New("transfer serve needs Linux (fstatat, syncfs)")

func readNames(d *os.File) ([]string, error) { return d.Readdirnames(-1) }

func statAt(int, *Entry) error { return errUnsupported }

func (s *server) lstat(string) (Entry, error) { return Entry{}, errUnsupported }

func (s *server) syncFS([]string) error { return errUnsupported }

const directAlign = 4096

func growPipe(any) {}

func startDirect(*os.File) bool { return false }

func endDirect(*os.File) error { return nil }

func alignedBuffer(n int) []byte { return make([]byte, n) }

func startWriteback(*os.File, int64, int64) {}

func (s *server) create(name string) (*os.File, error) {
	var f *os.File
	err := s.withRoot(func(r *os.Root) (err error) {
		f, err = r.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, manifest.PermOf(name))
		return err
	})
	return f, err
}

func (s *server) rename(from, to string) error {
	return s.withRoot(func(r *os.Root) error { return r.Rename(from, to) })
}

func (s *server) remove(name string) error {
	return s.withRoot(func(r *os.Root) error { return r.Remove(name) })
}
