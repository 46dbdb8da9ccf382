package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// upWorld runs `up` with profile in a fresh directory and returns the
// directory and its world.json; the services are stopped when the test
// ends, whatever happens (detached services outlive the test binary).
func upWorld(t *testing.T, profile string) (string, testenv.WorldInfo) {
	t.Helper()
	root, err := os.MkdirTemp("", "bcp-tw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	dir := filepath.Join(root, "world")
	var out bytes.Buffer
	if err := runUp(context.Background(), upOptions{Dir: dir, Profile: profile}, &out); err != nil {
		if errors.Is(err, testenv.ErrMissing) {
			testenv.RequireCI(t, "a service of the world", err.Error())
		}
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	t.Cleanup(func() { _, _ = testenv.StopDir(dir) })
	b, err := os.ReadFile(filepath.Join(dir, "world.json"))
	if err != nil {
		t.Fatal(err)
	}
	var wi testenv.WorldInfo
	if err := json.Unmarshal(b, &wi); err != nil {
		t.Fatal(err)
	}
	return dir, wi
}

// TestUpDown starts a detached world the way make env-up does, checks that
// world.json describes services that answer, that a second up is refused,
// and that down leaves no process behind.
func TestUpDown(t *testing.T) {
	dir, wi := upWorld(t, "")
	ctx := context.Background()
	var out bytes.Buffer
	for _, name := range []string{"prod", "bcp"} {
		s, ok := wi.Sites[name]
		if !ok {
			t.Fatalf("world.json has no site %q", name)
		}
		resp, err := http.Get(s.ES.URL)
		if err != nil {
			t.Fatalf("%s elasticsearch: %v", name, err)
		}
		_ = resp.Body.Close()
		rc := redis.NewClient(&redis.Options{Addr: s.Redis.Addr})
		if err := rc.Ping(ctx).Err(); err != nil {
			t.Fatalf("%s redis: %v", name, err)
		}
		_ = rc.Close()
		for _, f := range []string{s.MariaDB.PasswordFile, s.MariaDB.DefaultsFile, s.SSH.KeyFile} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", f, fi.Mode().Perm())
			}
		}
	}
	env, err := os.ReadFile(filepath.Join(dir, "world.env"))
	if err != nil || !strings.Contains(string(env), "export WORLD_BCP_ES_URL=") {
		t.Fatalf("world.env: %v\n%s", err, env)
	}

	if err := runUp(ctx, upOptions{Dir: dir}, &out); !errors.Is(err, errAlreadyUp) || exitCode(err) != 6 {
		t.Fatalf("second up: %v (exit %d), want errAlreadyUp (exit 6)", err, exitCode(err))
	}

	running, err := testenv.Running(dir)
	if err != nil || len(running) != 8 {
		t.Fatalf("running = %v, %v; want 8 services", running, err)
	}
	if err := runDown(ctx, downOptions{Dir: dir}, &out); err != nil {
		t.Fatalf("down: %v\n%s", err, out.String())
	}
	for _, p := range running {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(p.Pid), "exe")); err == nil {
			if exe, _ := os.Readlink(filepath.Join("/proc", strconv.Itoa(p.Pid), "exe")); exe == p.Exe {
				t.Errorf("%s (pid %d) still runs after down", p.Name, p.Pid)
			}
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("down left %s behind: %v", dir, err)
	}
}
