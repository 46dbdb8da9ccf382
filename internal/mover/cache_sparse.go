package mover

import (
	"bytes"
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
// bucket, else the section's lines merged with this run's changes (a line
// kept as it is, not parsed, unless changed: a line view cannot read
// stays unread). A section not sorted by name is errUnsorted: Save merges
// that bucket through view instead.
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
	// This run's changes, the last of each name winning; a drop is a
	// zero stamp.
	changed := map[string]stamp{}
	for len(jdata) > 0 {
		l := jdata
		if i := bytes.IndexByte(jdata, '\n'); i >= 0 {
			l, jdata = jdata[:i], jdata[i+1:]
		} else {
			jdata = nil
		}
		if name, ok := bytes.CutPrefix(l, []byte("-")); ok {
			changed[string(name)] = stamp{}
			continue
		}
		if name, st, ok := parseStamp(l); ok {
			changed[name] = st
		}
	}
	names := make([]string, 0, len(changed))
	for name := range changed {
		names = append(names, name)
	}
	slices.Sort(names)
	emit := func(name string) {
		if st := changed[name]; st.sum != "" {
			out = stampLine(out, name, st)
		}
	}
	prev := ""
	for len(sec) > 0 {
		l := sec
		if i := bytes.IndexByte(sec, '\n'); i >= 0 {
			l, sec = sec[:i+1], sec[i+1:]
		} else {
			sec = nil
		}
		name := lineName(bytes.TrimSuffix(l, []byte("\n")))
		if name == "" || name <= prev || !bytes.HasSuffix(l, []byte("\n")) {
			return out, errUnsorted
		}
		prev = name
		for len(names) > 0 && names[0] < name {
			emit(names[0])
			names = names[1:]
		}
		if len(names) > 0 && names[0] == name {
			emit(names[0])
			names = names[1:]
			continue
		}
		out = append(out, l...)
	}
	for _, name := range names {
		emit(name)
	}
	return out, nil
}
