package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestCheckRenamed: restore's former setting names are refused, naming the
// new one, in the config file and in the environment; the new names pass.
func TestCheckRenamed(t *testing.T) {
	dir := t.TempDir()
	file := func(body string) string {
		t.Helper()
		p := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".toml")
		testkit.Must(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	noEnv := func(string) (string, bool) { return "", false }
	tests := []struct {
		name   string
		config string
		env    map[string]string
		says   string // "" = accepted
	}{
		{"new names", "storage-root = \"/s\"\nconfig-root = \"/c\"\nfiles-via-ssh = true\nmysql-defaults-file = \"/m\"\n", nil, ""},
		{"no config file", "", nil, ""},
		{"old key in file", "storage-dir = \"/s\"\n", nil, `"storage-dir" is now "storage-root"`},
		{"old bool key in file", "files-over-ssh = true\n", nil, `"files-over-ssh" is now "files-via-ssh"`},
		{"old env var", "", map[string]string{"BCP_RESTORE_MYSQL_OVER_SSH": "true"}, "BCP_RESTORE_MYSQL_OVER_SSH is now BCP_RESTORE_MYSQL_VIA_SSH"},
		{"es-delete-patterns is gone", "es-delete-patterns = [\"squirro_*\"]\n", nil, `"es-delete-patterns" is now "es-keep" (the set now says which indices prod no longer has`},
		{"keep lists", "es-keep = [\"standby_*\"]\nmysql-keep = [\"reports\"]\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ""
			if tt.config != "" {
				cfg = file(tt.config)
			}
			env := noEnv
			if tt.env != nil {
				env = func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			}
			err := prog.CheckRenamed(cfg, env)
			if tt.says == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("got %v, want a usage error saying %q", err, tt.says)
			}
		})
	}
}

// TestCheckKnownHosts: when SSH is needed, a missing known_hosts file (the
// default path on a machine without it) fails with a message naming it and
// what needs SSH; when SSH is not needed nothing is checked.
func TestCheckKnownHosts(t *testing.T) {
	present := filepath.Join(t.TempDir(), "known_hosts")
	testkit.Must(t, os.WriteFile(present, nil, 0o644))
	missing := filepath.Join(t.TempDir(), "known_hosts")
	tests := []struct {
		name  string
		path  string
		what  []string
		says  string // "" = accepted
		usage bool
	}{
		{"ssh not needed", missing, nil, "", false},
		{"present", present, []string{"files-via-ssh"}, "", false},
		{"missing", missing, []string{"files-via-ssh", "restart-command"}, missing, false},
		{"not configured", "", []string{"mysql-via-ssh"}, "--ssh-known-hosts", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settings{SSH: sshx.Config{KnownHosts: tt.path}}
			err := s.checkKnownHosts(tt.what)
			if tt.says == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), tt.what[0]) || errors.Is(err, cli.ErrUsage) != tt.usage {
				t.Fatalf("got %v, want an error saying %q and %q (usage error: %v)", err, tt.says, tt.what[0], tt.usage)
			}
			if !tt.usage && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("got %v, want it to wrap os.ErrNotExist", err)
			}
		})
	}
}
