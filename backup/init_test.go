package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// TestInitBothDirections: backup init creates both channels and lists
// every day-one piece that is missing (exit 3), then passes once all are
// there.
func TestInitBothDirections(t *testing.T) {
	w := newWorld(t)
	cfg := *w.cfg
	cfg.Channel = filepath.Join(filepath.Dir(w.channel), "new", "prod-to-bcp")
	cfg.ESRepoLocation = filepath.Join(cfg.Channel, "es")
	t.Setenv("BCP_TRANSFER_CONFIG", filepath.Join(w.dir, "transfer.toml"))
	t.Setenv("BCP_RESTORE_CONFIG", filepath.Join(w.dir, "restore.toml"))
	var out bytes.Buffer
	err := runInit(context.Background(), initOptions{cfg: &cfg, target: "bcp"}, &out)
	if exitCodes.Code(err) != 3 {
		t.Fatalf("init with pieces missing: exit %d, %v\n%s", exitCodes.Code(err), err, out.String())
	}
	for _, missing := range []string{"MISSING reverse channel", "MISSING allowed_signers", "MISSING transfer config", "MISSING restore config"} {
		if !strings.Contains(out.String(), missing) {
			t.Errorf("output does not list %q:\n%s", missing, out.String())
		}
	}
	if ch, err := manifest.ReadChannel(cfg.Channel); err != nil || ch != (manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}) {
		t.Fatalf("channel not created: %v %v", ch, err)
	}

	// Everything in place: this site's key and bcp's in allowed_signers,
	// the reverse channel below path.repo, both configs.
	cfg.ReverseChannel = filepath.Join(filepath.Dir(cfg.Channel), "bcp-to-prod")
	signer, err := sshsig.LoadSigner(cfg.SignKey)
	testkit.Must(t, err)
	_, other := siteSigner(t)
	ns := manifest.Namespace + "," + manifest.EpochNamespace
	cfg.AllowedSigners = filepath.Join(w.dir, "allowed_both")
	testkit.WriteFile(t, cfg.AllowedSigners, fmt.Sprintf("prod-backup namespaces=%q %sbcp-backup namespaces=%q %s", ns, ssh.MarshalAuthorizedKey(signer.PublicKey()), ns, ssh.MarshalAuthorizedKey(other.PublicKey())))
	testkit.WriteFile(t, os.Getenv("BCP_TRANSFER_CONFIG"), "channel = \"prod-to-bcp\"\n")
	testkit.WriteFile(t, os.Getenv("BCP_RESTORE_CONFIG"), fmt.Sprintf("channel = %q\nreverse-channel = %q\nsite = \"prod\"\nallowed-signers = %q\n", cfg.ReverseChannel, cfg.Channel, cfg.AllowedSigners))
	out.Reset()
	if err := runInit(context.Background(), initOptions{cfg: &cfg, target: "bcp"}, &out); err != nil {
		t.Fatalf("init with everything in place: %v\n%s", err, out.String())
	}
	if ch, err := manifest.ReadChannel(cfg.ReverseChannel); err != nil || ch != (manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}) {
		t.Fatalf("reverse channel: %v %v", ch, err)
	}
	// Idempotent; an existing channel of the wrong direction is refused.
	out.Reset()
	if err := runInit(context.Background(), initOptions{cfg: &cfg, target: "bcp"}, &out); err != nil || !strings.Contains(out.String(), "(exists)") {
		t.Fatalf("second init: %v\n%s", err, out.String())
	}
	cfg.ReverseChannel, cfg.Channel = cfg.Channel, cfg.ReverseChannel
	cfg.ESRepoLocation = filepath.Join(cfg.Channel, "es")
	if err := runInit(context.Background(), initOptions{cfg: &cfg, target: "bcp"}, &out); !errors.Is(err, manifest.ErrNotForUs) {
		t.Fatalf("channels swapped: %v, want ErrNotForUs", err)
	}
}

func siteSigner(t *testing.T) (string, ssh.Signer) {
	t.Helper()
	return testkit.SigningKey(t, t.TempDir(), "prod-backup")
}
