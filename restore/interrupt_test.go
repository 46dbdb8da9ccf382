package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// hookHandler calls on with each log message before handing it on.
type hookHandler struct {
	slog.Handler
	on func(msg string)
}

func (h hookHandler) Handle(ctx context.Context, r slog.Record) error {
	h.on(r.Message)
	return h.Handler.Handle(ctx, r)
}
func (h hookHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return hookHandler{h.Handler.WithAttrs(a), h.on}
}
func (h hookHandler) WithGroup(n string) slog.Handler {
	return hookHandler{h.Handler.WithGroup(n), h.on}
}

// hooked is the fixture's env whose log calls on for every message, and a
// record of the messages.
func (f *fixture) hooked(on func(msg string)) (env, *logLines) {
	e := f.env()
	ll := &logLines{}
	e.log = slog.New(hookHandler{e.log.Handler(), func(msg string) {
		ll.add(msg)
		if on != nil {
			on(msg)
		}
	}})
	return e, ll
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logLines) has(sub string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// putBulk indexes n documents of about size bytes of random text into prod.
func (f *fixture) putBulk(idx string, n, size int) {
	f.t.Helper()
	docs := map[string]string{}
	b := make([]byte, size/2)
	for i := range n {
		_, _ = rand.Read(b)
		docs[fmt.Sprint(i)] = hex.EncodeToString(b)
	}
	f.putDocs(idx, docs)
}

// throttle limits the bcp node's recovery (and so restore) rate; "" lifts it.
func (f *fixture) throttle(rate string) {
	f.t.Helper()
	v := "null"
	if rate != "" {
		v = fmt.Sprintf("%q", rate)
	}
	resp, err := f.bcpES.Cluster.PutSettings(strings.NewReader(`{"transient":{"indices.recovery.max_bytes_per_sec":` + v + `}}`))
	testkit.Must(f.t, err)
	_ = resp.Body.Close()
	if resp.IsError() {
		f.t.Fatalf("throttle %s: %s", rate, resp.Status())
	}
}

// stopES sends SIGSTOP to the bcp Elasticsearch process (the JVM); the
// returned function (also run at cleanup) sends SIGCONT.
func (f *fixture) stopES() (resume func()) {
	f.t.Helper()
	pid := f.w.BCP.ES.Pid()
	testkit.Must(f.t, syscall.Kill(pid, syscall.SIGSTOP))
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	f.t.Cleanup(resume)
	return resume
}

// TestStoppedWhileWaitingForShards: SIGTERM while the watcher waits for
// Elasticsearch's restored shards is recorded as interrupted, with the
// stage; Elasticsearch goes on restoring; the next watcher notices that
// restore, cancels it, says so, and restores the set.
func TestStoppedWhileWaitingForShards(t *testing.T) {
	f := newFixture(t)
	f.createIndex("big", 1)
	f.putBulk("big", 400, 1000)
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".t (id INT PRIMARY KEY)")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "a.txt"), "alpha")
	set := f.publish()
	f.transfer()
	f.throttle("10kb") // the restore takes minutes: there is time to stop it
	t.Cleanup(func() { f.throttle("") })

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM) // as cli.Run does
	defer stop()
	e, _ := f.hooked(func(msg string) {
		if strings.Contains(msg, "restore started; waiting") {
			testkit.Must(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
		}
	})
	done := make(chan error, 1)
	go func() { done <- runWatch(ctx, watchOptions{Poll: time.Hour, Retry: time.Hour}, e, testWriter{t}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
	case <-time.After(3 * time.Minute): // a bound against hanging
		t.Fatal("the watcher did not stop after SIGTERM")
	}
	stop()

	l, err := ledger.Open(f.state)
	testkit.Must(t, err)
	rec, err := l.LastFailure()
	testkit.Must(t, err)
	if rec.Set != set || rec.Outcome != ledger.Interrupted || rec.Stage(stageES) == nil || rec.Stage(stageES).Outcome != ledger.Interrupted {
		t.Fatalf("ledger: %+v; want set %s interrupted in stage elasticsearch", rec, set)
	}
	if !strings.Contains(rec.Error, "stopped while waiting for restored shards") || strings.Contains(rec.Error, "after 1h") {
		t.Fatalf("ledger error %q does not say the run was stopped while waiting", rec.Error)
	}
	running, err := es.RestoresInProgress(context.Background(), f.bcpES)
	testkit.Must(t, err)
	t.Logf("restores in progress after the stop: %+v", running)
	if len(running) == 0 {
		t.Log("Elasticsearch finished the restore before the look; the restart below still must succeed")
	}
	var out bytes.Buffer
	testkit.Must(t, runStatus(context.Background(), statusOptions{}, f.env(), &out))
	t.Logf("status after the stop:\n%s", out.String())
	if !strings.Contains(out.String(), "interrupted") || !strings.Contains(out.String(), "MIXED") {
		t.Fatalf("status does not say the run was interrupted and the standby is mixed:\n%s", out.String())
	}

	// the restart: the restore left running is cancelled, and the set restored
	f.throttle("")
	e, logs := f.hooked(nil)
	looked := make(chan struct{}, 1)
	ctx2, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- runWatch(ctx2, watchOptions{Poll: time.Hour, Retry: time.Hour, AfterLook: func() {
			select {
			case looked <- struct{}{}:
			default:
			}
		}}, e, testWriter{t})
	}()
	select {
	case <-looked:
	case <-time.After(3 * time.Minute):
		t.Fatal("the second watcher did not look")
	}
	cancel()
	testkit.Must(t, <-done)
	f.checkLive(set)
	f.sameData("after the restart")
	if len(running) > 0 && !logs.has("left running by an earlier run") {
		t.Fatal("the restart did not say it found (and cancelled) the restore left running")
	}
	if recs, _ := l.Records(); len(recs) != 2 {
		t.Fatalf("ledger has %d records, want 2 (interrupted, ok): %+v", len(recs), recs)
	}
}

// TestHungElasticsearch: a stopped (SIGSTOP) Elasticsearch makes requests
// fail after es-request-timeout, with a message that says so, and the
// failed attempt is in the ledger; stopped during the shard wait, the wait
// keeps saying what it waits for and finishes once the node runs again.
func TestHungElasticsearch(t *testing.T) {
	f := newFixture(t)
	set := f.publishSmall()
	f.transfer()

	e := f.env()
	e.cfg.ESRequestTimeout = 2 * time.Second
	resume := f.stopES()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- runRun(context.Background(), runOptions{}, e, &bytes.Buffer{}) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		resume()
		<-done
		t.Fatal("restore against a hung Elasticsearch did not give up within 45s (es-request-timeout 2s)")
	}
	resume()
	t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
	// The restore preflight finds Elasticsearch not answering before
	// anything changed: a refusal (exit 3) that names the request timeout.
	if exitCode(err) != 3 || !strings.Contains(fmt.Sprint(err), "no answer within 2s") {
		t.Fatalf("exit %d, err %v; want 3 (preflight) naming the request timeout", exitCode(err), err)
	}
	l, lerr := ledger.Open(f.state)
	testkit.Must(t, lerr)
	if rec, lerr := l.LastFailure(); lerr != nil || rec.Set != set || rec.Stage(stagePrepare) == nil {
		t.Fatalf("the failed attempt is not in the ledger: %+v %v", rec, lerr)
	}

	// stopped while the restored shards are awaited
	e, logs := f.hooked(func(msg string) {
		if strings.Contains(msg, "restore started; waiting") {
			r := f.stopES()
			time.AfterFunc(7*time.Second, r)
		}
	})
	e.cfg.ESRequestTimeout = 2 * time.Second
	var out bytes.Buffer
	if err := runRun(context.Background(), runOptions{}, e, &out); err != nil {
		t.Fatalf("restore with Elasticsearch stopped for 7s: %v\n%s", err, out.String())
	}
	if !logs.has("elasticsearch did not answer") || !logs.has("still waiting") {
		t.Fatalf("the wait did not say what it waits for while Elasticsearch was stopped: %q", logs.lines)
	}
	f.checkLive(set)
	f.sameData("after the hung node came back")
}

// TestMixedStandbyStatus: after a failed files stage, Elasticsearch and
// MySQL hold the new set and the files the old one; status says the
// standby is mixed, which part holds which set, and what finishes it.
func TestMixedStandbyStatus(t *testing.T) {
	f := newFixture(t)
	old := f.publishSmall()
	f.transfer()
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatal(err)
	}
	f.putDocs("docs", map[string]string{"2": "two"})
	testkit.WriteFile(t, filepath.Join(f.prodTree, "b.txt"), "bravo")
	set := f.publish()
	f.transfer()

	e := f.env()
	blocker := filepath.Join(t.TempDir(), "not-a-dir")
	testkit.WriteFile(t, blocker, "x")
	e.cfg.StorageRoot = filepath.Join(blocker, "storage") // the files stage fails
	err := runRun(context.Background(), runOptions{}, e, &bytes.Buffer{})
	if !errors.Is(err, ErrStageFailed) {
		t.Fatalf("err %v, want the files stage failed", err)
	}
	var out bytes.Buffer
	testkit.Must(t, runStatus(context.Background(), statusOptions{}, f.env(), &out))
	t.Logf("status:\n%s", out.String())
	for _, want := range []string{"MIXED", "elasticsearch: set " + set, "mysql:         set " + set,
		"files:         set " + old + " (live), partly set " + set, "restores set " + set + " into every part"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status does not say %q", want)
		}
	}
	var js bytes.Buffer
	testkit.Must(t, runStatus(context.Background(), statusOptions{JSON: true}, f.env(), &js))
	var st statusReport
	testkit.Must(t, json.Unmarshal(js.Bytes(), &st))
	if !st.Mixed || len(st.Parts) != 3 || st.Parts[0].Set != set || st.Parts[2].Set != old {
		t.Fatalf("status --json: %s", js.String())
	}

	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	testkit.Must(t, runStatus(context.Background(), statusOptions{}, f.env(), &out))
	if strings.Contains(out.String(), "MIXED") {
		t.Fatalf("still mixed after a complete restore:\n%s", out.String())
	}
}

// TestFutureDatedSet: a validly signed set whose id and created time lie a
// year ahead is refused with exit 6, naming the set, its time, the clock
// and the allowed skew; one a little ahead (within the skew) restores, and
// status never shows a negative age.
func TestFutureDatedSet(t *testing.T) {
	f := newFixture(t)
	base := f.publishSmall()
	future := f.republish(base, 365*24*time.Hour)
	f.transfer()

	e := f.env()
	var out bytes.Buffer
	err := runRun(context.Background(), runOptions{}, e, &out)
	if exitCode(err) != 6 || !errors.Is(err, manifest.ErrFuture) {
		t.Fatalf("exit %d, err %v; want 6 (set from the future)", exitCode(err), err)
	}
	created, _ := manifest.SetIDTime(future)
	for _, want := range []string{future, created.Format(time.RFC3339), "this host's clock", "max-clock-skew", "5m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message does not name %q: %v", want, err)
		}
	}
	if n := f.indices(f.bcpES); len(n) > 0 {
		t.Fatalf("standby changed: %v", n)
	}

	// two minutes ahead: within the default skew; status shows no negative age
	soon := f.republish(base, 2*time.Minute)
	f.transfer()
	if _, err := f.restore(runOptions{SetID: soon}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	testkit.Must(t, runStatus(context.Background(), statusOptions{}, f.env(), &out))
	t.Logf("status:\n%s", out.String())
	if strings.Contains(out.String(), "(-") || !strings.Contains(out.String(), "(0s old; created") {
		t.Fatalf("status shows a negative age or does not flag the clock:\n%s", out.String())
	}
}

// republish publishes the manifest of set again, signed, with the next
// sequence and created ahead of now: a producer whose clock is wrong.
func (f *fixture) republish(set string, ahead time.Duration) string {
	f.t.Helper()
	b, err := os.ReadFile(manifest.Layout{Root: f.prodCh}.ManifestPath(set))
	testkit.Must(f.t, err)
	m, err := manifest.Decode(b)
	testkit.Must(f.t, err)
	f.seq++
	m.Sequence, m.Created = f.seq, time.Now().UTC().Add(ahead).Truncate(time.Second)
	id, err := manifest.Publish(context.Background(), manifest.Layout{Root: f.prodCh}, m, f.signer)
	testkit.Must(f.t, err)
	return id
}
