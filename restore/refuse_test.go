package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestRefusals checks that each unsafe situation is refused with its exit
// code before anything on the standby changes.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	set := f.publishSmall()

	// a channel copy per case, so each can be damaged on its own
	channel := func(t *testing.T, damage func(dir string, m *manifest.Manifest)) string {
		t.Helper()
		dir := filepath.Join(f.w.BCP.NFS, f.name+"-"+nonAlnum.ReplaceAllString(strings.ToLower(t.Name()), "_"), "prod-to-bcp")
		copyChannel(t, f.prodCh, dir)
		if damage != nil {
			b, err := os.ReadFile(manifest.Layout{Root: dir}.ManifestPath(set))
			testkit.Must(t, err)
			m, err := manifest.Decode(b)
			testkit.Must(t, err)
			damage(dir, m)
		}
		return dir
	}
	otherKey := func() string {
		_, s := testkit.SigningKey(t, t.TempDir(), "other")
		return writeAllowed(t, s.PublicKey())
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, cfg *settings)
		code  int
		want  error
	}{
		{"active site", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, nil)
			testkit.Must(t, os.WriteFile(cfg.RoleFile, []byte("active\n"), 0o644))
		}, 6, nil},
		{"set for another site", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, nil)
			cfg.Site = "dr2"
		}, 6, manifest.ErrNotForUs},
		{"signed by an untrusted key", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, nil)
			cfg.AllowedSigners = otherKey()
		}, 5, manifest.ErrNotAuthentic},
		{"object corrupt", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, func(dir string, m *manifest.Manifest) {
				p := manifest.Layout{Root: dir}.ObjectPath(m.MySQL.Object.SHA256)
				b, err := os.ReadFile(p)
				testkit.Must(t, err)
				b[len(b)/2] ^= 0xff
				testkit.Must(t, os.Chmod(p, 0o644))
				testkit.Must(t, os.WriteFile(p, b, 0o644))
			})
		}, 5, manifest.ErrCorrupt},
		{"object missing", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, func(dir string, m *manifest.Manifest) {
				testkit.Must(t, os.Remove(manifest.Layout{Root: dir}.ObjectPath(m.Trees[0].Dir.SHA256)))
			})
		}, 4, manifest.ErrIncomplete},
		{"no set yet", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, func(dir string, m *manifest.Manifest) {
				testkit.Must(t, os.RemoveAll(manifest.Layout{Root: dir}.SetsDir()))
			})
		}, 4, manifest.ErrNoSet},
		{"restore lock held", func(t *testing.T, cfg *settings) {
			cfg.Channel = channel(t, nil)
			testkit.Must(t, os.MkdirAll(cfg.StateDir, 0o700))
			lk, err := lock.Acquire(cfg.StateDir, "restore", "someone else")
			testkit.Must(t, err)
			t.Cleanup(func() { _ = lk.Release() })
		}, 6, lock.ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := f.env()
			e.cfg.StateDir = filepath.Join(t.TempDir(), "state")
			e.cfg.RoleFile = filepath.Join(t.TempDir(), "role")
			testkit.Must(t, os.WriteFile(e.cfg.RoleFile, []byte("standby\n"), 0o644))
			tt.setup(t, &e.cfg)
			var out bytes.Buffer
			err := runRun(context.Background(), runOptions{}, e, &out)
			if got := exitCode(err); got != tt.code || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("exit %d, err %v; want exit %d (%v)", got, err, tt.code, tt.want)
			}
			t.Logf("refused as expected: %v", err)
			if n := f.indices(f.bcpES); len(n) > 0 {
				t.Fatalf("standby changed: indices %v", n)
			}
			if _, err := os.Stat(f.bcpTree); err == nil {
				t.Fatal("standby changed: storage tree written")
			}
			if l, err := ledger.Open(e.cfg.StateDir); err == nil {
				if recs, _ := l.Records(); len(recs) > 0 {
					t.Fatalf("a restore was recorded: %+v", recs)
				}
			}
		})
	}

	// stale: once a set is live, the same set again is refused
	e := f.env()
	e.cfg.Channel = channel(t, nil)
	if err := runRun(context.Background(), runOptions{}, e, &bytes.Buffer{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	err := runRun(context.Background(), runOptions{SetID: set}, e, &bytes.Buffer{})
	if exitCode(err) != 6 || !errors.Is(err, manifest.ErrStale) {
		t.Fatalf("same set again: exit %d (%v), want 6 stale", exitCode(err), err)
	}
}

// TestBinaryExitCodes runs the built program with a TOML config file: an
// active site is refused with exit 6 and a message that names the role file;
// status and promote work on the same configuration.
func TestBinaryExitCodes(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "restore")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	testkit.Must(t, build.Run())
	dir := t.TempDir()
	role := filepath.Join(dir, "role")
	testkit.Must(t, os.WriteFile(role, []byte("standby\n"), 0o644))
	ch := filepath.Join(dir, "channel")
	testkit.Must(t, os.MkdirAll(ch, 0o750))
	testkit.Must(t, manifest.WriteChannel(ch, manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}))
	_, s := testkit.SigningKey(t, t.TempDir(), "prod-backup")
	// promote records the fencing epoch in both channels with bcp's key
	rev := filepath.Join(dir, "bcp-to-prod")
	testkit.Must(t, manifest.WriteChannel(rev, manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}))
	bcpKey, bcp := testkit.SigningKey(t, dir, "bcp")
	allowed := writeAllowed(t, s.PublicKey())
	f, err := os.OpenFile(allowed, os.O_APPEND|os.O_WRONLY, 0)
	testkit.Must(t, err)
	_, err = fmt.Fprintf(f, "bcp-backup namespaces=%q %s", manifest.EpochNamespace, ssh.MarshalAuthorizedKey(bcp.PublicKey()))
	testkit.Must(t, err)
	testkit.Must(t, f.Close())
	cfg := filepath.Join(dir, "restore.toml")
	testkit.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("channel = %q\nreverse-channel = %q\nsign-key = %q\nsite = \"bcp\"\nrole-file = %q\nallowed-signers = %q\nstate-dir = %q\n",
		ch, rev, bcpKey, role, allowed, filepath.Join(dir, "state"))), 0o644))
	old := filepath.Join(dir, "restore-old-names.toml")
	testkit.Must(t, os.WriteFile(old, []byte(fmt.Sprintf("channel = %q\nsite = \"bcp\"\nrole-file = %q\nallowed-signers = %q\nstate-dir = %q\nfiles-over-ssh = true\n",
		ch, role, writeAllowed(t, s.PublicKey()), filepath.Join(dir, "state"))), 0o644))
	run := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		testkit.Must(t, err)
		return 0, string(out)
	}
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"no set yet", []string{"run", "--config", cfg}, 4, "no set"},
		{"bad flag", []string{"run", "--config", cfg, "--no-such-flag"}, 2, "no-such-flag"},
		{"status", []string{"status", "--config", cfg}, 0, "nothing restored yet"},
		{"list of a directory that is not there", []string{"list", "--config", cfg, filepath.Join(dir, "no-such-channel")}, 2, "no-such-channel"},
		{"channel not mounted", []string{"list", "--config", cfg, "--channel", filepath.Join(dir, "unmounted")}, 1, "is the channel's share mounted"},
		{"status, nothing configured", []string{"status", "--state-dir", filepath.Join(dir, "state")}, 2, "no channel directory configured"},
		{"status, no role file", []string{"status", "--config", cfg, "--role-file", filepath.Join(dir, "no-role")}, 2, "no-role does not exist"},
		{"promote dry run", []string{"promote", "--config", cfg, "--dry-run"}, 0, "standby -> active"},
		{"promote", []string{"promote", "--config", cfg}, 0, "now active"},
		{"active site refuses", []string{"run", "--config", cfg}, 6, role},
		{"old flag name", []string{"status", "--config", cfg, "--storage-dir", dir}, 2, "storage-dir"},
		{"old config key", []string{"status", "--config", old}, 2, `"files-over-ssh" is now "files-via-ssh"`},
	}
	// the example config: every key is a flag
	state := filepath.Join(dir, "example-state")
	tests = append(tests, struct {
		name string
		args []string
		code int
		says string
	}{"examples/restore.toml", []string{"status", "--config", "../examples/restore.toml", "--state-dir", state, "--role-file", role}, 0, "role:"})
	for _, tt := range tests {
		code, out := run(tt.args...)
		if code != tt.code || !strings.Contains(out, tt.says) {
			t.Fatalf("%s: exit %d, output:\n%s\nwant exit %d and %q", tt.name, code, out, tt.code, tt.says)
		}
	}
}
