package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// TestBackupFencing: backup writes its site's epoch into every set, and
// refuses (exit 6, nothing published) once the reverse channel records
// that the other site was promoted after it.
func TestBackupFencing(t *testing.T) {
	w := newWorld(t)
	res := w.mustRun(t)
	if res.Manifest.Epoch != 1 {
		t.Fatalf("set before any promotion has epoch %d, want 1", res.Manifest.Epoch)
	}

	// bcp is promoted: its promotion records epoch 2 in bcp-to-prod, which
	// bcp's mover brings to prod's NFS.
	_, bcpPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bcpKey, err := ssh.NewSignerFromKey(bcpPriv)
	if err != nil {
		t.Fatal(err)
	}
	prodKey, err := sshsig.LoadSigner(w.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	reverse := filepath.Join(w.dir, "bcp-to-prod")
	rev := manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}
	if err := manifest.WriteChannel(reverse, rev); err != nil {
		t.Fatal(err)
	}
	if err := manifest.WriteEpoch(reverse, &manifest.EpochRecord{Channel: rev, Epoch: 2, Active: "bcp", Created: time.Now(), Host: "bcp-leader"}, bcpKey); err != nil {
		t.Fatal(err)
	}
	w.cfg.ReverseChannel = reverse
	before := len(w.sets(t))

	// Without allowed-signers backup cannot tell: a failed check, exit 3.
	_, err = w.run(t)
	if code := exitCodes.Code(err); code != 3 || !strings.Contains(fmt_(err), "allowed-signers") {
		t.Fatalf("without allowed-signers: exit %d, %v; want 3 naming allowed-signers", code, err)
	}
	allowed := filepath.Join(w.dir, "allowed_signers_epochs")
	line := func(name string, pub ssh.PublicKey, ns string) string {
		return name + ` namespaces="` + ns + `" ` + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	}
	testkit.WriteFile(t, allowed, line("bcp-backup", bcpKey.PublicKey(), manifest.Namespace+","+manifest.EpochNamespace)+"\n"+
		line("prod-backup", prodKey.PublicKey(), manifest.EpochNamespace)+"\n")
	w.cfg.AllowedSigners = allowed

	_, err = w.run(t)
	if !errors.Is(err, site.ErrSuperseded) || exitCodes.Code(err) != 6 || !strings.Contains(err.Error(), "bcp active since") {
		t.Fatalf("superseded site: exit %d, %v; want 6 naming bcp's promotion", exitCodes.Code(err), err)
	}
	if n := len(w.sets(t)); n != before {
		t.Fatalf("a superseded backup published: %d sets, had %d", n, before)
	}

	// An unsigned record raising the epoch again is ignored: still refused
	// by the signed one, not fooled into thinking prod is active.
	if err := os.WriteFile(filepath.Join(reverse, "epochs", manifest.EpochFileName(9)),
		[]byte(`{"channel":{"name":"bcp-to-prod","source":"bcp","target":"prod"},"epoch":9,"active":"prod","created":"2026-11-25T13:00:00Z","host":"x"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err = w.run(t); !errors.Is(err, site.ErrSuperseded) {
		t.Fatalf("unsigned record naming prod: %v, want still superseded", err)
	}

	// Failback: prod is promoted (epoch 3, recorded in prod's channel).
	if err := manifest.WriteEpoch(w.channel, &manifest.EpochRecord{Channel: manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"},
		Epoch: 3, Active: "prod", Created: time.Now(), Host: "prod-leader"}, prodKey); err != nil {
		t.Fatal(err)
	}
	res = w.mustRun(t)
	if res.Manifest.Epoch != 3 {
		t.Fatalf("set after prod's promotion has epoch %d, want 3", res.Manifest.Epoch)
	}
}

func fmt_(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
