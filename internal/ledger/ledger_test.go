package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

func TestLedgerRecordsStagesAndLive(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Live(""); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("Live on empty ledger: %v, want ErrNoRecord", err)
	}
	r, err := l.Begin(Record{Set: "0000000001-20260101T000000Z", Sequence: 1, Channel: "prod-to-bcp"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Must(t, r.StageStart("elasticsearch"))
	testkit.Must(t, r.StageEnd("elasticsearch", "3 indices", nil))
	testkit.Must(t, r.StageStart("mysql"))
	testkit.Must(t, r.StageEnd("mysql", "", errors.New("mysql exited 1")))
	testkit.Must(t, r.StageSkipped("files", "an earlier stage failed"))
	testkit.Must(t, r.Finish(errors.New("stage mysql failed")))

	r2, err := l.Begin(Record{Set: "0000000002-20260101T010000Z", Sequence: 2, Channel: "prod-to-bcp"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Must(t, r2.Finish(nil))

	live, err := l.Live("")
	if err != nil || live.Sequence != 2 {
		t.Fatalf("Live = %+v, %v; want sequence 2", live, err)
	}
	fail, err := l.LastFailure()
	if err != nil || fail.Sequence != 1 {
		t.Fatalf("LastFailure = %+v, %v; want sequence 1", fail, err)
	}
	var got []string
	for _, s := range fail.Stages {
		got = append(got, s.Name+"="+s.Outcome)
	}
	want := []string{"elasticsearch=ok", "mysql=failed", "files=skipped"}
	if !slices.Equal(got, want) {
		t.Fatalf("stages = %v, want %v", got, want)
	}
	if st, _ := os.Stat(l.Path()); st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger mode %v, want 0600", st.Mode().Perm())
	}
}

func TestLedgerMarksInterrupted(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Begin(Record{Set: "a", Sequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Must(t, r.StageStart("elasticsearch"))
	// the process dies here; a new restore begins
	if _, err := l.Begin(Record{Set: "b", Sequence: 2}); err != nil {
		t.Fatal(err)
	}
	f, err := l.LastFailure()
	if err != nil {
		t.Fatal(err)
	}
	if f.Set != "a" || f.Outcome != Interrupted || f.Stages[0].Outcome != Interrupted {
		t.Fatalf("got %+v, want set a interrupted", f)
	}
}

func TestSetPins(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pins")
	testkit.Must(t, SetPins(dir, map[string]string{"s1": "live"}))
	testkit.Must(t, os.WriteFile(filepath.Join(dir, ".tmp-other"), nil, 0o644))
	testkit.Must(t, SetPins(dir, map[string]string{"s1": "live", "s2": "restoring"}))
	testkit.Must(t, SetPins(dir, map[string]string{"s2": "live", "": "restoring"}))
	pins, err := ReadPins(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins["s2"].Reason != "live" {
		t.Fatalf("pins = %+v, want only s2 live", pins)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-other")); err != nil {
		t.Fatalf("another writer's temporary file was removed: %v", err)
	}
	if err := SetPins(dir, map[string]string{"../x": "live"}); err == nil {
		t.Fatal("SetPins accepted a set id with a slash")
	}
}

// TestLedgerStoppedRunIsInterrupted: a run whose stage ends with a
// cancellation (SIGTERM) is recorded as interrupted, with that stage.
func TestLedgerStoppedRunIsInterrupted(t *testing.T) {
	l, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.Begin(Record{Set: "a", Sequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	stop := fmt.Errorf("stopped while waiting: %w", context.Canceled)
	testkit.Must(t, r.StageStart("elasticsearch"))
	testkit.Must(t, r.StageEnd("elasticsearch", "", stop))
	testkit.Must(t, r.Finish(stop))
	f, err := l.LastFailure()
	if err != nil {
		t.Fatal(err)
	}
	if f.Outcome != Interrupted || f.Stage("elasticsearch").Outcome != Interrupted {
		t.Fatalf("got %+v, want the run and its stage interrupted", f)
	}
}
