package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestEvenStandbyWarning: the restore preflight warns about an even number
// of standby application nodes (restart-nodes; the same node twice counts
// once) and refuses nothing for it.
func TestEvenStandbyWarning(t *testing.T) {
	for _, tt := range []struct {
		nodes []string
		warn  bool
	}{{[]string{"bcp-1:22", "bcp-2:22"}, true}, {[]string{"bcp-1:22", "bcp-2:22", "bcp-3:22"}, false}, {[]string{"bcp-1:22", "bcp-1:22"}, false}} {
		var log bytes.Buffer
		cfg := settings{RestartCommand: "true", RestartNodes: tt.nodes}
		r := newRestorer(cfg, slog.New(slog.NewTextHandler(&log, nil)), ui.Nop{})
		if err := r.preflight(context.Background(), "", &manifest.Manifest{}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(log.String(), "even number"); got != tt.warn {
			t.Errorf("%v: warned %v, want %v:\n%s", tt.nodes, got, tt.warn, log.String())
		}
	}
}

// TestLocalStateWarning: on a standby of several nodes (a leader mode),
// a state-dir on a local file system draws a warning; a single node (mode
// none) does not.
func TestLocalStateWarning(t *testing.T) {
	for _, tt := range []struct {
		mode string
		warn bool
	}{{"static", true}, {"none", false}} {
		var log bytes.Buffer
		cfg := settings{StateDir: t.TempDir(), RestartCommand: restartNone, Leader: leader.Options{Mode: tt.mode, Host: "bcp-1"}}
		r := newRestorer(cfg, slog.New(slog.NewTextHandler(&log, nil)), ui.Nop{})
		if err := r.preflight(context.Background(), "", &manifest.Manifest{}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(log.String(), "local file system"); got != tt.warn {
			t.Errorf("leader-mode %s: warned %v, want %v:\n%s", tt.mode, got, tt.warn, log.String())
		}
	}
}
