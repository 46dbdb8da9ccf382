package mover

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// TestEpochRecordsCopied: the mover brings the source's fencing epoch
// records to the destination with the set, and never replaces or deletes a
// record the destination has (its own site's promotion).
func TestEpochRecordsCopied(t *testing.T) {
	for _, d := range directions() {
		t.Run(d.name, func(t *testing.T) {
			srcDir, dstDir := t.TempDir(), t.TempDir()
			c := movertest.New(t, srcDir)
			rec := func(epoch uint64, active string) *manifest.EpochRecord {
				return &manifest.EpochRecord{Channel: movertest.Identity(), Epoch: epoch, Active: active, Created: time.Now(), Host: "h"}
			}
			if err := manifest.WriteEpoch(srcDir, rec(3, "prod"), c.Signer); err != nil {
				t.Fatal(err)
			}
			// The destination holds a record of its own (epoch 2) and one
			// for epoch 3 that differs from the source's: both stay.
			if err := manifest.WriteEpoch(dstDir, rec(2, "bcp"), c.Signer); err != nil {
				t.Fatal(err)
			}
			mine := filepath.Join(dstDir, manifest.EpochsDirName, manifest.EpochFileName(2))
			before, err := os.ReadFile(mine)
			if err != nil {
				t.Fatal(err)
			}
			c.Publish(movertest.Small("a", 3))
			src, dst := d.ends(t, srcDir, dstDir)
			run(t, opts(c, src, dst))
			for _, n := range []string{manifest.EpochFileName(3), manifest.EpochFileName(3) + ".sig"} {
				want, _ := os.ReadFile(filepath.Join(srcDir, manifest.EpochsDirName, n))
				got, err := os.ReadFile(filepath.Join(dstDir, manifest.EpochsDirName, n))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s at the destination: %v (equal %v)", n, err, bytes.Equal(got, want))
				}
			}
			if after, err := os.ReadFile(mine); err != nil || !bytes.Equal(after, before) {
				t.Fatalf("the destination's own record changed or went: %v", err)
			}
			ce, err := manifest.ReadEpoch(dstDir, movertest.Identity(), allowedEpochs(t, c), time.Now())
			if err != nil || ce.Epoch() != 3 {
				t.Fatalf("destination epoch %d, %v; want 3", ce.Epoch(), err)
			}
		})
	}
}

// allowedEpochs trusts the channel's key for epoch records.
func allowedEpochs(t *testing.T, c *movertest.Channel) *sshsig.AllowedSigners {
	t.Helper()
	a, err := sshsig.ParseAllowedSigners(strings.NewReader(`bcp namespaces="` + manifest.EpochNamespace + `" ` + string(ssh.MarshalAuthorizedKey(c.Signer.PublicKey()))))
	if err != nil {
		t.Fatal(err)
	}
	return a
}
