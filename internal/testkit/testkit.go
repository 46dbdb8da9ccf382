// Package testkit holds the small helpers the tests of every module share
// (restic's internal/test): a setup step that fails fails the test (Must),
// keys and allowed_signers files for signing sets, a program's config file,
// and a comparable picture of a directory tree. The services of the test
// world are in internal/testenv; this package starts nothing.
//
// The manifest module cannot import it (manifest stands alone); its tests
// keep their own copies of Must.
package testkit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/manifest"
)

// Must fails the test when a setup step returned an error.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes content to path, making its directory first.
func WriteFile(t testing.TB, path, content string) {
	t.Helper()
	Must(t, os.MkdirAll(filepath.Dir(path), 0o750))
	Must(t, os.WriteFile(path, []byte(content), 0o640))
}

// SigningKey makes an ed25519 key named name (the comment of the key),
// writes its private key to dir/<name>_sign (0600, OpenSSH format, what
// sign-key names) and returns the file and the signer.
func SigningKey(t testing.TB, dir, name string) (string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	Must(t, err)
	blk, err := ssh.MarshalPrivateKey(priv, name)
	Must(t, err)
	p := filepath.Join(dir, name+"_sign")
	Must(t, os.WriteFile(p, pem.EncodeToMemory(blk), 0o600))
	s, err := ssh.NewSignerFromKey(priv)
	Must(t, err)
	return p, s
}

// AllowedLine is the allowed_signers line trusting pub as principal for
// manifests and epoch records (namespace manifest.Namespace).
func AllowedLine(principal string, pub ssh.PublicKey) string {
	return fmt.Sprintf("%s namespaces=%q %s", principal, manifest.Namespace, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))))
}

// WriteAllowedSigners writes an allowed_signers file of lines (AllowedLine)
// to path and returns path.
func WriteAllowedSigners(t testing.TB, path string, lines ...string) string {
	t.Helper()
	WriteFile(t, path, strings.Join(lines, "\n")+"\n")
	return path
}

// WriteConfig writes a program's TOML config file: settings maps each flag
// name to its value (string, number, bool or a list of strings).
func WriteConfig(t testing.TB, path string, settings map[string]any) string {
	t.Helper()
	var b strings.Builder
	Must(t, toml.NewEncoder(&b).Encode(settings))
	Must(t, os.MkdirAll(filepath.Dir(path), 0o750))
	Must(t, os.WriteFile(path, []byte(b.String()), 0o600))
	return path
}

// Tree maps every path below dir (slash-separated, relative) to "dir
// MODE", "symlink TARGET" or "file MODE SIZE SHA256-PREFIX" (MODE as
// fs.FileMode.String: permissions and setuid, setgid, sticky bits), so two
// trees compare with maps.Equal. skip (nil: none) leaves out a path and,
// for a directory, all below it. A name that cannot be read fails the test.
func Tree(t testing.TB, dir string, skip func(rel string) bool) map[string]string {
	t.Helper()
	return tree(t, dir, skip, false)
}

// TreeTimes is Tree with each file's modification time (UTC, to the
// second) too, for trees whose times must match.
func TreeTimes(t testing.TB, dir string, skip func(rel string) bool) map[string]string {
	t.Helper()
	return tree(t, dir, skip, true)
}

func tree(t testing.TB, dir string, skip func(rel string) bool, times bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	Must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().String()
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "symlink " + l
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %s %d %x", fi.Mode(), len(b), sum[:8])
			if times {
				out[rel] += " " + fi.ModTime().UTC().Truncate(time.Second).Format(time.RFC3339)
			}
		}
		return nil
	}))
	return out
}
