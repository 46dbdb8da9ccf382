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
// in unlinked temporary files (outside the channel), so that memory does
// not grow with the set and the lists are parsed once. The files are
// spooled by the identity cache's section (sectionOf), one temporary file
// each, so that a pass over one section reads only its own. Any failure
// just disables it (ok = false) and Verify parses the lists again.
type spool struct {
	f  [cacheSections]*os.File
	w  [cacheSections]*bufio.Writer
	ok bool
}

func newSpool() *spool {
	s := &spool{ok: true}
	for k := range s.f {
		f, err := os.CreateTemp("", "bcp-verify-spool-*")
		if err != nil {
			s.close()
			return &spool{}
		}
		_ = os.Remove(f.Name()) // unlinked: gone when closed, even after a crash
		s.f[k], s.w[k] = f, bufio.NewWriterSize(f, 64<<10)
	}
	return s
}

func (s *spool) close() {
	for _, f := range s.f {
		if f != nil {
			_ = f.Close()
		}
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
	w := s.w[sectionOf(f.sha)]
	w.Write(hdr[:])
	w.WriteString(f.sha)
	w.WriteString(f.rel)
	if _, err := w.WriteString(f.ref); err != nil {
		s.ok = false
	}
}

// rewind ends writing and prepares reading; false if the spool is unusable.
func (s *spool) rewind() bool {
	for k := range s.f {
		if !s.ok {
			return false
		}
		if err := s.w[k].Flush(); err != nil {
			s.ok = false
		} else if _, err := s.f[k].Seek(0, io.SeekStart); err != nil {
			s.ok = false
		}
	}
	return s.ok
}

// each calls fn for every record, one section after the other.
func (s *spool) each(fn func(file) error) error {
	for k := range s.f {
		if err := s.eachIn(k, fn); err != nil {
			return err
		}
	}
	return nil
}

// eachIn calls fn for the records of section k, in the order they were
// added.
func (s *spool) eachIn(k int, fn func(file) error) error {
	r := bufio.NewReaderSize(s.f[k], 1<<20)
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
