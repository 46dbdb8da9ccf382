package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestPreflightRefusals: a restore whose standby cannot take the set is
// refused before anything changes (exit 3), and the refusal lists every
// failed check at once: the snapshot was taken by a newer Elasticsearch
// than the standby's, the repository location is not one the nodes can
// read, MySQL and Redis do not answer. The ledger records the attempt as
// failed in prepare; no index, database or file was touched.
func TestPreflightRefusals(t *testing.T) {
	f := newFixture(t)
	f.esSource = &manifest.ESSource{Version: "8.11.0", Nodes: 3}
	f.publishSmall()
	f.transfer()
	e := f.env()
	e.cfg.ESRepoLocation = filepath.Join(t.TempDir(), "not-below-path-repo")
	bad := filepath.Join(t.TempDir(), "my.cnf")
	testkit.Must(t, os.WriteFile(bad, []byte("[client]\nuser=nobody\npassword=x\nhost=127.0.0.1\nport=1\nprotocol=tcp\n"), 0o600))
	e.cfg.MySQLDefaultsFile = bad
	e.cfg.RedisAddr = "127.0.0.1:1"
	_, err := newRestorer(e.cfg, e.log, e.rep).run(context.Background(), request{})
	var pe *PreflightError
	if !errors.As(err, &pe) || !errors.Is(err, ErrPreflight) || exitCode(err) != 3 {
		t.Fatalf("restore: %v (exit %d), want a preflight refusal, exit 3", err, exitCode(err))
	}
	for _, want := range []string{"8.11.0", "not-below-path-repo", "mysql", "redis 127.0.0.1:1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not list %q:\n%v", want, err)
		}
	}
	if len(pe.Failed) != 4 {
		t.Errorf("%d checks failed, want 4 (version, repository, mysql, redis):\n%v", len(pe.Failed), err)
	}
	if got := f.indices(f.bcpES); len(got) != 0 {
		t.Fatalf("the refused restore changed Elasticsearch: %v", got)
	}
	if got := f.databases(f.bcpDB); len(got) != 0 {
		t.Fatalf("the refused restore changed MySQL: %v", got)
	}
	if entries, _ := os.ReadDir(f.bcpTree); len(entries) != 0 {
		t.Fatalf("the refused restore wrote files: %v", entries)
	}

	// The same set with the standby's own version and a repository every
	// node reads passes the preflight.
	f.esSource = &manifest.ESSource{Version: "7.17.29", Nodes: 3}
	f.publish()
	f.transfer()
	if _, err := newRestorer(f.env().cfg, e.log, e.rep).run(context.Background(), request{}); err != nil {
		t.Fatalf("restore after the fixes: %v", err)
	}
}
