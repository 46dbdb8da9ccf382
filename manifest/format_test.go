package manifest_test

import (
	"bytes"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func sampleManifest() *manifest.Manifest {
	return &manifest.Manifest{
		Version:  manifest.Version,
		Channel:  testChannel,
		Sequence: 42,
		Created:  time.Date(2026, 11, 25, 17, 30, 0, 123000000, time.FixedZone("CET", 3600)),
		Producer: manifest.Producer{Host: "prod-leader.example", Program: "backup", Version: "1.0.0"},
		Epoch:    3,
		Elasticsearch: &manifest.ESSnapshot{
			Repository: "bcp", Snapshot: "bcp-0000000042", UUID: "Zq3Xbc0mRh2x", State: "SUCCESS",
			Indices: []string{"squirro_v9_abc", "squirro_v9_def"}, Generation: 84,
			Files:     manifest.Ref{SHA256: strings.Repeat("ab", 32), Size: 1234},
			FileCount: 12, Bytes: 987654, Scope: []string{"squirro_*", "-squirro_tmp_*"}, Closed: []string{"squirro_v9_def"},
			Fingerprints: []manifest.IndexFingerprint{{Index: "squirro_v9_abc", UUID: "xH3kq9TtQ8mW0Bq2aQx1Yw",
				MappingVersion: 4, SettingsVersion: 2, AliasesVersion: 1,
				Shards: []manifest.ShardFingerprint{{Shard: 0, HistoryUUID: "b2TfXv5GRyq6o3HqzZ1wJg", MaxSeqNo: 1041}, {Shard: 1, HistoryUUID: "Qm9x4f2sS0q2H1c7yUeA8g", MaxSeqNo: -1}}}},
		},
		MySQL: &manifest.MySQLDump{
			Object:       manifest.Ref{SHA256: strings.Repeat("cd", 32), Size: 55555},
			Compression:  manifest.CompressionZstd,
			Databases:    []string{"squirro", "configuration"},
			Tables:       []manifest.TableCount{{Database: "squirro", Table: "projects", Rows: 7}},
			AllDatabases: true,
		},
		Trees: []manifest.Tree{
			{Name: "storage", Root: "/var/lib/squirro/storage", Dir: manifest.Ref{SHA256: strings.Repeat("ef", 32), Size: 400}, Files: 3, Bytes: 3000, Dirs: 2},
			{Name: "config", Root: "/etc/squirro", Dir: manifest.Ref{SHA256: strings.Repeat("01", 32), Size: 300}, Files: 2, Bytes: 200},
		},
	}
}

func sampleEntries() []manifest.Entry {
	mt := time.Date(2026, 11, 1, 8, 0, 0, 5, time.UTC)
	obj := strings.Repeat("9f", 32)
	return []manifest.Entry{
		{Path: "a", Type: manifest.TypeDir, Mode: 0o755, UID: 999, GID: 999, User: "sqprocess", Group: "squirro", MTime: mt},
		{Path: "a/b", Type: manifest.TypeFile, Mode: 0o640, UID: 999, GID: 999, MTime: mt, Size: 10, Object: obj},
		{Path: "a/link", Type: manifest.TypeSymlink, Mode: 0o777, MTime: mt, Target: "/etc/hosts"},
		{Path: "a.b", Type: manifest.TypeFile, Mode: uint32(fs.ModeSetuid | 0o755), MTime: mt, Size: 10, Object: obj},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file (run go test -update if the change is intended):\n%s", name, got)
	}
}

func TestManifestGoldenAndRoundTrip(t *testing.T) {
	m := sampleManifest()
	data, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "manifest.golden.json", data)
	back, err := manifest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := manifest.Encode(back)
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("round trip changed the manifest: %v\n%s", err, again)
	}
	if !back.Created.Equal(m.Created) || back.Trees[1].Name != "config" {
		t.Fatalf("decoded %+v", back)
	}
}

func TestListGoldenAndRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	lw := manifest.NewListWriter(&buf)
	for _, e := range sampleEntries() {
		if err := lw.WriteEntry(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Flush(); err != nil {
		t.Fatal(err)
	}
	golden(t, "entries.golden.jsonl", buf.Bytes())
	var back []manifest.Entry
	if err := manifest.ReadEntries(bytes.NewReader(buf.Bytes()), func(e manifest.Entry) error {
		back = append(back, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := sampleEntries()
	if len(back) != len(want) {
		t.Fatalf("read %d entries, want %d", len(back), len(want))
	}
	for i := range want {
		if back[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, back[i], want[i])
		}
	}
	if lw.Count() != 4 || lw.Bytes() != 20 {
		t.Errorf("count %d bytes %d", lw.Count(), lw.Bytes())
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := manifest.Encode(sampleManifest())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte {
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("sample has no %q", old)
		}
		return bytes.Replace(good, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name  string
		data  []byte
		want  error
		names string
	}{
		{"empty", nil, manifest.ErrInvalid, "malformed JSON"},
		{"truncated", good[:len(good)/2], manifest.ErrInvalid, "malformed JSON"},
		{"trailing data", append(bytes.Clone(good), "{}"...), manifest.ErrInvalid, "after the document"},
		{"unknown major", edit(`"version": "2.0"`, `"version": "3.0"`), manifest.ErrUnknownVersion, "3.0"},
		{"no version", edit(`"version": "2.0",`, ``), manifest.ErrInvalid, "version"},
		{"bad version", edit(`"version": "2.0"`, `"version": "1"`), manifest.ErrInvalid, "MAJOR.MINOR"},
		{"version not a string", edit(`"version": "2.0"`, `"version": 2.0`), manifest.ErrInvalid, "version"},
		{"1.1 field in a 1.0 manifest", edit(`"version": "2.0"`, `"version": "1.0"`), manifest.ErrInvalid, "format 1.1"},
		{"2.0 field in a 1.1 manifest", edit(`"version": "2.0"`, `"version": "1.1"`), manifest.ErrInvalid, "format 2.0"},
		{"a 1.x list in a 2.0 tree", edit(`"dir": {`, `"list": {`), manifest.ErrInvalid, "list is a field of format 1.x"},
		{"shards out of order", edit(`"shard": 1,`, `"shard": 2,`), manifest.ErrInvalid, "shards must be listed"},
		{"fingerprint of an index not in the set", edit(`"index": "squirro_v9_abc"`, `"index": "other"`), manifest.ErrInvalid, "not one of the indices"},
		{"scope pattern with a comma", edit(`"-squirro_tmp_*"`, `"a,b"`), manifest.ErrInvalid, "scope[1]"},
		{"empty scope pattern", edit(`"-squirro_tmp_*"`, `""`), manifest.ErrInvalid, "scope[1]"},
		{"closed index not in the set", edit(`"closed": [
      "squirro_v9_def"`, `"closed": [
      "squirro_v9_xyz"`), manifest.ErrInvalid, "closed[0]"},
		{"unknown field", edit(`"sequence": 42`, `"sequence": 42, "extra": 1`), manifest.ErrInvalid, "extra"},
		{"sequence zero", edit(`"sequence": 42`, `"sequence": 0`), manifest.ErrInvalid, "sequence"},
		{"negative sequence", edit(`"sequence": 42`, `"sequence": -1`), manifest.ErrInvalid, "malformed"},
		{"same source and target", edit(`"target": "bcp"`, `"target": "prod"`), manifest.ErrInvalid, "source and target"},
		{"channel name with slash", edit(`"name": "prod-to-bcp"`, `"name": "../x"`), manifest.ErrInvalid, "channel name"},
		{"bad sha", edit(strings.Repeat("cd", 32), strings.Repeat("CD", 32)), manifest.ErrInvalid, "hex"},
		{"absurd size", edit(`"size": 55555`, `"size": 999999999999999999`), manifest.ErrInvalid, "size"},
		{"negative size", edit(`"size": 55555`, `"size": -5`), manifest.ErrInvalid, "size"},
		{"snapshot not successful", edit(`"SUCCESS"`, `"PARTIAL"`), manifest.ErrInvalid, "PARTIAL"},
		{"unknown compression", edit(`"zstd"`, `"rar"`), manifest.ErrInvalid, "rar"},
		{"duplicate tree", edit(`"name": "config"`, `"name": "storage"`), manifest.ErrInvalid, "duplicate"},
		{"no time", edit(`"created": "2026-11-25T16:30:00.123Z"`, `"created": "0001-01-01T00:00:00Z"`), manifest.ErrInvalid, "created"},
		{"control character", edit(`"prod-leader.example"`, `"prod\u0007leader"`), manifest.ErrInvalid, "control"},
		{"too large", append(bytes.Repeat([]byte(" "), manifest.MaxManifestSize), good...), manifest.ErrInvalid, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := manifest.Decode(tt.data)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %q does not name %q", err, tt.names)
			}
		})
	}
}

// A newer minor version may add optional fields; this reader reads it.
func TestDecodeNewerMinor(t *testing.T) {
	good, _ := manifest.Encode(sampleManifest())
	data := bytes.Replace(good, []byte(`"version": "2.0"`), []byte(`"version": "2.7", "future": {"x": 1}`), 1)
	m, err := manifest.Decode(data)
	if err != nil || m.Version != "2.7" {
		t.Fatalf("newer minor: %v", err)
	}
}

func TestReadListRejects(t *testing.T) {
	obj := strings.Repeat("9f", 32)
	line := func(path string) string {
		return `{"path":"` + path + `","type":"file","mode":420,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","size":1,"object":"` + obj + `"}` + "\n"
	}
	dir := func(path string) string {
		return `{"path":"` + path + `","type":"dir","mode":493,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z"}` + "\n"
	}
	link := func(path string) string {
		return `{"path":"` + path + `","type":"symlink","mode":511,"uid":0,"gid":0,"mtime":"2026-01-01T00:00:00Z","target":"/tmp"}` + "\n"
	}
	tests := []struct {
		name, list, names string
	}{
		{"dot dot", line("a/../../etc/passwd"), `".."`},
		{"absolute", line("/etc/passwd"), "absolute"},
		{"NUL", line(`a\u0000b`), "NUL"},
		{"empty path", line(""), "empty"},
		{"empty element", line("a//b"), "empty element"},
		{"trailing slash", line("a/"), "empty element"},
		{"dot", line("./a"), `"."`},
		{"duplicate", line("a") + line("a"), "strictly increasing"},
		{"unsorted", line("b") + line("a"), "strictly increasing"},
		{"walk order", line("a.b") + line("a/b"), "strictly increasing"},
		{"no final newline", strings.TrimSuffix(line("a"), "\n"), "truncated"},
		{"line too long", line(strings.Repeat("x", manifest.MaxListLine)), "longer than"},
		{"unknown type", strings.Replace(line("a"), `"file"`, `"fifo"`, 1), "fifo"},
		{"dir with object", strings.Replace(line("a"), `"file"`, `"dir"`, 1), "no object"},
		{"mode bits", strings.Replace(line("a"), `420`, `1073742244`, 1), "mode"},
		{"unknown field", strings.Replace(line("a"), `{`, `{"x":1,`, 1), "x"},
		{"blank line", line("a") + "\n", "malformed"},
		{"negative size", strings.Replace(line("a"), `"size":1`, `"size":-1`, 1), "size"},
		// A list is a tree: an entry's parent is an earlier directory.
		{"below own symlink", link("evil") + line("evil/pwned"), `parent "evil" is not a directory`},
		{"below a file", line("f") + line("f/x"), `parent "f" is not a directory`},
		{"parent missing", line("evil/pwned"), `parent "evil" is not a directory`},
		{"parent of a sibling", dir("a") + line("a/x") + line("b/y"), `parent "b"`},
		{"grandparent missing", dir("a") + line("a/b/c"), `parent "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := manifest.ReadEntries(strings.NewReader(tt.list), func(manifest.Entry) error { return nil })
			if !errors.Is(err, manifest.ErrInvalid) {
				t.Fatalf("ReadEntries: %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.names) {
				t.Errorf("error %q does not name %q", err, tt.names)
			}
		})
	}
	// A well-formed tree: nested, sibling and top-level entries.
	good := dir("a") + dir("a/b") + line("a/b/c") + line("a/x") + link("a/y") + dir("a.d") + line("a.d/z") + line("f")
	var n int
	if err := manifest.ReadEntries(strings.NewReader(good), func(manifest.Entry) error { n++; return nil }); err != nil || n != 8 {
		t.Fatalf("well-formed tree: %d entries, %v", n, err)
	}
	// The writer refuses what the reader would refuse.
	lw := manifest.NewListWriter(&bytes.Buffer{})
	e := manifest.Entry{Path: "b", Type: manifest.TypeDir, MTime: time.Now()}
	if err := lw.WriteEntry(e); err != nil {
		t.Fatal(err)
	}
	e.Path = "a"
	if err := lw.WriteEntry(e); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("unsorted write: %v", err)
	}
	if err := lw.WriteESFile(manifest.ESFile{Path: "c", SHA256: obj}); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("mixed kinds: %v", err)
	}
}

func TestComparePaths(t *testing.T) {
	ordered := []string{"a", "a/b", "a/b/c", "a/c", "a.b", "a0", "b", "b/a"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := manifest.ComparePaths(ordered[i], ordered[j]); got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestSetID(t *testing.T) {
	at := time.Date(2026, 11, 25, 18, 4, 5, 999, time.FixedZone("X", 7200))
	id := manifest.SetID(42, at)
	if id != "0000000042-20261125T160405Z" {
		t.Fatalf("SetID = %s", id)
	}
	if seq, err := manifest.ParseSetID(id); err != nil || seq != 42 {
		t.Fatalf("ParseSetID = %d, %v", seq, err)
	}
	big := manifest.SetID(12345678901, at)
	if seq, err := manifest.ParseSetID(big); err != nil || seq != 12345678901 {
		t.Fatalf("ParseSetID(%s) = %d, %v", big, seq, err)
	}
	for _, bad := range []string{"", "42", "0000000000-20261125T160405Z", "000000042-20261125T160405Z", "00000000042-20261125T160405Z",
		"0000000042-20261125T160405", "0000000042_20261125T160405Z", "0000000042-20261325T160405Z", ".tmp-0000000042-20261125T160405Z", "+000000042-20261125T160405Z"} {
		if _, err := manifest.ParseSetID(bad); !errors.Is(err, manifest.ErrInvalid) {
			t.Errorf("ParseSetID(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestChannel(t *testing.T) {
	root := filepath.Join(t.TempDir(), "prod-to-bcp")
	if _, err := manifest.ReadChannel(root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing channel: %v", err)
	}
	must(t, manifest.WriteChannel(root, testChannel))
	must(t, manifest.WriteChannel(root, testChannel)) // idempotent
	got, err := manifest.ReadChannel(root)
	if err != nil || got != testChannel {
		t.Fatalf("ReadChannel = %v, %v", got, err)
	}
	l := manifest.Layout{Root: root}
	for _, d := range []string{l.ESDir(), l.ObjectsDir(), l.SetsDir(), l.PinsDir(), l.LocksDir()} {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", d, err)
		}
	}
	reversed := manifest.Channel{Name: "prod-to-bcp", Source: "bcp", Target: "prod"}
	if err := manifest.WriteChannel(root, reversed); !errors.Is(err, manifest.ErrNotForUs) {
		t.Fatalf("overwriting identity: %v", err)
	}
	if err := manifest.WriteChannel(root, manifest.Channel{Name: "x", Source: "a", Target: "a"}); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("bad identity: %v", err)
	}
	must(t, os.WriteFile(l.ChannelFile(), []byte(`{"name":"x","source":"a","target":"b","extra":1}`), 0o640))
	if _, err := manifest.ReadChannel(root); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("unknown field in channel.json: %v", err)
	}
}

func TestLayout(t *testing.T) {
	l := manifest.Layout{Root: "/mnt/bcp/prod-to-bcp"}
	sha := strings.Repeat("ab", 32)
	id := "0000000001-20261125T120000Z"
	for got, want := range map[string]string{
		l.ChannelFile():         "/mnt/bcp/prod-to-bcp/channel.json",
		l.ESDir():               "/mnt/bcp/prod-to-bcp/es",
		l.ObjectPath(sha):       "/mnt/bcp/prod-to-bcp/objects/ab/" + sha,
		l.ManifestPath(id):      "/mnt/bcp/prod-to-bcp/sets/" + id + "/manifest.json",
		l.SignaturePath(id):     "/mnt/bcp/prod-to-bcp/sets/" + id + "/manifest.json.sig",
		l.PinPath(id):           "/mnt/bcp/prod-to-bcp/pins/" + id,
		l.LocksDir():            "/mnt/bcp/prod-to-bcp/locks",
		manifest.ObjectRel(sha): "objects/ab/" + sha,
	} {
		if got != want {
			t.Errorf("%s, want %s", got, want)
		}
	}
}

// TestManifest10StillRead: a set written in format 1.0 (no scope, no
// all_databases) is read by this 1.1 reader, strictly, and says nothing
// about what the source lacks: no index or database is covered.
func TestManifest10StillRead(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "manifest-1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Decode(data)
	if err != nil {
		t.Fatalf("1.0 manifest: %v", err)
	}
	if m.Version != "1.0" || m.Elasticsearch.Scope != nil || m.MySQL.AllDatabases {
		t.Fatalf("decoded 1.0 manifest: version %s scope %v all_databases %v", m.Version, m.Elasticsearch.Scope, m.MySQL.AllDatabases)
	}
	for _, ix := range []string{"squirro_v9_abc", "squirro_v9_gone", "anything"} {
		if m.Elasticsearch.Covers(ix) {
			t.Errorf("a 1.0 set covers %s", ix)
		}
	}
	// an unknown field is still refused in a version this reader knows
	bad := bytes.Replace(data, []byte(`"sequence": 42`), []byte(`"sequence": 42, "extra": 1`), 1)
	if _, err := manifest.Decode(bad); !errors.Is(err, manifest.ErrInvalid) {
		t.Fatalf("unknown field in 1.0: %v", err)
	}
}

// TestScopeRoundTrip: the 1.1 fields survive Encode and Decode, and a set
// whose scope is every index covers every non-system name.
func TestScopeRoundTrip(t *testing.T) {
	m := sampleManifest()
	m.Elasticsearch.Scope = manifest.AllIndices
	data, err := manifest.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"version": "`+manifest.Version+`"`)) || !bytes.Contains(data, []byte(`"all_databases": true`)) {
		t.Fatalf("encoded:\n%s", data)
	}
	back, err := manifest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Elasticsearch.Scope, []string{"*"}) || !back.MySQL.AllDatabases {
		t.Fatalf("decoded scope %v all_databases %v", back.Elasticsearch.Scope, back.MySQL.AllDatabases)
	}
	if !back.Elasticsearch.Covers("squirro_v9_gone") || back.Elasticsearch.Covers(".kibana") {
		t.Fatal("scope * must cover every name but system indices")
	}
	m.MySQL.AllDatabases = false
	m.Elasticsearch.Scope = nil
	data, _ = manifest.Encode(m)
	if bytes.Contains(data, []byte("all_databases")) || bytes.Contains(data, []byte("scope")) {
		t.Fatalf("empty 1.1 fields are written:\n%s", data)
	}
}

func TestInScope(t *testing.T) {
	for _, tc := range []struct {
		name     string
		patterns []string
		index    string
		want     bool
	}{
		{"no scope", nil, "a", false},
		{"all", []string{"*"}, "squirro_v9_x", true},
		{"system index never", []string{"*"}, ".kibana_1", false},
		{"system index named", []string{".kibana*"}, ".kibana_1", false},
		{"prefix", []string{"squirro_*"}, "squirro_v9_x", true},
		{"other prefix", []string{"squirro_*"}, "logs-1", false},
		{"exact", []string{"a", "b"}, "b", true},
		{"excluded", []string{"squirro_*", "-squirro_tmp*"}, "squirro_tmp1", false},
		{"not excluded", []string{"squirro_*", "-squirro_tmp*"}, "squirro_v9", true},
		{"added back", []string{"squirro_*", "-squirro_tmp*", "squirro_tmp_keep"}, "squirro_tmp_keep", true},
		{"leading minus is a name", []string{"-x"}, "-x", true},
		{"glob characters are literal", []string{"a[b]?"}, "a[b]?", true},
		{"glob characters do not match", []string{"a[b]?"}, "ab1", false},
		{"middle star", []string{"a*z"}, "abcz", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := manifest.InScope(tc.patterns, tc.index); got != tc.want {
				t.Fatalf("InScope(%q, %q) = %v, want %v", tc.patterns, tc.index, got, tc.want)
			}
		})
	}
}
