package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
)

// buildBinary builds the program into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "backup")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// configFile writes the world's settings as a TOML config file, the way an
// operator would.
func (w *world) configFile(t *testing.T) string {
	t.Helper()
	c := w.cfg
	toml := fmt.Sprintf(`channel = %q
site = "prod"
role-file = %q
state-dir = %q
node-name = "node1"
es-url = [%q]
es-repository = %q
es-indices = [%q]
mysql-host = %q
mysql-port = %d
mysql-user = %q
mysql-password-file = %q
storage-root = %q
sign-key = %q
log-interval = "1ms"
`, c.Channel, c.RoleFile, c.StateDir, c.ES.URLs[0], c.ESRepo, c.ESIndices[0], c.MySQL.Host, c.MySQL.Port, c.MySQL.User, c.MySQL.PasswordFile, c.StorageRoot, c.SignKey)
	p := filepath.Join(w.dir, "backup.toml")
	writeFile(t, p, toml)
	return p
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("run binary: %v", err)
	return -1
}

func TestBinaryExitCodes(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout string
		stderr string
	}{
		{"check ok", []string{"check"}, nil, 0, "ok    channel direction", ""},
		{"run ok", []string{"run"}, nil, 0, "published", ""},
		{"check es down (env beats file)", []string{"check"}, []string{"BCP_BACKUP_ES_URL=http://127.0.0.1:1"}, 3, "FAIL  elasticsearch health", "127.0.0.1:1"},
		{"run es down", []string{"run"}, []string{"BCP_BACKUP_ES_URL=http://127.0.0.1:1"}, 3, "", "preflight"},
		{"run standby", []string{"run"}, []string{"BCP_BACKUP_ROLE_FILE=" + filepath.Join(w.dir, "standby-role")}, 6, "", "standby"},
		{"run not the leader", []string{"run", "--leader-mode", "static", "--leader-host", "node2"}, nil, 0, "not the leader", ""},
		{"usage", []string{"run", "--no-such-flag"}, nil, 2, "", "no-such-flag"},
		{"list json", []string{"list", "--json"}, nil, 0, `"status": "signed"`, ""},
	}
	writeFile(t, filepath.Join(w.dir, "standby-role"), "standby\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append(tt.args, "--config", cfgFile)...)
			cmd.Env = append(os.Environ(), tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := exitCodeOf(t, cmd.Run())
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
}

// TestKill9 kills the built binary in the middle of the files stage: no
// set is published, the lock it leaves is stale and taken over, and the
// next run succeeds.
func TestKill9(t *testing.T) {
	bin := buildBinary(t)
	w := newWorld(t)
	cfgFile := w.configFile(t)
	first := w.mustRun(t)
	// A large file makes the files stage last long enough to be killed in.
	f, err := os.Create(filepath.Join(w.storage, "docs", "large.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(bin, "run", "--config", cfgFile)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen strings.Builder
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() {
		seen.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "start files storage") {
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			killed = true
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	cmd.Wait()
	if !killed {
		t.Fatalf("the run never reached the files stage:\n%s", seen.String())
	}
	if s := w.sets(t); len(s) != 1 {
		t.Fatalf("sets after kill -9: %v", s)
	}
	if _, err := os.Stat(filepath.Join(w.channel, "locks", "backup.lock")); err != nil {
		t.Fatalf("the killed run left no lock (was it killed mid-run?): %v", err)
	}
	if rep, err := w.verify(t, first.SetID); err != nil || rep.Status != manifest.StatusComplete {
		t.Fatalf("earlier set after kill -9: %v, %v", rep, err)
	}
	start := time.Now()
	out, err := exec.Command(bin, "run", "--config", cfgFile).CombinedOutput()
	if err != nil {
		t.Fatalf("run after kill -9: %v\n%s", err, out)
	}
	t.Logf("run after kill -9 took %s", time.Since(start).Round(time.Millisecond))
	if rep, err := w.verify(t, ""); err != nil || rep.Status != manifest.StatusComplete || rep.Sequence != 2 {
		t.Fatalf("set after kill -9: %v, %v", rep, err)
	}
}
