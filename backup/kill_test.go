package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/elastic/go-elasticsearch/v7/esapi"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// liveRun is the built binary running `backup run`, its stderr (the log)
// read line by line.
type liveRun struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	log   strings.Builder
}

func startRun(t *testing.T, bin, cfgFile string, env ...string) *liveRun {
	t.Helper()
	r := &liveRun{cmd: exec.Command(bin, "run", "--config", cfgFile), lines: make(chan string, 1024)}
	r.cmd.Env = append(os.Environ(), env...)
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.log.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.lines <- sc.Text():
			default: // nobody waits for lines any more
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	return r
}

func (r *liveRun) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// waitLine waits for a log line containing s; it fails the test if the
// run ends first.
func (r *liveRun) waitLine(t *testing.T, s string) {
	t.Helper()
	for l := range r.lines {
		if strings.Contains(l, s) {
			return
		}
	}
	_ = r.cmd.Wait() // how it ended is in ProcessState
	t.Fatalf("the run ended (%v) without logging %q:\n%s", r.cmd.ProcessState, s, r.logText())
}

// kill9 kills the run with SIGKILL and waits for it.
func (r *liveRun) kill9(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(r.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = r.cmd.Wait() // how it ended is in ProcessState
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed by SIGKILL but ended: %v\n%s", r.cmd.ProcessState, r.logText())
	}
}

// afterKill checks what a kill -9 in the middle of a run must leave: no
// set for the killed run, every earlier set complete, the killed run's lock
// still there (so the next run has to take it over); then the next run
// succeeds, takes the stale lock over and publishes a complete set. It
// returns the next run's output.
func afterKill(t *testing.T, w *world, bin, cfgFile string, killed *liveRun, earlier []string, env ...string) string {
	t.Helper()
	if s := w.sets(t); len(s) != len(earlier) {
		t.Fatalf("sets after kill -9: %v, want only %v", s, earlier)
	}
	for _, id := range earlier {
		if rep, err := w.verify(t, id); err != nil || rep.Status != manifest.StatusComplete {
			t.Fatalf("earlier set %s after kill -9: %v, %v", id, rep, err)
		}
	}
	lockFile := filepath.Join(w.channel, "locks", "backup.lock")
	b, err := os.ReadFile(lockFile)
	if err != nil {
		t.Fatalf("the killed run left no lock (was it killed mid-run?): %v", err)
	}
	var held lock.Info
	if err := json.Unmarshal(b, &held); err != nil || held.PID != killed.cmd.Process.Pid {
		t.Fatalf("lock after kill -9 is %s (%v), want the killed pid %d", b, err, killed.cmd.Process.Pid)
	}
	cmd := exec.Command(bin, "run", "--config", cfgFile)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run after kill -9: %v\n%s", err, out)
	}
	if _, err := os.Stat(lockFile); !os.IsNotExist(err) {
		t.Fatalf("the next run did not take the stale lock over and release it: %v", err)
	}
	rep, err := w.verify(t, "")
	if err != nil || rep.Status != manifest.StatusComplete || rep.Sequence != uint64(len(earlier)+1) {
		t.Fatalf("set after kill -9: %v, %v\n%s", rep, err, out)
	}
	for _, id := range earlier {
		if rep, err := w.verify(t, id); err != nil || rep.Status != manifest.StatusComplete {
			t.Fatalf("earlier set %s after the next run: %v, %v", id, rep, err)
		}
	}
	return string(out)
}

// largeFile adds a 256 MiB file to the storage tree, which makes the
// files stage last long enough to be killed in.
func (w *world) largeFile(t *testing.T) {
	t.Helper()
	f, err := os.Create(filepath.Join(w.storage, "docs", "large.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// tempObjects lists the .tmp-* files in the object store: an object being
// written.
func tempObjects(t *testing.T, channel string) []string {
	t.Helper()
	var tmp []string
	err := filepath.WalkDir(filepath.Join(channel, "objects"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), manifest.TempPrefix) {
			tmp = append(tmp, p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return tmp
}

// TestKill9Files kills the built binary in the middle of the files stage.
func TestKill9Files(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	first := w.mustRun(t)
	w.largeFile(t)
	r := startRun(t, bin, cfgFile)
	r.waitLine(t, "start files storage")
	r.kill9(t)
	afterKill(t, w, bin, cfgFile, r, []string{first.SetID})
}

// TestKill9MySQL kills the built binary while mysqldump streams into the
// object store: the half-written object stays a .tmp-* file that no set
// names.
func TestKill9MySQL(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	first := w.mustRun(t)
	// Some 80 MB of rows make the dump last long enough to be killed in.
	db := w.db.DB(t)
	for _, q := range []string{"CREATE TABLE squirro.big (id INT PRIMARY KEY, v MEDIUMTEXT)",
		"CREATE TABLE squirro.d (n INT)",
		"INSERT INTO squirro.d VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)",
		"INSERT INTO squirro.big SELECT a.n+10*b.n+100*c.n+1000*e.n+10000*f.n, REPEAT(MD5(RAND()), 64) FROM squirro.d a, squirro.d b, squirro.d c, squirro.d e, (SELECT n FROM squirro.d WHERE n < 4) f"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	if tmp := tempObjects(t, w.channel); len(tmp) != 0 {
		t.Fatalf("temporary objects before the run: %v", tmp)
	}
	r := startRun(t, bin, cfgFile)
	r.waitLine(t, "progress mysqldump") // bytes have streamed
	r.kill9(t)
	if tmp := tempObjects(t, w.channel); len(tmp) == 0 {
		t.Fatalf("no half-written object after kill -9: was the dump over?\n%s", r.logText())
	}
	out := afterKill(t, w, bin, cfgFile, r, []string{first.SetID})
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "stage done") && strings.Contains(l, "stage=mysql") {
			t.Logf("next run: %s", l)
		}
	}
}

// TestKill9Elasticsearch kills the built binary while its snapshot runs.
// Elasticsearch goes on with the snapshot on its own; the next run must
// abort it (it holds the lock, so no live run owns it), say so, and take
// its own. The repository is registered by hand with a low
// max_snapshot_bytes_per_sec (an operator's throttle) so that the snapshot
// of a few MB is still running when the next run gets to it.
func TestKill9Elasticsearch(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	c := w.es.Client(t)
	body := fmt.Sprintf(`{"type":"fs","settings":{"location":%q,"compress":true,"max_snapshot_bytes_per_sec":"100kb"}}`, w.cfg.ESRepoLocation)
	res, err := esapi.SnapshotCreateRepositoryRequest{Repository: w.cfg.ESRepo, Body: strings.NewReader(body)}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("register throttled repository: %v %v", err, res)
	}
	_ = res.Body.Close()
	t.Cleanup(func() {
		_, _ = esapi.SnapshotDeleteRepositoryRequest{Repository: []string{w.cfg.ESRepo}}.Do(context.Background(), c)
	})
	cfgFile := w.configFile(t)
	first := w.mustRun(t)
	// About 1 MB of incompressible documents: some 10 s at 100 kB/s.
	var bulk strings.Builder
	buf := make([]byte, 1500)
	for i := 0; i < 300; i++ {
		_, err := rand.Read(buf)
		testkit.Must(t, err)
		fmt.Fprintf(&bulk, "{\"index\":{}}\n{\"blob\":%q}\n", base64.StdEncoding.EncodeToString(buf))
	}
	res, err = esapi.BulkRequest{Index: w.index, Body: strings.NewReader(bulk.String()), Refresh: "true"}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("bulk index: %v %v", err, res)
	}
	_ = res.Body.Close()
	res, err = esapi.IndicesForcemergeRequest{Index: []string{w.index}, MaxNumSegments: func(n int) *int { return &n }(1)}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("force merge: %v %v", err, res)
	}
	_ = res.Body.Close()

	r := startRun(t, bin, cfgFile)
	// The snapshot's progress begins once Elasticsearch reports it IN_PROGRESS.
	r.waitLine(t, "start elasticsearch snapshot")
	r.kill9(t)
	ec := es.Wrap(c, w.es.URL)
	snaps, err := ec.Snapshots(context.Background(), w.cfg.ESRepo)
	if err != nil {
		t.Fatal(err)
	}
	var killed es.Snapshot
	for _, s := range snaps {
		if s.Name != snapshotName(first.SetID) {
			killed = s
		}
	}
	if killed.Name == "" || killed.State != "IN_PROGRESS" {
		t.Fatalf("the killed run's snapshot is %+v, want it still IN_PROGRESS (is the repository throttled?) among %v", killed, snaps)
	}
	out := afterKill(t, w, bin, cfgFile, r, []string{first.SetID})
	if !strings.Contains(out, "aborting a snapshot left running by an earlier run") || !strings.Contains(out, killed.Name) {
		t.Errorf("the next run did not say it aborted %s:\n%s", killed.Name, out)
	}
	// What is left in the repository is exactly the snapshots of the two
	// sets (the next run may reuse the killed run's name if it started in
	// the same second, never its snapshot).
	snaps, err = ec.Snapshots(context.Background(), w.cfg.ESRepo)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, s := range w.sets(t) {
		rep, err := w.verify(t, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		want[rep.Manifest.Elasticsearch.UUID] = true
	}
	for _, s := range snaps {
		if !want[s.UUID] || s.State != "SUCCESS" || s.UUID == killed.UUID {
			t.Errorf("snapshot %s (%s, %s) left in the repository; want only those of the sets", s.Name, s.UUID, s.State)
		}
	}
	if len(snaps) != len(want) {
		t.Errorf("repository holds %d snapshots, want the %d of the sets: %+v", len(snaps), len(want), snaps)
	}
}

// blockingAgent is an ssh-agent whose signing blocks until released: the
// run is then in its publish step with every object stored.
type blockingAgent struct {
	agent.Agent
	asked   chan struct{}
	release chan struct{}
	once    sync.Once
}

func (a *blockingAgent) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	a.once.Do(func() { close(a.asked) })
	<-a.release
	return a.Agent.Sign(key, data)
}

// serveAgent serves a on a unix socket and returns its path.
func serveAgent(t *testing.T, a agent.Agent) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(a, conn); _ = conn.Close() }()
		}
	}()
	return sock
}

// TestKill9Publish kills the built binary while it publishes: every object
// of the set is stored and the manifest is being signed (by an ssh-agent
// that holds the request until the kill).
func TestKill9Publish(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	first := w.mustRun(t)
	pemKey, err := os.ReadFile(w.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	ring := agent.NewKeyring()
	if err := ring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	a := &blockingAgent{Agent: ring, asked: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() {
		select {
		case <-a.release:
		default:
			close(a.release)
		}
	})
	sock := serveAgent(t, a)
	w.cfg.SignKey = "" // sign with the agent
	cfgFile := w.configFile(t)
	testkit.WriteFile(t, filepath.Join(w.storage, "docs", "3", "c.pdf"), "pdf-three") // something new to publish

	r := startRun(t, bin, cfgFile, "SSH_AUTH_SOCK="+sock)
	select {
	case <-a.asked:
	case <-waitExit(r):
		t.Fatalf("the run ended (%v) without asking to sign:\n%s", r.cmd.ProcessState, r.logText())
	}
	r.kill9(t)
	if entries, err := os.ReadDir(filepath.Join(w.channel, "sets")); err != nil || len(entries) != 1 {
		t.Fatalf("sets/ after kill -9 in publish: %v, %v", entries, err)
	}
	close(a.release)
	afterKill(t, w, bin, cfgFile, r, []string{first.SetID}, "SSH_AUTH_SOCK="+sock)
}

// waitExit is closed when the run's log ends (the process is gone).
func waitExit(r *liveRun) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range r.lines {
		}
		close(done)
	}()
	return done
}
