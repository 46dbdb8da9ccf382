package mysqlx

import (
	"bytes"
)

// TableKey names a table.
type TableKey struct{ Database, Table string }

// rowCounter follows mysqldump's output and counts the row tuples of each
// INSERT statement. mysqldump starts statements at the beginning of a line
// ("USE `db`;", "INSERT INTO `t` VALUES" then tuples on the same line
// (MySQL) or one per line (MariaDB 10.x), up to ';'), escapes newlines and
// quotes inside strings with backslashes, and writes binary data as hex
// (--hex-blob).
type rowCounter struct {
	counts   map[TableKey]int64
	db       string
	table    string
	mode     int
	hdr      []byte
	inQuote  byte
	esc      bool
	depth    int
	complete bool
}

const (
	modeHeader = iota // collecting the start of a line
	modeValues        // inside INSERT ... VALUES
	modeSkip          // rest of an uninteresting line
)

const maxHeader = 1024

func newRowCounter() *rowCounter {
	return &rowCounter{counts: map[TableKey]int64{}}
}

var (
	insertPrefix = []byte("INSERT INTO `")
	usePrefix    = []byte("USE `")
	donePrefix   = []byte("-- Dump completed")
)

func (r *rowCounter) Write(p []byte) (int, error) {
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch r.mode {
		case modeHeader:
			if (b == ' ' || b == '\n') && bytes.HasPrefix(r.hdr, insertPrefix) {
				if t, ok := insertTable(r.hdr); ok {
					r.table = t
					r.mode = modeValues
					r.hdr = r.hdr[:0]
					r.inQuote, r.esc, r.depth = 0, false, 0
					continue
				}
			}
			if b == '\n' {
				r.line()
				continue
			}
			r.hdr = append(r.hdr, b)
			if len(r.hdr) >= maxHeader {
				r.mode = modeSkip
				r.hdr = r.hdr[:0]
			}
		case modeSkip:
			if b == '\n' {
				r.mode = modeHeader
			}
		case modeValues:
			switch {
			case r.inQuote != 0:
				if r.esc {
					r.esc = false
				} else if b == '\\' {
					r.esc = true
				} else if b == r.inQuote {
					r.inQuote = 0
				}
			case b == '\'' || b == '"':
				r.inQuote = b
			case b == '(':
				if r.depth == 0 {
					r.counts[TableKey{r.db, r.table}]++
				}
				r.depth++
			case b == ')':
				r.depth--
			case b == ';' && r.depth == 0:
				r.mode = modeSkip // the statement ends; skip to the line end
			}
		}
	}
	return len(p), nil
}

// line handles a complete short line.
func (r *rowCounter) line() {
	h := r.hdr
	r.hdr = r.hdr[:0]
	switch {
	case bytes.HasPrefix(h, usePrefix):
		if name, rest, ok := ident(h[len(usePrefix)-1:]); ok && bytes.HasPrefix(rest, []byte(";")) {
			r.db = name
		}
	case bytes.HasPrefix(h, donePrefix):
		r.complete = true
	}
}

// insertTable parses "INSERT INTO `name` VALUES ".
func insertTable(h []byte) (string, bool) {
	name, rest, ok := ident(h[len(insertPrefix)-1:])
	if !ok || !bytes.Equal(rest, []byte(" VALUES")) {
		return "", false
	}
	return name, true
}

// ident parses a backquoted identifier at the start of b (“ is a quote).
func ident(b []byte) (string, []byte, bool) {
	if len(b) == 0 || b[0] != '`' {
		return "", nil, false
	}
	var name []byte
	for i := 1; i < len(b); i++ {
		if b[i] == '`' {
			if i+1 < len(b) && b[i+1] == '`' {
				name = append(name, '`')
				i++
				continue
			}
			return string(name), b[i+1:], true
		}
		name = append(name, b[i])
	}
	return "", nil, false
}
