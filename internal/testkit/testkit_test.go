package testkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

func TestSigningKeyTrusted(t *testing.T) {
	dir := t.TempDir()
	keyFile, s := SigningKey(t, dir, "prod-backup")
	p := WriteAllowedSigners(t, filepath.Join(dir, "allowed_signers"), AllowedLine("prod-backup", s.PublicKey()))
	a, err := sshsig.LoadAllowedSigners(p)
	Must(t, err)
	loaded, err := sshsig.LoadSigner(keyFile)
	Must(t, err)
	sig, err := sshsig.Sign(loaded, manifest.Namespace, strings.NewReader("m"))
	Must(t, err)
	if _, err := a.Verify(sig, strings.NewReader("m"), manifest.Namespace, time.Now()); err != nil {
		t.Fatalf("a signature of the key file is not trusted by the allowed_signers file: %v", err)
	}
}

func TestWriteConfig(t *testing.T) {
	p := WriteConfig(t, filepath.Join(t.TempDir(), "backup.toml"), map[string]any{"channel": "/c", "es-url": []string{"u"}, "min-free-bytes": 0})
	var got map[string]any
	_, err := toml.DecodeFile(p, &got)
	Must(t, err)
	if got["channel"] != "/c" || got["min-free-bytes"] != int64(0) {
		t.Fatalf("read back %v", got)
	}
}

func TestTree(t *testing.T) {
	dir := t.TempDir()
	WriteFile(t, filepath.Join(dir, "a/b"), "x")
	Must(t, os.Symlink("b", filepath.Join(dir, "a/l")))
	WriteFile(t, filepath.Join(dir, "skip/c"), "y")
	got := Tree(t, dir, func(rel string) bool { return rel == "skip" })
	if len(got) != 3 || got["a/l"] != "symlink b" || !strings.HasPrefix(got["a/b"], "file -rw-r----- 1 ") {
		t.Fatalf("Tree = %v", got)
	}
}
