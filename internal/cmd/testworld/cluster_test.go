package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestUpDownCluster: `make env-up PROFILE=cluster` starts the 3-node prod
// and the 1-node bcp detached, world.json and world.env describe every
// node, and down stops all of them.
func TestUpDownCluster(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := runUp(ctx, upOptions{Dir: filepath.Join(t.TempDir(), "world"), Profile: "tiny"}, &out); !errors.Is(err, errUsage) {
		t.Fatalf("up -profile tiny: %v, want a usage error", err)
	}
	dir, wi := upWorld(t, "cluster")
	prod, bcp := wi.Sites["prod"].Cluster, wi.Sites["bcp"].Cluster
	if prod == nil || bcp == nil || len(prod.ESNodes) != 3 || len(prod.Apps) != 3 || len(bcp.ESNodes) != 1 || len(bcp.Apps) != 1 {
		t.Fatalf("world.json clusters: prod %+v, bcp %+v; want 3 and 3, 1 and 1", prod, bcp)
	}
	env, err := os.ReadFile(filepath.Join(dir, "world.env"))
	if err != nil || !strings.Contains(string(env), "export WORLD_PROD_APP_3_SSH_PORT=") || !strings.Contains(string(env), "export WORLD_BCP_MYSQL_REPLICA=") {
		t.Fatalf("world.env: %v\n%s", err, env)
	}
	running, err := testenv.Running(dir)
	// prod: 3 ES, 3 sshd, 2 MariaDB, 2 Redis; bcp: 1 ES, 1 sshd, 2 MariaDB, 2 Redis
	if err != nil || len(running) != 16 {
		t.Fatalf("running = %d services, %v; want 16", len(running), err)
	}
	if err := runDown(ctx, downOptions{Dir: dir}, &out); err != nil {
		t.Fatalf("down: %v\n%s", err, out.String())
	}
	if left, _ := testenv.Running(dir); len(left) != 0 {
		t.Fatalf("still running after down: %v", left)
	}
}
