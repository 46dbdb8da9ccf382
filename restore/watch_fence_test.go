package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/leader"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/internal/ui"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestWatchRefusesLateSet: the watcher on a standby never restores a set
// from before the channel's last promotion, whatever its sequence; it
// alerts once (to a real webhook listener), naming why.
func TestWatchRefusesLateSet(t *testing.T) {
	dir := t.TempDir()
	fwd := manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}
	ch := filepath.Join(dir, "prod-to-bcp")
	testkit.Must(t, manifest.WriteChannel(ch, fwd))
	_, prod := testkit.SigningKey(t, dir, "prod")
	_, bcp := testkit.SigningKey(t, dir, "bcp")
	allowed := filepath.Join(dir, "allowed_signers")
	ns := manifest.Namespace + "," + manifest.EpochNamespace
	testkit.Must(t, os.WriteFile(allowed, []byte(fmt.Sprintf("prod-backup namespaces=%q %sbcp-backup namespaces=%q %s",
		ns, ssh.MarshalAuthorizedKey(prod.PublicKey()), ns, ssh.MarshalAuthorizedKey(bcp.PublicKey()))), 0o644))
	// bcp was promoted (epoch 2) and demoted again after a failback; prod,
	// never promoted since, published a set of epoch 1 meanwhile.
	testkit.Must(t, manifest.WriteEpoch(ch, &manifest.EpochRecord{Channel: fwd, Epoch: 2, Active: "bcp", Created: time.Now().Add(-2 * time.Hour), Host: "bcp-leader"}, bcp))
	late := publishEpoch(t, ch, fwd, 7, 1, prod)
	role := filepath.Join(dir, "role")
	testkit.Must(t, os.WriteFile(role, []byte("standby\n"), 0o644))
	hook := testenv.Webhook(t)
	cfg := settings{Channel: ch, Site: "bcp", Source: "prod", RoleFile: role, AllowedSigners: allowed,
		StateDir: filepath.Join(dir, "state"), Leader: leader.Options{Mode: leader.ModeNone, NodeName: "bcp-1"},
		Alert: alert.Options{WebhookURL: hook.URL, Timeout: 10 * time.Second}}
	w := &watcher{r: newRestorer(cfg, slog.New(slog.NewTextHandler(testWriter{t}, nil)), ui.Nop{}), failed: map[string]time.Time{}, alerted: map[string]bool{}}
	w.look(context.Background())
	w.look(context.Background())
	posts := hook.Posts()
	if len(posts) != 1 {
		t.Fatalf("%d alerts, want 1: %v", len(posts), posts)
	}
	if text := fmt.Sprint(posts[0]); !strings.Contains(text, late) || !strings.Contains(text, "superseded") {
		t.Fatalf("alert does not name the late set and why: %s", text)
	}
	l, err := w.r.openLedger()
	testkit.Must(t, err)
	if recs, err := l.Records(); err != nil || len(recs) != 0 {
		t.Fatalf("the watcher started a restore: %v %v", recs, err)
	}
}
