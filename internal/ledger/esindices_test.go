package ledger

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestESIndices: what the ledger knows of the standby's indices survives a
// reopen, is written 0600 beside the ledger, and forgetting an index
// removes only it; a damaged file is an error that says what to do.
func TestESIndices(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ix, err := l.ESIndices(); err != nil || len(ix) != 0 {
		t.Fatalf("empty ledger: %v, %v", ix, err)
	}
	fp := manifest.IndexFingerprint{Index: "a", UUID: "u", MappingVersion: 1, SettingsVersion: 1, AliasesVersion: 1,
		Shards: []manifest.ShardFingerprint{{HistoryUUID: "h", MaxSeqNo: 7}}}
	in := ESIndices{"a": {Channel: "prod-to-bcp", Set: "s", Sequence: 3, Source: fp, Standby: fp}, "b": {Channel: "prod-to-bcp"}}
	if err := l.SetESIndices(in); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, esFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", esFile, fi, err)
	}
	l2, err := Open(dir)
	testkit.Must(t, err)
	if err := l2.ForgetESIndices([]string{"b", "not-there"}); err != nil {
		t.Fatal(err)
	}
	got, err := l2.ESIndices()
	if err != nil || len(got) != 1 || got["a"].Sequence != 3 || got["a"].Standby.Shards[0].MaxSeqNo != 7 {
		t.Fatalf("after forgetting b: %+v, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, esFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.ESIndices(); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("damaged file: %v, want an error saying what to do", err)
	}
}
