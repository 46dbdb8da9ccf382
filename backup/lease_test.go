package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestLeaderKilledMidRun: cron runs backup on two prod nodes; the cluster
// service names node1, which is killed (kill -9, as when its host dies) in
// the middle of a run. The service moves the leader to node2. node2's run
// is refused while node1's lease runs (exit 6, naming node1), node1 - back
// but no longer the leader - does nothing, and once the lease expired
// node2's run takes the lock over and publishes a complete set, with its
// own cold capture cache.
func TestLeaderKilledMidRun(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	svc := testenv.NewClusterService(t, "node1", "", false)
	const lease = 6 * time.Second
	common := []string{"BCP_BACKUP_LEADER_URL=" + svc.URL, "BCP_BACKUP_LEADER_JSON_FIELD=cluster.leader", "BCP_BACKUP_LOCK_LEASE=" + lease.String()}
	node1 := append([]string{"BCP_BACKUP_NODE_NAME=node1"}, common...)
	node2 := append([]string{"BCP_BACKUP_NODE_NAME=node2", "BCP_BACKUP_STATE_DIR=" + filepath.Join(w.dir, "state-node2")}, common...)
	run := func(env []string) (string, int) {
		cmd := exec.Command(bin, "run", "--config", cfgFile)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), exitCodeOf(t, err)
	}
	if out, code := run(node2); code != 0 || !strings.Contains(out, "not the leader") {
		t.Fatalf("node2 while node1 leads: exit %d, want 0 and one line saying it is not the leader:\n%s", code, out)
	}
	if out, code := run(node1); code != 0 {
		t.Fatalf("node1's first run: exit %d\n%s", code, out)
	}
	w.largeFile(t)
	r := startRun(t, bin, cfgFile, node1...)
	r.waitLine(t, "start files storage")
	r.kill9(t)
	killed := time.Now()
	svc.Move("node2")

	out, code := run(node2)
	if time.Since(killed) < lease && (code != 6 || !strings.Contains(out, "node1") || !strings.Contains(out, "lease")) {
		t.Fatalf("node2 within node1's lease: exit %d, want 6 naming node1 and the lease:\n%s", code, out)
	}
	if out, code := run(node1); code != 0 || !strings.Contains(out, "not the leader") {
		t.Fatalf("node1 after the leader moved: exit %d, want 0, not the leader:\n%s", code, out)
	}
	time.Sleep(time.Until(killed.Add(lease + time.Second)))
	out, code = run(node2)
	if code != 0 {
		t.Fatalf("node2 after node1's lease expired: exit %d, want 0:\n%s", code, out)
	}
	rep, err := w.verify(t, "")
	if err != nil || rep.Status != manifest.StatusComplete || rep.Sequence != 2 || rep.Manifest.Producer.Host != "node2" {
		t.Fatalf("set after the take-over: %+v, %v; want sequence 2, complete, made by node2", rep, err)
	}
	if _, err := os.Stat(filepath.Join(w.channel, "locks", "backup.lock")); !os.IsNotExist(err) {
		t.Fatalf("node2 did not release the lock it took over: %v", err)
	}
}
