package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
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
	return testkit.WriteConfig(t, filepath.Join(w.dir, "backup.toml"), map[string]any{
		"channel": c.Channel, "site": "prod", "role-file": c.RoleFile, "state-dir": c.StateDir, "node-name": "node1",
		"es-url": c.ES.URLs, "es-repository": c.ESRepo, "es-indices": c.ESIndices,
		"mysql-host": c.MySQL.Host, "mysql-port": c.MySQL.Port, "mysql-user": c.MySQL.User, "mysql-password-file": c.MySQL.PasswordFile,
		"storage-root": c.StorageRoot, "sign-key": c.SignKey, "log-interval": "1ms",
	})
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
	testkit.WriteFile(t, filepath.Join(w.dir, "standby-role"), "standby\n")
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
