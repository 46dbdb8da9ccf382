package main

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v7/esapi"

	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// mountRO bind-mounts dir read-only onto itself (a read-only NFS mount).
func mountRO(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("mount", "--bind", dir, dir).CombinedOutput(); err != nil {
		t.Fatalf("bind mount %s (tests run as root): %v %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	if out, err := exec.Command("mount", "-o", "remount,ro,bind", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
}

func TestRefusalsAndPreflight(t *testing.T) {
	w := newWorld(t)
	w.mustRun(t) // an earlier set that every failure must leave complete
	good := *w.cfg
	tests := []struct {
		name     string
		setup    func(t *testing.T, c *config)
		wantCode int
		wantMsg  []string
	}{
		{"elasticsearch down", func(t *testing.T, c *config) { c.ES.URLs = []string{"http://127.0.0.1:1"} }, 3, []string{"elasticsearch", "127.0.0.1:1"}},
		{"wrong mysql password", func(t *testing.T, c *config) {
			p := filepath.Join(t.TempDir(), "pw")
			testkit.WriteFile(t, p, "wrong\n")
			c.MySQL.PasswordFile = p
		}, 3, []string{"mysql", "password"}},
		{"every failed check is listed", func(t *testing.T, c *config) {
			c.ES.URLs = []string{"http://127.0.0.1:1"}
			c.MySQL.Port = 1
			c.StorageRoot = "/nonexistent/storage"
		}, 3, []string{"127.0.0.1:1", "mysql at", "/nonexistent/storage"}},
		{"channel missing", func(t *testing.T, c *config) { c.Channel = filepath.Join(t.TempDir(), "nope") }, 3, []string{"nope", "backup init"}},
		{"channel read-only", func(t *testing.T, c *config) { mountRO(t, c.Channel) }, 3, []string{"cannot write", "read-write"}},
		{"channel of the other direction", func(t *testing.T, c *config) {
			other := filepath.Join(filepath.Dir(c.Channel), "bcp-to-prod")
			if err := manifest.WriteChannel(other, manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}); err != nil {
				t.Fatal(err)
			}
			c.Channel = other
		}, 6, []string{"bcp-to-prod", "source is bcp"}},
		{"standby site", func(t *testing.T, c *config) {
			p := filepath.Join(t.TempDir(), "role")
			testkit.WriteFile(t, p, "standby\n")
			c.RoleFile = p
		}, 6, []string{"standby"}},
		{"lock held", func(t *testing.T, c *config) {
			l, err := lock.Acquire(filepath.Join(c.Channel, "locks"), "backup", "backup")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Release() })
		}, 6, []string{"pid", "locked"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.setup(t, &cfg)
			before := w.sets(t)
			_, err := runBackup(context.Background(), backupOptions{cfg: &cfg})
			if got := exitCodes.Code(err); got != tt.wantCode {
				t.Fatalf("exit code %d, want %d; err = %v", got, tt.wantCode, err)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message lacks %q: %v", m, err)
				}
			}
			if after := w.sets(t); len(after) != len(before) {
				t.Fatalf("a set was published: %v", after)
			}
		})
	}
	if rep, err := w.verify(t, ""); err != nil || rep.Status != manifest.StatusComplete {
		t.Fatalf("earlier set after the failures: %v, %v", rep, err)
	}
	w.mustRun(t) // and the next run succeeds
}

func TestUnassignedPrimaryRefused(t *testing.T) {
	w := newWorld(t)
	red := w.index + "-red"
	c := w.es.Client(t)
	res, err := esapi.IndicesCreateRequest{Index: red, Body: strings.NewReader(`{"settings":{"number_of_replicas":0,"index.routing.allocation.require._name":"nonexistent"}}`)}.Do(context.Background(), c)
	if err != nil || res.IsError() {
		t.Fatalf("create red index: %v %v", err, res)
	}
	_ = res.Body.Close()
	t.Cleanup(func() { _, _ = esapi.IndicesDeleteRequest{Index: []string{red}}.Do(context.Background(), c) })
	w.cfg.ESIndices = []string{w.index + "*"}
	_, err = w.run(t)
	if got := exitCodes.Code(err); got != 3 || !strings.Contains(err.Error(), red+"[0]") || !strings.Contains(err.Error(), "PARTIAL") {
		t.Fatalf("exit %d, err = %v; want 3 naming %s[0]", got, err, red)
	}
	if s := w.sets(t); len(s) != 0 {
		t.Fatalf("sets published: %v", s)
	}
}

// TestDiskFull puts the channel on a small tmpfs: writing an object fails
// with ENOSPC, nothing is published, the earlier set stays complete, and
// once there is room again the next run succeeds.
func TestDiskFull(t *testing.T) {
	w := newWorld(t)
	small := filepath.Join(filepath.Dir(w.channel), "small")
	if err := os.MkdirAll(small, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (tests run as root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", small).Run() })
	w.cfg.Channel = filepath.Join(small, "prod-to-bcp")
	w.channel = w.cfg.Channel
	w.cfg.ESRepoLocation = filepath.Join(w.channel, "es")
	w.cfg.MinFree = 0
	if err := manifest.WriteChannel(w.channel, manifest.Channel{Name: "prod-to-bcp", Source: "prod", Target: "bcp"}); err != nil {
		t.Fatal(err)
	}
	first := w.mustRun(t)
	big := filepath.Join(w.storage, "docs", "big.bin")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, 8<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = w.run(t)
	if got := exitCodes.Code(err); got != 1 || !errors.Is(err, ErrStage) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("exit %d, err = %v; want 1 with ENOSPC", got, err)
	}
	if s := w.sets(t); len(s) != 1 {
		t.Fatalf("sets after the failure: %v", s)
	}
	if rep, err := w.verify(t, first.SetID); err != nil || rep.Status != manifest.StatusComplete {
		t.Fatalf("earlier set: %v, %v", rep, err)
	}
	testkit.Must(t, os.Remove(big))
	w.mustRun(t)
}
