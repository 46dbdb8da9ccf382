package testenv_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestServicesDieWithTestBinary starts services in a child test binary,
// kills that binary with SIGKILL (as a panic or a go test timeout would
// end it, without any cleanup), and checks that its services go too.
func TestServicesDieWithTestBinary(t *testing.T) {
	if dir := os.Getenv("TESTENV_HELPER_DIR"); dir != "" {
		ctx := context.Background()
		if _, err := testenv.StartRedis(ctx, filepath.Join(dir, "redis"), testenv.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.StartSSHD(ctx, filepath.Join(dir, "sshd"), testenv.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.StartMariaDB(ctx, filepath.Join(dir, "mariadb"), testenv.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.StartElasticsearch(ctx, filepath.Join(dir, "es"), filepath.Join(dir, "repo"), testenv.StartOptions{}); err != nil {
			t.Fatal(err)
		}
		fmt.Println("STARTED")
		select {} // until killed
	}
	dir, err := os.MkdirTemp("", "bcp-orphan-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = testenv.StopDir(dir); _ = os.RemoveAll(dir) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestServicesDieWithTestBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "TESTENV_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	started := false
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "STARTED" {
			started = true
			break
		}
	}
	if !started {
		_ = cmd.Wait()
		t.Fatalf("helper did not start its services:\n%s", strings.Join(lines, "\n"))
	}
	running, err := testenv.Running(dir)
	if err != nil || len(running) != 4 {
		t.Fatalf("running = %v, %v; want 4 services", running, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	// The kernel delivers the parent-death signal at once, but a process
	// takes a moment to die; the bound only keeps a broken test from hanging.
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if running, _ = testenv.Running(dir); len(running) == 0 {
			return
		}
	}
	t.Fatalf("still running after the test binary was killed: %v", running)
}

func TestStopLeavesNothing(t *testing.T) {
	dir, err := os.MkdirTemp("", "bcp-stop-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	r, err := testenv.StartRedis(context.Background(), filepath.Join(dir, "redis"), testenv.StartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if running, _ := testenv.Running(dir); len(running) != 1 {
		t.Fatalf("running = %v, want the redis server", running)
	}
	r.Stop()
	if running, _ := testenv.Running(dir); len(running) != 0 {
		t.Fatalf("running after Stop = %v", running)
	}
}
