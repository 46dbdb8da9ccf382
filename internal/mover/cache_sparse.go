package mover

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
)

// viewSearchMax is the most names of a bucket that viewNames looks up
// one by one in the cache file's section (a binary search each) instead
// of reading every line of the bucket (view).
const viewSearchMax = 256

// viewNames returns the stamps of names (all of bucket k) as view does,
// and perhaps of others; nil names: every stamp of the bucket (view). For
// a plan of a few files of a bucket (a push beside the recorded set), each
// is found by a binary search of the bucket's section, which Save wrote
// sorted by name, instead of parsing every line of it. A name the search
// misses (a section not sorted, from an older version) has no stamp and
// is hashed again, never trusted.
func (c *Checked) viewNames(k int, names []string) (map[string]stamp, error) {
	m := map[string]stamp{}
	if c.path == "" {
		return m, nil
	}
	if err := c.index(); err != nil {
		return nil, err
	}
	if c.file != nil && c.off[k+1] > c.off[k] {
		data, err := c.section(k)
		if err != nil {
			return nil, err
		}
		if names == nil || len(names) > viewSearchMax {
			parseStamps(data, m)
		} else {
			for _, name := range names {
				if line := searchLine(data, name); line != nil {
					parseStamps(line, m)
				}
			}
		}
	}
	data, err := c.journal.read(k)
	if err != nil {
		return nil, err
	}
	parseStamps(data, m)
	return m, nil
}

// section reads bucket k's lines of the cache file as found at open.
func (c *Checked) section(k int) ([]byte, error) {
	data := make([]byte, c.off[k+1]-c.off[k])
	if _, err := c.file.ReadAt(data, c.off[k]); err != nil {
		return nil, fmt.Errorf("verified-file cache %s: %w", c.path, err)
	}
	return data, nil
}

// searchLine returns the line (without its newline) of data, lines
// sorted by name (lineName), whose name is name; nil if none.
func searchLine(data []byte, name string) []byte {
	lo, hi := 0, len(data) // lines starting before lo name less than name; hi is a line start
	for lo < hi {
		mid := lo + (hi-lo)/2
		s := lo + bytes.LastIndexByte(data[lo:mid], '\n') + 1
		e := len(data)
		if i := bytes.IndexByte(data[s:], '\n'); i >= 0 {
			e = s + i + 1
		}
		if lineName(bytes.TrimSuffix(data[s:e], []byte("\n"))) < name {
			lo = e
		} else {
			hi = s
		}
	}
	if lo >= len(data) {
		return nil
	}
	line := data[lo:]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if lineName(line) != name {
		return nil
	}
	return line
}

// errUnsorted: a section saveBucket cannot merge as it is.
var errUnsorted = errors.New("section not sorted by name")

// saveBucket appends bucket k's stamps, sorted by name, to out for Save:
// the file's section as it is where this run changed nothing in the
// bucket, else the section's lines merged with this run's changes. Lines
// are copied as they are, not parsed into stamps and formatted again (a
// first copy of 100k files: 0.15 s of Save's end of the run); a line view
// cannot read stays unread. A section not sorted by name is errUnsorted:
// Save merges that bucket through view instead.
func (c *Checked) saveBucket(out []byte, k int) ([]byte, error) {
	var sec []byte
	if c.file != nil && c.off[k+1] > c.off[k] {
		var err error
		if sec, err = c.section(k); err != nil {
			return out, err
		}
	}
	jdata, err := c.journal.read(k)
	if err != nil {
		return out, err
	}
	if len(jdata) == 0 && (len(sec) == 0 || bytes.HasSuffix(sec, []byte("\n"))) {
		return append(out, sec...), nil
	}
	changed := journalLines(jdata)
	var prev []byte
	for len(sec) > 0 {
		l := sec
		if i := bytes.IndexByte(sec, '\n'); i >= 0 {
			l, sec = sec[:i+1], sec[i+1:]
		} else {
			sec = nil
		}
		name := lineNameBytes(l[:len(l)-1])
		if name == nil || prev != nil && bytes.Compare(name, prev) <= 0 || !bytes.HasSuffix(l, []byte("\n")) {
			return out, errUnsorted
		}
		prev = name
		for len(changed) > 0 && bytes.Compare(changed[0].nameIn(jdata), name) < 0 {
			out = changed[0].appendTo(out, jdata)
			changed = changed[1:]
		}
		if len(changed) > 0 && bytes.Equal(changed[0].nameIn(jdata), name) {
			out = changed[0].appendTo(out, jdata)
			changed = changed[1:]
			continue
		}
		out = append(out, l...)
	}
	for _, j := range changed {
		out = j.appendTo(out, jdata)
	}
	return out, nil
}

// A journalLine is one name's last change in a bucket's journal, by
// offsets into it (no pointers: a sort of 100k of them moves no pointer):
// its stamp line, data[start:end] without the newline, the name from
// name on; or a drop (start == name), "-"+name.
type journalLine struct {
	start, name, end int
}

func (j journalLine) nameIn(data []byte) []byte { return data[j.name:j.end] }

// appendTo appends j's stamp line to out, nothing for a drop.
func (j journalLine) appendTo(out, data []byte) []byte {
	if j.start == j.name {
		return out
	}
	return append(append(out, data[j.start:j.end]...), '\n')
}

// journalLines returns the changes in a bucket's journal (data: stamp
// lines, and drops as "-"+name) sorted by name, the last of each name
// winning; a line that is not a stamp (parseStamp) is left out.
func journalLines(data []byte) []journalLine {
	ls := make([]journalLine, 0, bytes.Count(data, []byte("\n"))+1)
	for pos := 0; pos < len(data); {
		end := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			end = pos + i
		}
		l := data[pos:end]
		if len(l) > 0 && l[0] == '-' {
			ls = append(ls, journalLine{start: pos + 1, name: pos + 1, end: end})
		} else if _, _, _, name, ok := stampFields(l); ok {
			ls = append(ls, journalLine{start: pos, name: end - len(name), end: end})
		}
		pos = end + 1
	}
	// By name, then by place in the journal: of one name's lines, the
	// last stays last.
	slices.SortFunc(ls, func(a, b journalLine) int {
		return cmp.Or(bytes.Compare(a.nameIn(data), b.nameIn(data)), cmp.Compare(a.start, b.start))
	})
	out := ls[:0]
	for i, l := range ls {
		if i+1 < len(ls) && bytes.Equal(ls[i+1].nameIn(data), l.nameIn(data)) {
			continue
		}
		out = append(out, l)
	}
	return out
}
