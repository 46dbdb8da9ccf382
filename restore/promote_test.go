package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// publishEpoch publishes a small MySQL-only set of the given epoch.
func publishEpoch(t *testing.T, root string, ch manifest.Channel, seq, epoch uint64, s ssh.Signer) string {
	t.Helper()
	ref, err := objects.New(manifest.Layout{Root: root}.ObjectsDir()).Put(context.Background(), strings.NewReader(fmt.Sprintf("-- dump %d\n", seq)))
	testkit.Must(t, err)
	m := &manifest.Manifest{Channel: ch, Sequence: seq, Epoch: epoch, Created: time.Now().Add(-time.Hour).Add(time.Duration(seq) * time.Minute),
		Producer: manifest.Producer{Host: "prod-leader", Program: "backup", Version: "test"},
		MySQL:    &manifest.MySQLDump{Object: ref, Compression: manifest.CompressionNone, Databases: []string{"app"}}}
	id, err := manifest.Publish(context.Background(), manifest.Layout{Root: root}, m, s)
	testkit.Must(t, err)
	return id
}

// TestPromoteFences: promote records a new epoch in both channels and makes
// the site active; a set the old active site makes afterwards is refused
// (exit 6) by verify, also when someone deletes the records; a set of a
// later epoch (prod promoted again) is accepted; demote makes the site a
// standby again.
func TestPromoteFences(t *testing.T) {
	dir := t.TempDir()
	fwd := manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}
	rev := manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}
	fwdDir, revDir := filepath.Join(dir, "prod-to-bcp"), filepath.Join(dir, "bcp-to-prod")
	testkit.Must(t, manifest.WriteChannel(fwdDir, fwd))
	testkit.Must(t, manifest.WriteChannel(revDir, rev))
	_, prod := testkit.SigningKey(t, dir, "prod")
	bcpKeyFile, bcp := testkit.SigningKey(t, dir, "bcp")
	line := func(name string, k ssh.Signer, ns string) string {
		return fmt.Sprintf("%s namespaces=%q %s", name, ns, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey()))))
	}
	allowed := filepath.Join(dir, "allowed_signers")
	testkit.Must(t, os.WriteFile(allowed, []byte(line("prod-backup", prod, manifest.Namespace+","+manifest.EpochNamespace)+"\n"+
		line("bcp-backup", bcp, manifest.EpochNamespace)+"\n"), 0o644))
	role := filepath.Join(dir, "role")
	testkit.Must(t, os.WriteFile(role, []byte("standby\n"), 0o644))
	state := filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "restore.toml")
	testkit.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("channel = %q\nreverse-channel = %q\nsite = \"bcp\"\nsource = \"prod\"\nrole-file = %q\nallowed-signers = %q\nstate-dir = %q\nsign-key = %q\n",
		fwdDir, revDir, role, allowed, state, bcpKeyFile)), 0o600))
	run := func(args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		app := newApp()
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run(append([]string{"restore"}, args...))
		if err != nil {
			fmt.Fprintln(&out, err)
		}
		return exitCode(err), out.String()
	}
	expect := func(what string, wantCode int, wantSays string, args ...string) {
		t.Helper()
		code, out := run(args...)
		if code != wantCode || !strings.Contains(out, wantSays) {
			t.Fatalf("%s: exit %d, output:\n%s\nwant exit %d and %q", what, code, out, wantCode, wantSays)
		}
	}

	publishEpoch(t, fwdDir, fwd, 1, 1, prod)
	expect("verify before the failover", 0, "", "verify", "--config", cfg)
	expect("promote dry run", 0, "would record epoch 2 (bcp active) in "+revDir, "promote", "--config", cfg, "--dry-run")
	if r, _ := site.Read(role); r != site.Standby {
		t.Fatalf("dry run changed the role: %s", r)
	}
	fakeFilesRecord(t, state)
	expect("promote", 0, "now active (epoch 2)", "promote", "--config", cfg)
	noFilesRecord(t, state, "promote")
	for _, c := range []struct {
		root string
		ch   manifest.Channel
	}{{fwdDir, fwd}, {revDir, rev}} {
		as := mustAllowed(t, allowed)
		ce, err := manifest.ReadEpoch(c.root, c.ch, as, time.Now())
		testkit.Must(t, err)
		if ce.Epoch() != 2 || ce.Record.Active != "bcp" {
			t.Fatalf("%s records %s, want epoch 2 bcp active", c.root, ce.Record)
		}
	}
	if r, _ := site.Read(role); r != site.Active {
		t.Fatalf("role after promote: %s", r)
	}
	expect("status names the epoch", 0, "fencing:         channel at epoch 2 (bcp active since", "status", "--config", cfg)

	// prod comes back with its cron on: a late set, newer sequence, epoch 1.
	late := publishEpoch(t, fwdDir, fwd, 2, 1, prod)
	expect("late set", 6, "superseded", "verify", "--config", cfg, "--set", late)
	// Deleting the records does not help: the reader remembers epoch 2.
	testkit.Must(t, os.RemoveAll(filepath.Join(fwdDir, manifest.EpochsDirName)))
	expect("late set, records deleted", 6, "this reader has seen epoch 2", "verify", "--config", cfg, "--set", late)

	// Failback: prod promoted at epoch 3; its next set is accepted.
	testkit.Must(t, manifest.WriteEpoch(fwdDir, &manifest.EpochRecord{Channel: fwd, Epoch: 3, Active: "prod", Created: time.Now(), Host: "prod-leader"}, prod))
	next := publishEpoch(t, fwdDir, fwd, 3, 3, prod)
	expect("demote dry run", 0, "would change "+role+": active -> standby", "demote", "--config", cfg, "--dry-run")
	fakeFilesRecord(t, state)
	expect("demote", 0, "active -> standby", "demote", "--config", cfg)
	noFilesRecord(t, state, "demote")
	expect("set after failback", 0, "", "verify", "--config", cfg, "--set", next)
	expect("late set after failback", 6, "epoch 3 (prod active", "verify", "--config", cfg, "--set", late)
	if code, out := run("list", "--config", cfg); code != 0 || !regexp.MustCompile(late+` +2 .* superseded`).MatchString(out) {
		t.Fatalf("restore list: exit %d, does not call the late set superseded:\n%s", code, out)
	}
	if n, _ := site.ReadSeenEpoch(filepath.Join(state, site.SeenEpochFile)); n != 3 {
		t.Fatalf("seen epoch %d, want 3", n)
	}
	// Without reverse-channel a promotion cannot fence: exit 2.
	expect("promote without reverse-channel", 2, "reverse-channel", "promote", "--config", cfg, "--reverse-channel", "")
}

func mustAllowed(t *testing.T, path string) *sshsig.AllowedSigners {
	t.Helper()
	a, err := sshsig.LoadAllowedSigners(path)
	testkit.Must(t, err)
	return a
}
