package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Directory lists are most of what a reader of a 2.0 tree decodes, and
// encoding/json spends most of a verify's or restore's CPU on them. A
// line written the way TreeWriter writes it (encoding/json, DirEntry's
// fields in order, empty optional ones left out, strings without escapes)
// is decoded by parseDirLine; any other line by encoding/json, as before.
// parseDirLine accepts only lines that encoding/json decodes to the same
// DirEntry (TestParseDirLineAgrees), so the format is unchanged.

// decodeDirLine decodes one line (with its newline) of a directory list.
func decodeDirLine(line []byte, d *DirEntry) error {
	if parseDirLine(line[:len(line)-1], d) {
		return nil
	}
	*d = DirEntry{}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(d); err != nil {
		return err
	}
	if len(bytes.TrimSpace(line[dec.InputOffset():])) > 0 {
		return errors.New("data after the document")
	}
	return nil
}

// parseDirLine decodes line (without its newline) if it has exactly the
// shape TreeWriter writes; false means "not that shape", not "invalid".
func parseDirLine(line []byte, d *DirEntry) bool {
	*d = DirEntry{}
	p := dirLineParser{b: line}
	var ok bool
	if !p.lit(`{"name":`) {
		return false
	}
	if d.Name, ok = p.str(); !ok || !p.lit(`,"type":`) {
		return false
	}
	if d.Type, ok = p.str(); !ok || !p.lit(`,"mode":`) {
		return false
	}
	negative := p.i < len(p.b) && p.b[p.i] == '-' // "-0" is not a uint32
	mode, ok := p.num()
	if !ok || negative || mode < 0 || mode > 1<<32-1 || !p.lit(`,"uid":`) {
		return false
	}
	d.Mode = uint32(mode)
	uid, ok := p.num()
	if !ok || !p.lit(`,"gid":`) {
		return false
	}
	gid, ok := p.num()
	if !ok {
		return false
	}
	d.UID, d.GID = int(uid), int(gid)
	if p.lit(`,"user":`) {
		if d.User, ok = p.str(); !ok {
			return false
		}
	}
	if p.lit(`,"group":`) {
		if d.Group, ok = p.str(); !ok {
			return false
		}
	}
	if !p.lit(`,"mtime":`) {
		return false
	}
	start := p.i
	if _, ok = p.str(); !ok || d.MTime.UnmarshalJSON(p.b[start:p.i]) != nil {
		return false
	}
	if p.lit(`,"size":`) {
		if d.Size, ok = p.num(); !ok {
			return false
		}
	}
	if p.lit(`,"object":`) {
		if d.Object, ok = p.str(); !ok {
			return false
		}
	}
	if p.lit(`,"target":`) {
		if d.Target, ok = p.str(); !ok {
			return false
		}
	}
	if p.lit(`,"tree":{"sha256":`) {
		var t Ref
		if t.SHA256, ok = p.str(); !ok || !p.lit(`,"size":`) {
			return false
		}
		if t.Size, ok = p.num(); !ok || !p.lit(`}`) {
			return false
		}
		d.Tree = &t
	}
	return p.lit(`}`) && p.i == len(p.b)
}

type dirLineParser struct {
	b []byte
	i int
}

func (p *dirLineParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// str reads a JSON string without escapes, control characters or invalid
// UTF-8 (encoding/json would unescape or replace those).
func (p *dirLineParser) str() (string, bool) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", false
	}
	j := p.i + 1
	for ; j < len(p.b); j++ {
		c := p.b[j]
		if c == '"' {
			break
		}
		if c == '\\' || c < 0x20 {
			return "", false
		}
	}
	if j >= len(p.b) || !utf8.Valid(p.b[p.i+1:j]) {
		return "", false
	}
	s := string(p.b[p.i+1 : j])
	p.i = j + 1
	return s, true
}

// num reads a JSON integer: an optional minus, then 0 or digits not
// starting with 0, fitting an int64; a fraction or exponent is not one.
func (p *dirLineParser) num() (int64, bool) {
	j := p.i
	if j < len(p.b) && p.b[j] == '-' {
		j++
	}
	d := j
	for j < len(p.b) && p.b[j] >= '0' && p.b[j] <= '9' {
		j++
	}
	if j == d || (p.b[d] == '0' && j-d > 1) {
		return 0, false
	}
	if j < len(p.b) && (p.b[j] == '.' || p.b[j] == 'e' || p.b[j] == 'E') {
		return 0, false
	}
	v, err := strconv.ParseInt(string(p.b[p.i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	p.i = j
	return v, true
}
