package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestCronOnThreeNodes: cron starts backup on all three prod nodes at the
// same minute; the cluster service names node2, so node2 alone backs up
// and the other two exit 0 with one line. The leader moves to node3: the
// next cron minute's set is made by node3, complete although its capture
// cache is cold.
func TestCronOnThreeNodes(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	svc := testenv.NewClusterService(t, "node2", "", false)
	cron := func() map[string]string {
		var wg sync.WaitGroup
		var mu sync.Mutex
		out := map[string]string{}
		for _, node := range []string{"node1", "node2", "node3"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command(bin, "run", "--config", cfgFile)
				cmd.Env = append(os.Environ(), "BCP_BACKUP_NODE_NAME="+node, "BCP_BACKUP_LEADER_URL="+svc.URL,
					"BCP_BACKUP_LEADER_JSON_FIELD=cluster.leader", "BCP_BACKUP_STATE_DIR="+filepath.Join(w.dir, "state-"+node))
				b, err := cmd.CombinedOutput()
				mu.Lock()
				out[node] = fmt.Sprintf("exit %d\n%s", exitCodeOf(t, err), b)
				mu.Unlock()
			}()
		}
		wg.Wait()
		return out
	}
	check := func(leader string, seq uint64) {
		t.Helper()
		out := cron()
		for node, o := range out {
			if !strings.HasPrefix(o, "exit 0\n") {
				t.Fatalf("%s: %s", node, o)
			}
			if node != leader && !strings.Contains(o, "not the leader") {
				t.Fatalf("%s is not the leader but did not say so: %s", node, o)
			}
		}
		sets := w.sets(t)
		if uint64(len(sets)) != seq {
			t.Fatalf("after cron on 3 nodes: %d sets, want %d (one per cron minute)", len(sets), seq)
		}
		rep, err := w.verify(t, "")
		if err != nil || rep.Status != manifest.StatusComplete || rep.Sequence != seq || rep.Manifest.Producer.Host != leader {
			t.Fatalf("newest set: %+v, %v; want sequence %d, complete, made by %s", rep, err, seq, leader)
		}
	}
	check("node2", 1)
	svc.Move("node3")
	check("node3", 2)
}
