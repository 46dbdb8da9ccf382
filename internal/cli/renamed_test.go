package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRenamed: an old name in the config file or the environment is a
// usage error naming the new one; the new names and no file at all pass.
func TestCheckRenamed(t *testing.T) {
	renamed := map[string]string{"identity": "ssh-key", "known-hosts": "ssh-known-hosts"}
	dir := t.TempDir()
	noEnv := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		name, config string
		env          map[string]string
		says         string // "" = accepted
	}{
		{"no config file", "", nil, ""},
		{"new names", "ssh-key = \"/k\"\nssh-known-hosts = \"/kh\"\n", nil, ""},
		{"old key", "known-hosts = \"/kh\"\n", nil, `"known-hosts" is now "ssh-known-hosts" (why)`},
		{"old env var", "", map[string]string{"BCP_PROG_IDENTITY": "/k"}, "BCP_PROG_IDENTITY is now BCP_PROG_SSH_KEY (why)"},
		{"bad toml", "= x\n", nil, "config file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ""
			if tc.config != "" {
				cfg = filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			env := noEnv
			if tc.env != nil {
				env = func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			}
			err := CheckRenamed("prog", renamed, "why", cfg, env)
			if tc.says == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("got %v, want a usage error saying %q", err, tc.says)
			}
		})
	}
}
