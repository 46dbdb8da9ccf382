package manifest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits that make absurd input an error instead of an allocation.
const (
	// MaxManifestSize bounds manifest.json; large lists live in objects.
	MaxManifestSize = 16 << 20
	// MaxObjectSize bounds the size of any object or file (1 PiB).
	MaxObjectSize = 1 << 50
	// MaxListLine bounds one line of a JSON Lines list.
	MaxListLine = 64 << 10
)

// Compression values of MySQLDump.Compression.
const (
	CompressionZstd = "zstd"
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Version is the format version this package writes, "MAJOR.MINOR".
var Version = fmt.Sprintf("%d.%d", FormatMajor, FormatMinor)

// Encode validates m and returns its canonical JSON form (indented, times in
// UTC, trailing newline). An empty m.Version is written as Version. m is not
// modified.
func Encode(m *Manifest) ([]byte, error) {
	if m == nil {
		return nil, fmt.Errorf("encode manifest: nil manifest: %w", ErrInvalid)
	}
	c := *m
	if c.Version == "" {
		c.Version = Version
	}
	c.Created = c.Created.UTC()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// Decode parses and validates a manifest read from an untrusted place. It
// refuses more than MaxManifestSize bytes, malformed JSON, data after the
// document, unknown fields (unless the minor version is newer than ours, as
// newer minor versions may add optional fields), an unknown major version
// (ErrUnknownVersion) and every invalid field (ErrInvalid), with an error
// naming the field.
func Decode(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, more than the limit %d: %w", len(data), MaxManifestSize, ErrInvalid)
	}
	var v struct {
		Version json.RawMessage `json:"version"`
	}
	if err := decodeStrict(data, &v, false); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var version string
	if len(v.Version) == 0 {
		return nil, fmt.Errorf("manifest: no version field: %w", ErrInvalid)
	}
	if err := json.Unmarshal(v.Version, &version); err != nil {
		return nil, fmt.Errorf("manifest: version is not a string: %w", ErrInvalid)
	}
	major, minor, err := ParseVersion(version)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	known, ok := newestMinor[major]
	if !ok {
		return nil, fmt.Errorf("manifest has format version %s, this program reads 1.x and %d.x; upgrade it: %w", version, FormatMajor, ErrUnknownVersion)
	}
	m := new(Manifest)
	if err := decodeStrict(data, m, minor <= known); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return m, nil
}

// ParseVersion splits "MAJOR.MINOR" (decimal, no sign, no leading zeros).
func ParseVersion(s string) (major, minor int, err error) {
	a, b, ok := strings.Cut(s, ".")
	if ok {
		major, err = parseSmall(a)
		if err == nil {
			minor, err = parseSmall(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("version %q: want MAJOR.MINOR: %w", s, ErrInvalid)
	}
	return major, minor, nil
}

func parseSmall(s string) (int, error) {
	if s == "" || len(s) > 6 || (len(s) > 1 && s[0] == '0') {
		return 0, fs.ErrInvalid
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fs.ErrInvalid
		}
	}
	return strconv.Atoi(s)
}

// Validate checks every field of m. The error names the first bad field and
// wraps ErrInvalid (or ErrUnknownVersion for a foreign major version).
func (m *Manifest) Validate() error {
	major, _, err := ParseVersion(m.Version)
	if err != nil {
		return err
	}
	if _, ok := newestMinor[major]; !ok {
		return fmt.Errorf("format version %s: %w", m.Version, ErrUnknownVersion)
	}
	if err := m.Channel.Validate(); err != nil {
		return err
	}
	if m.Sequence == 0 {
		return fmt.Errorf("sequence: must be at least 1: %w", ErrInvalid)
	}
	if m.Created.IsZero() || m.Created.Year() < 2000 || m.Created.Year() > 9999 {
		return fmt.Errorf("created: %v is not a plausible time: %w", m.Created, ErrInvalid)
	}
	if err := checkText("producer.host", m.Producer.Host, true); err != nil {
		return err
	}
	if err := checkText("producer.program", m.Producer.Program, true); err != nil {
		return err
	}
	if err := checkText("producer.version", m.Producer.Version, false); err != nil {
		return err
	}
	if m.Elasticsearch == nil && m.MySQL == nil && len(m.Trees) == 0 {
		return fmt.Errorf("set has no elasticsearch, mysql or trees part: %w", ErrInvalid)
	}
	// A field of a newer format in a manifest that says an older one can
	// only be a mistake.
	if !m.AtLeast(1, 1) {
		if m.Elasticsearch != nil && (m.Elasticsearch.Scope != nil || m.Elasticsearch.Closed != nil) {
			return fmt.Errorf("elasticsearch: scope and closed are fields of format 1.1, the manifest says %s: %w", m.Version, ErrInvalid)
		}
		if m.MySQL != nil && m.MySQL.AllDatabases {
			return fmt.Errorf("mysql: all_databases is a field of format 1.1, the manifest says %s: %w", m.Version, ErrInvalid)
		}
	}
	if !m.AtLeast(2, 0) {
		if m.Epoch != 0 {
			return fmt.Errorf("epoch is a field of format 2.0, the manifest says %s: %w", m.Version, ErrInvalid)
		}
		if m.Elasticsearch != nil && m.Elasticsearch.Fingerprints != nil {
			return fmt.Errorf("elasticsearch: fingerprints are a field of format 2.0, the manifest says %s: %w", m.Version, ErrInvalid)
		}
		if m.Elasticsearch != nil && m.Elasticsearch.Source != nil {
			return fmt.Errorf("elasticsearch: source is a field of format 2.0, the manifest says %s: %w", m.Version, ErrInvalid)
		}
	}
	if es := m.Elasticsearch; es != nil {
		if err := es.validate(); err != nil {
			return fmt.Errorf("elasticsearch: %w", err)
		}
	}
	if d := m.MySQL; d != nil {
		if err := d.validate(); err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
	}
	seen := make(map[string]bool, len(m.Trees))
	for i, t := range m.Trees {
		if err := t.validate(m.AtLeast(2, 0)); err != nil {
			return fmt.Errorf("trees[%d]: %w", i, err)
		}
		if seen[t.Name] {
			return fmt.Errorf("trees[%d]: duplicate tree name %q: %w", i, t.Name, ErrInvalid)
		}
		seen[t.Name] = true
	}
	return nil
}

// Validate checks a reference: a valid object name and a plausible size.
func (r Ref) Validate() error {
	if err := CheckSHA256(r.SHA256); err != nil {
		return err
	}
	return checkSize("size", r.Size)
}

func checkSize(what string, n int64) error {
	if n < 0 || n > MaxObjectSize {
		return fmt.Errorf("%s %d: must be 0..%d: %w", what, n, int64(MaxObjectSize), ErrInvalid)
	}
	return nil
}

func checkCount(what string, n int64) error {
	if n < 0 {
		return fmt.Errorf("%s %d: must not be negative: %w", what, n, ErrInvalid)
	}
	return nil
}

// checkText accepts short printable text (no control characters).
func checkText(what, s string, required bool) error {
	if s == "" {
		if required {
			return fmt.Errorf("%s is empty: %w", what, ErrInvalid)
		}
		return nil
	}
	if len(s) > 1024 {
		return fmt.Errorf("%s is longer than 1024 bytes: %w", what, ErrInvalid)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s %q contains a control character: %w", what, s, ErrInvalid)
		}
	}
	return nil
}

func (es *ESSnapshot) validate() error {
	for _, f := range []struct{ what, v string }{
		{"repository", es.Repository}, {"snapshot", es.Snapshot}, {"uuid", es.UUID},
	} {
		if err := checkText(f.what, f.v, true); err != nil {
			return err
		}
	}
	if es.State != "SUCCESS" {
		return fmt.Errorf("state %q: a published snapshot must be SUCCESS: %w", es.State, ErrInvalid)
	}
	for i, ix := range es.Indices {
		if err := checkText(fmt.Sprintf("indices[%d]", i), ix, true); err != nil {
			return err
		}
	}
	for i, p := range es.Scope {
		if err := checkText(fmt.Sprintf("scope[%d]", i), p, true); err != nil {
			return err
		}
		if strings.ContainsAny(p, ", ") {
			return fmt.Errorf("scope[%d] %q: one pattern per element, no comma or space: %w", i, p, ErrInvalid)
		}
	}
	for i, ix := range es.Closed {
		if !slices.Contains(es.Indices, ix) {
			return fmt.Errorf("closed[%d] %q is not one of the indices: %w", i, ix, ErrInvalid)
		}
	}
	for i, f := range es.Fingerprints {
		if err := f.validate(); err != nil {
			return fmt.Errorf("fingerprints[%d]: %w", i, err)
		}
		if !slices.Contains(es.Indices, f.Index) {
			return fmt.Errorf("fingerprints[%d]: index %q is not one of the indices: %w", i, f.Index, ErrInvalid)
		}
	}
	if s := es.Source; s != nil {
		if err := checkText("source.version", s.Version, true); err != nil {
			return err
		}
		if s.Nodes < 1 {
			return fmt.Errorf("source.nodes %d: at least 1: %w", s.Nodes, ErrInvalid)
		}
	}
	if es.Generation < 0 {
		return fmt.Errorf("generation %d: must not be negative: %w", es.Generation, ErrInvalid)
	}
	if err := es.Files.Validate(); err != nil {
		return fmt.Errorf("files: %w", err)
	}
	if err := checkCount("file_count", es.FileCount); err != nil {
		return err
	}
	return checkSize("bytes", es.Bytes)
}

func (f *IndexFingerprint) validate() error {
	if err := checkText("index", f.Index, true); err != nil {
		return err
	}
	if err := checkText("uuid", f.UUID, true); err != nil {
		return err
	}
	for _, v := range []struct {
		what string
		n    int64
	}{{"mapping_version", f.MappingVersion}, {"settings_version", f.SettingsVersion}, {"aliases_version", f.AliasesVersion}} {
		if v.n < 1 {
			return fmt.Errorf("index %q: %s %d: must be at least 1: %w", f.Index, v.what, v.n, ErrInvalid)
		}
	}
	if len(f.Shards) == 0 {
		return fmt.Errorf("index %q: no shards: %w", f.Index, ErrInvalid)
	}
	for i, s := range f.Shards {
		if s.Shard != i {
			return fmt.Errorf("index %q: shards[%d] is shard %d: shards must be listed 0, 1, ... in order: %w", f.Index, i, s.Shard, ErrInvalid)
		}
		if err := checkText("history_uuid", s.HistoryUUID, true); err != nil {
			return err
		}
		if s.MaxSeqNo < -1 {
			return fmt.Errorf("index %q shard %d: max_seq_no %d: %w", f.Index, i, s.MaxSeqNo, ErrInvalid)
		}
	}
	return nil
}

func (d *MySQLDump) validate() error {
	if err := d.Object.Validate(); err != nil {
		return fmt.Errorf("object: %w", err)
	}
	switch d.Compression {
	case CompressionZstd, CompressionGzip, CompressionNone:
	default:
		return fmt.Errorf("compression %q: want %s, %s or %s: %w", d.Compression, CompressionZstd, CompressionGzip, CompressionNone, ErrInvalid)
	}
	for i, db := range d.Databases {
		if err := checkText(fmt.Sprintf("databases[%d]", i), db, true); err != nil {
			return err
		}
	}
	for i, t := range d.Tables {
		if err := checkText(fmt.Sprintf("tables[%d].database", i), t.Database, true); err != nil {
			return err
		}
		if err := checkText(fmt.Sprintf("tables[%d].table", i), t.Table, true); err != nil {
			return err
		}
		if err := checkCount(fmt.Sprintf("tables[%d].rows", i), t.Rows); err != nil {
			return err
		}
	}
	return nil
}

// validate checks t; v2 says the manifest is of format 2.0 or newer, whose
// trees are listed per directory (Dir), where a 1.x tree has one List.
func (t *Tree) validate(v2 bool) error {
	if err := checkName("name", t.Name); err != nil {
		return err
	}
	if err := checkText("root", t.Root, false); err != nil {
		return err
	}
	if v2 {
		if t.List != (Ref{}) {
			return fmt.Errorf("tree %q: list is a field of format 1.x; a 2.0 tree is listed per directory (dir): %w", t.Name, ErrInvalid)
		}
		if err := t.Dir.Validate(); err != nil {
			return fmt.Errorf("tree %q dir: %w", t.Name, err)
		}
		if err := checkCount("dirs", t.Dirs); err != nil {
			return err
		}
	} else {
		if t.Dir != (Ref{}) || t.Dirs != 0 {
			return fmt.Errorf("tree %q: dir and dirs are fields of format 2.0, the manifest says 1.x: %w", t.Name, ErrInvalid)
		}
		if err := t.List.Validate(); err != nil {
			return fmt.Errorf("tree %q list: %w", t.Name, err)
		}
	}
	if err := checkCount("files", t.Files); err != nil {
		return err
	}
	return checkSize("bytes", t.Bytes)
}

// plausibleTime reports whether t is a time a real file could carry.
func plausibleTime(t time.Time) bool {
	return t.Year() >= 1 && t.Year() <= 9999
}
