package manifest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// TestSSHKeygenInterop: `ssh-keygen -Y verify` accepts a set we published,
// and Verify accepts a manifest that `ssh-keygen -Y sign` signed; a
// tampered byte in the manifest fails both.
func TestSSHKeygenInterop(t *testing.T) {
	for _, typ := range []string{"ed25519", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			k := newKey(t, typ)
			w := newWorld(t, k, 1024)
			allowedFile := filepath.Join(t.TempDir(), "allowed_signers")
			must(t, os.WriteFile(allowedFile, []byte(allowedLine(k)+"\n"), 0o600))
			mpath, spath := w.Layout.ManifestPath(w.SetID), w.Layout.SignaturePath(w.SetID)
			keygenVerify := func() error {
				cmd := exec.Command("ssh-keygen", "-Y", "verify", "-f", allowedFile, "-I", "prod-backup", "-n", manifest.Namespace, "-s", spath)
				f, err := os.Open(mpath)
				if err != nil {
					return err
				}
				defer f.Close()
				cmd.Stdin = f
				if out, err := cmd.CombinedOutput(); err != nil {
					return errors.New(string(out))
				}
				return nil
			}
			if err := keygenVerify(); err != nil {
				t.Fatalf("ssh-keygen rejects our set: %v", err)
			}

			// Re-sign with ssh-keygen itself.
			must(t, os.Remove(spath))
			if out, err := exec.Command("ssh-keygen", "-Y", "sign", "-f", k.File, "-n", manifest.Namespace, mpath).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v: %s", err, out)
			}
			rep, err := manifest.Verify(context.Background(), w.opts())
			if err != nil || rep.Status != manifest.StatusComplete {
				t.Fatalf("Verify of an ssh-keygen signed set: %v", err)
			}

			data, _ := os.ReadFile(mpath)
			must(t, os.WriteFile(mpath, []byte(strings.Replace(string(data), `"uuid": "u1"`, `"uuid": "u2"`, 1)), 0o640))
			if err := keygenVerify(); err == nil {
				t.Fatal("ssh-keygen accepted a tampered manifest")
			}
			if _, err := manifest.Verify(context.Background(), w.opts()); !errors.Is(err, manifest.ErrNotAuthentic) {
				t.Fatalf("Verify of a tampered manifest: %v", err)
			}
		})
	}
}

func TestPublishRefuses(t *testing.T) {
	k := newKey(t, "ed25519")
	w := newWorld(t, k, 1024)
	ctx := context.Background()
	m := *w.Manifest
	if _, err := manifest.Publish(ctx, w.Layout, &m, k.Signer); !errors.Is(err, manifest.ErrStale) {
		t.Errorf("same sequence again: %v", err)
	}
	m.Sequence = 5
	m.Channel.Target = "elsewhere"
	if _, err := manifest.Publish(ctx, w.Layout, &m, k.Signer); !errors.Is(err, manifest.ErrNotForUs) {
		t.Errorf("other channel: %v", err)
	}
	m.Channel = testChannel
	mysql := *m.MySQL
	mysql.Object.SHA256 = strings.Repeat("0", 64)
	m.MySQL = &mysql
	if _, err := manifest.Publish(ctx, w.Layout, &m, k.Signer); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing object: %v", err)
	}
	m.MySQL = w.Manifest.MySQL
	// A set directory that already holds a manifest is never overwritten.
	id := manifest.SetID(m.Sequence, m.Created)
	must(t, os.MkdirAll(w.Layout.SetDir(id), 0o750))
	must(t, os.WriteFile(w.Layout.ManifestPath(id), []byte("{}"), 0o640))
	if _, err := manifest.Publish(ctx, w.Layout, &m, k.Signer); !errors.Is(err, manifest.ErrStale) && !errors.Is(err, manifest.ErrSetExists) {
		t.Errorf("existing set: %v", err)
	}
	if data, _ := os.ReadFile(w.Layout.ManifestPath(id)); string(data) != "{}" {
		t.Error("existing manifest overwritten")
	}
	m.Sequence = 6
	if _, err := manifest.Publish(ctx, w.Layout, &m, k.Signer); err != nil {
		t.Errorf("next sequence: %v", err)
	}
}
