package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestVerifyLateSet: transfer verify (the rsync / SnapMirror hook) refuses
// a set made before the channel's recorded promotion with exit 6, naming it.
func TestVerifyLateSet(t *testing.T) {
	dir := t.TempDir()
	c := movertest.New(t, dir)
	c.Publish(movertest.Small("a", 3))
	allowed, err := os.ReadFile(c.Allowed)
	if err != nil {
		t.Fatal(err)
	}
	both := c.Allowed + ".epochs"
	line := `bcp-backup namespaces="` + manifest.EpochNamespace + `" ` + string(ssh.MarshalAuthorizedKey(c.Signer.PublicKey()))
	if err := os.WriteFile(both, append(append(allowed, '\n'), line...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := transfer(t, nil, "verify", "--allowed-signers", both, dir)
	want(t, "before the promotion", code, 0, out, errs)
	if err := manifest.WriteEpoch(dir, &manifest.EpochRecord{Channel: movertest.Identity(), Epoch: 2, Active: "bcp", Created: time.Now(), Host: "bcp-leader"}, c.Signer); err != nil {
		t.Fatal(err)
	}
	out, errs, code = transfer(t, nil, "verify", "--allowed-signers", both, dir)
	want(t, "after the promotion", code, 6, out, errs)
	if !strings.Contains(out+errs, "superseded") || !strings.Contains(out+errs, "bcp active since") {
		t.Fatalf("output does not say why:\nstdout: %s\nstderr: %s", out, errs)
	}
}
