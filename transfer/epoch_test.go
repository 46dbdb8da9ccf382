package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
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

// TestRsyncExampleEpochs: the rsync hook brings the source's epoch records
// and never overwrites one the destination holds (its own promotion's).
func TestRsyncExampleEpochs(t *testing.T) {
	requireTool(t, "rsync")
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 3))
	rec := func(epoch uint64, active, host string) *manifest.EpochRecord {
		return &manifest.EpochRecord{Channel: movertest.Identity(), Epoch: epoch, Active: active, Created: time.Now(), Host: host}
	}
	if err := manifest.WriteEpoch(srcDir, rec(2, "prod", "prod-leader"), c.Signer); err != nil {
		t.Fatal(err)
	}
	if err := manifest.WriteEpoch(dstDir, rec(2, "bcp", "bcp-leader"), c.Signer); err != nil {
		t.Fatal(err)
	}
	if err := manifest.WriteEpoch(srcDir, rec(3, "prod", "prod-leader"), c.Signer); err != nil {
		t.Fatal(err)
	}
	mine, err := os.ReadFile(filepath.Join(dstDir, "epochs", manifest.EpochFileName(2)))
	if err != nil {
		t.Fatal(err)
	}
	s := testenv.SSHD(t)
	env := []string{
		"RSYNC_RSH=ssh -i " + s.KeyFile + " -o UserKnownHostsFile=" + s.KnownHosts + " -o StrictHostKeyChecking=yes -o BatchMode=yes -p " + fmt.Sprint(s.Port),
		"BCP_TRANSFER_ALLOWED_SIGNERS=" + c.Allowed,
	}
	out, errs, code := script(t, env, "../examples/rsync/rsync-channel.sh", fmt.Sprintf("%s@%s:%s", s.User, s.Host, srcDir), dstDir)
	want(t, "rsync example", code, 0, out, errs)
	got, err := os.ReadFile(filepath.Join(dstDir, "epochs", manifest.EpochFileName(2)))
	if err != nil || !bytes.Equal(got, mine) {
		t.Fatalf("the destination's own epoch 2 record was replaced: %v", err)
	}
	for _, n := range []string{manifest.EpochFileName(3), manifest.EpochFileName(3) + ".sig"} {
		if _, err := os.Stat(filepath.Join(dstDir, "epochs", n)); err != nil {
			t.Fatalf("epoch record %s not copied: %v", n, err)
		}
	}
}
