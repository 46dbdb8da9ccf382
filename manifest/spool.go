package manifest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// spool keeps the files of a set's lists between the two passes of Verify
// in an unlinked temporary file (outside the channel), so that memory does
// not grow with the set and the lists are parsed once. Any failure just
// disables it (ok = false) and Verify parses the lists again.
type spool struct {
	f  *os.File
	w  *bufio.Writer
	ok bool
}

func newSpool() *spool {
	f, err := os.CreateTemp("", "bcp-verify-spool-*")
	if err != nil {
		return &spool{}
	}
	os.Remove(f.Name()) // unlinked: gone when closed, even after a crash
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20), ok: true}
}

func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
	}
}

// add appends one file record: flags, size, sha, rel, ref.
func (s *spool) add(f file) {
	if !s.ok {
		return
	}
	var flags byte
	if f.object {
		flags |= 1
	}
	if f.skip {
		flags |= 2
	}
	var hdr [1 + 8 + 4 + 4 + 4]byte
	hdr[0] = flags
	binary.LittleEndian.PutUint64(hdr[1:], uint64(f.size))
	binary.LittleEndian.PutUint32(hdr[9:], uint32(len(f.sha)))
	binary.LittleEndian.PutUint32(hdr[13:], uint32(len(f.rel)))
	binary.LittleEndian.PutUint32(hdr[17:], uint32(len(f.ref)))
	s.w.Write(hdr[:])
	s.w.WriteString(f.sha)
	s.w.WriteString(f.rel)
	if _, err := s.w.WriteString(f.ref); err != nil {
		s.ok = false
	}
}

// rewind ends writing and prepares reading; false if the spool is unusable.
func (s *spool) rewind() bool {
	if !s.ok {
		return false
	}
	if err := s.w.Flush(); err != nil {
		s.ok = false
		return false
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		s.ok = false
	}
	return s.ok
}

// each calls fn for every record, in the order they were added.
func (s *spool) each(fn func(file) error) error { return s.eachIn(-1, fn) }

// eachIn calls fn for the records of cache section k (sectionOf), or for
// every record if k < 0; the others are skipped before they are decoded.
func (s *spool) eachIn(k int, fn func(file) error) error {
	r := bufio.NewReaderSize(s.f, 1<<20)
	var hdr [1 + 8 + 4 + 4 + 4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read verification spool: %w", err)
		}
		l := int(binary.LittleEndian.Uint32(hdr[9:]) + binary.LittleEndian.Uint32(hdr[13:]) + binary.LittleEndian.Uint32(hdr[17:]))
		if cap(buf) < l {
			buf = make([]byte, l)
		}
		n := buf[:l] // the strings below copy what they keep
		if _, err := io.ReadFull(r, n); err != nil {
			return fmt.Errorf("read verification spool: %w", err)
		}
		a, b := binary.LittleEndian.Uint32(hdr[9:]), binary.LittleEndian.Uint32(hdr[13:])
		if k >= 0 && sectionOf(string(n[:min(a, 1)])) != k {
			continue
		}
		f := file{
			size:   int64(binary.LittleEndian.Uint64(hdr[1:])),
			object: hdr[0]&1 != 0,
			skip:   hdr[0]&2 != 0,
			sha:    string(n[:a]),
			rel:    string(n[a : a+b]),
			ref:    string(n[a+b:]),
		}
		if err := fn(f); err != nil {
			return err
		}
	}
}
