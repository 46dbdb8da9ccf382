package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/internal/ui"
)

// TestWatchIdle: the watcher does not look at sets on an active site or on a
// node that is not the leader.
func TestWatchIdle(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"leader": "bcp-2"}`)
	}))
	defer svc.Close()
	tests := []struct {
		name, role, node, says string
	}{
		{"active site", "active", "bcp-2", "promoted"},
		{"not the leader", "standby", "bcp-1", "leader is bcp-2"},
		{"no role file", "", "bcp-2", "role file missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			role := filepath.Join(dir, "role")
			if tt.role != "" {
				testkit.Must(t, os.WriteFile(role, []byte(tt.role+"\n"), 0o644))
			}
			cfg := settings{Channel: filepath.Join(dir, "no-such-channel"), RoleFile: role, Leader: leader.Options{URL: svc.URL, NodeName: tt.node}, StateDir: filepath.Join(dir, "state")}
			w := &watcher{r: newRestorer(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), ui.Nop{}), failed: nil, alerted: nil}
			w.look(context.Background())
			if !strings.Contains(w.idle, tt.says) {
				t.Fatalf("idle = %q, want it to say %q", w.idle, tt.says)
			}
			if _, err := os.Stat(cfg.StateDir); err == nil {
				t.Fatal("an idle watcher touched the state directory")
			}
		})
	}
}
