package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// Outcomes of a record or a stage.
const (
	Running     = "running"
	OK          = "ok"
	Failed      = "failed"
	Skipped     = "skipped"
	Interrupted = "interrupted"
)

// MaxRecords bounds the ledger: older records are dropped when it grows past it.
const MaxRecords = 500

// ErrNoRecord is returned by Live and LastFailure when the ledger holds no
// such record yet.
var ErrNoRecord = errors.New("no such restore in the ledger")

// Stage is one stage of one restore.
type Stage struct {
	Name    string    `json:"name"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
	Outcome string    `json:"outcome"`
	Detail  string    `json:"detail,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// Record is one restore.
type Record struct {
	Set      string    `json:"set"`
	Sequence uint64    `json:"sequence"`
	Created  time.Time `json:"created,omitzero"` // when the set was made on the source: the recovery point
	Channel  string    `json:"channel"`
	From     string    `json:"from"` // the directory the set was read from
	Host     string    `json:"host"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end,omitzero"`
	Outcome  string    `json:"outcome"`
	Error    string    `json:"error,omitempty"`
	Stages   []Stage   `json:"stages"`
}

// Stage returns the named stage, or nil.
func (r *Record) Stage(name string) *Stage {
	for i := range r.Stages {
		if r.Stages[i].Name == name {
			return &r.Stages[i]
		}
	}
	return nil
}

type file struct {
	Records []Record `json:"records"`
}

// Ledger is the restore ledger at one path. Its methods are safe for
// concurrent use within a process; one process writes it at a time (the
// restore lock).
type Ledger struct {
	path string
	mu   sync.Mutex
}

// Open returns the ledger in dir (created 0700 if missing), file ledger.json.
func Open(dir string) (*Ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: create state directory %s: %w", dir, err)
	}
	return &Ledger{path: filepath.Join(dir, "ledger.json")}, nil
}

// Path is the ledger file.
func (l *Ledger) Path() string { return l.path }

func (l *Ledger) load() (file, error) {
	var f file
	b, err := os.ReadFile(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("ledger: read %s: %w", l.path, err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("ledger: parse %s: %w (move it aside to start a new ledger)", l.path, err)
	}
	return f, nil
}

func (l *Ledger) save(f file) error {
	if n := len(f.Records); n > MaxRecords {
		f.Records = f.Records[n-MaxRecords:]
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return manifest.WriteFileAtomic(l.path, append(b, '\n'), 0o600)
}

// Records returns every record, oldest first.
func (l *Ledger) Records() ([]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.load()
	return f.Records, err
}

// Live returns the newest successful restore from channel ("" = any
// channel): what the standby holds now.
func (l *Ledger) Live(channel string) (Record, error) {
	recs, err := l.Records()
	if err != nil {
		return Record{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Outcome == OK && (channel == "" || recs[i].Channel == channel) {
			return recs[i], nil
		}
	}
	return Record{}, ErrNoRecord
}

// LastFailure returns the newest failed or interrupted restore.
func (l *Ledger) LastFailure() (Record, error) {
	recs, err := l.Records()
	if err != nil {
		return Record{}, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Outcome == Failed || recs[i].Outcome == Interrupted {
			return recs[i], nil
		}
	}
	return Record{}, ErrNoRecord
}

// Run is one restore in progress. Its methods record stages; Finish closes it.
type Run struct {
	l   *Ledger
	rec Record
	now func() time.Time
}

// Begin appends rec with outcome Running. Records still running from an
// earlier process are marked Interrupted.
func (l *Ledger) Begin(rec Record) (*Run, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := l.load()
	if err != nil {
		return nil, err
	}
	for i := range f.Records {
		if f.Records[i].Outcome == Running {
			f.Records[i].Outcome = Interrupted
			if f.Records[i].Error == "" {
				f.Records[i].Error = "the restore stopped before it finished (process killed or machine restarted)"
			}
			for j := range f.Records[i].Stages {
				if f.Records[i].Stages[j].Outcome == Running {
					f.Records[i].Stages[j].Outcome = Interrupted
				}
			}
		}
	}
	if rec.Start.IsZero() {
		rec.Start = time.Now().UTC()
	}
	if rec.Host == "" {
		rec.Host, _ = os.Hostname()
	}
	rec.Outcome = Running
	f.Records = append(f.Records, rec)
	if err := l.save(f); err != nil {
		return nil, err
	}
	return &Run{l: l, rec: rec, now: func() time.Time { return time.Now().UTC() }}, nil
}

// Record returns a copy of the record as it stands.
func (r *Run) Record() Record {
	rec := r.rec
	rec.Stages = append([]Stage(nil), r.rec.Stages...)
	return rec
}

// update rewrites this run's record (found by set and start time).
func (r *Run) update() error {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	f, err := r.l.load()
	if err != nil {
		return err
	}
	for i := len(f.Records) - 1; i >= 0; i-- {
		if f.Records[i].Set == r.rec.Set && f.Records[i].Start.Equal(r.rec.Start) {
			f.Records[i] = r.Record()
			return r.l.save(f)
		}
	}
	f.Records = append(f.Records, r.Record())
	return r.l.save(f)
}

// StageStart records that a stage started.
func (r *Run) StageStart(name string) error {
	r.rec.Stages = append(r.rec.Stages, Stage{Name: name, Start: r.now(), Outcome: Running})
	return r.update()
}

// StageEnd records a stage's end: OK when err is nil, Interrupted when err
// is a cancellation (the process was stopped), Failed otherwise.
func (r *Run) StageEnd(name, detail string, err error) error {
	s := r.rec.Stage(name)
	if s == nil {
		r.rec.Stages = append(r.rec.Stages, Stage{Name: name, Start: r.now()})
		s = &r.rec.Stages[len(r.rec.Stages)-1]
	}
	s.End = r.now()
	s.Detail = detail
	s.Outcome = outcome(err)
	if err != nil {
		s.Error = err.Error()
	}
	return r.update()
}

// StageSkipped records a stage that was not run (or, if it was started,
// found nothing to do), and why.
func (r *Run) StageSkipped(name, why string) error {
	now := r.now()
	if s := r.rec.Stage(name); s != nil && s.Outcome == Running {
		s.End, s.Outcome, s.Detail = now, Skipped, why
		return r.update()
	}
	r.rec.Stages = append(r.rec.Stages, Stage{Name: name, Start: now, End: now, Outcome: Skipped, Detail: why})
	return r.update()
}

// Finish closes the record: OK when err is nil, Interrupted when err is a
// cancellation (the process was stopped), Failed otherwise.
func (r *Run) Finish(err error) error {
	r.rec.End = r.now()
	r.rec.Outcome = outcome(err)
	if err != nil {
		r.rec.Error = err.Error()
	}
	return r.update()
}

// outcome classifies how a stage or restore ended.
func outcome(err error) string {
	switch {
	case err == nil:
		return OK
	case errors.Is(err, context.Canceled):
		return Interrupted
	}
	return Failed
}
