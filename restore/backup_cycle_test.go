package main

import (
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/testkit"
)

var backupBin struct {
	once sync.Once
	path string
	err  error
}

// buildBackup builds the real backup program once per test binary.
func buildBackup(t *testing.T) string {
	t.Helper()
	backupBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "bcp-restore-test-bin-")
		if err != nil {
			backupBin.err = err
			return
		}
		backupBin.path = filepath.Join(dir, "backup")
		cmd := exec.Command("go", "build", "-o", backupBin.path, ".")
		cmd.Dir = "../backup"
		if out, err := cmd.CombinedOutput(); err != nil {
			backupBin.err = fmt.Errorf("go build backup: %v\n%s", err, out)
		}
	})
	if backupBin.err != nil {
		t.Fatal(backupBin.err)
	}
	return backupBin.path
}

// backupRun runs the real `backup run` on prod for this fixture's indices,
// databases and storage tree, signing with the fixture's key.
func (f *fixture) backupRun() {
	f.t.Helper()
	f.backupRunScope(backupScope{})
}

// backupScope widens what backupRunScope captures.
type backupScope struct {
	allIndices   bool // no es-indices: every index of prod
	allDatabases bool // no mysql-databases: every database of prod
}

// backupRunScope is backupRun, of every index or database of prod when the
// scope says so.
func (f *fixture) backupRunScope(sc backupScope) {
	t := f.t
	t.Helper()
	bin := buildBackup(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing-key")
	if _, err := os.Stat(keyFile); err != nil {
		blk, err := ssh.MarshalPrivateKey(f.key, "prod-backup")
		testkit.Must(t, err)
		testkit.Must(t, os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600))
	}
	role := filepath.Join(dir, "prod-role")
	testkit.Must(t, os.WriteFile(role, []byte("active\n"), 0o644))
	m := f.w.Prod.MariaDB
	pw := filepath.Join(dir, "mysql-password")
	testkit.Must(t, os.WriteFile(pw, []byte(m.Password+"\n"), 0o600))
	settings := map[string]any{
		"channel": f.prodCh, "site": "prod", "role-file": role, "state-dir": f.backupState,
		"es-url": []string{f.w.Prod.ES.URL}, "es-repository": "bcp-" + f.name, "es-indices": []string{f.name + "_*"},
		"mysql-host": m.Host, "mysql-port": m.Port, "mysql-user": m.User, "mysql-password-file": pw,
		"mysql-databases": f.databases(f.prodDB),
		"storage-root":    f.prodTree, "sign-key": keyFile, "min-free-bytes": 0,
	}
	if sc.allIndices {
		delete(settings, "es-indices") // all
	}
	if sc.allDatabases {
		delete(settings, "mysql-databases") // all
	}
	cfg := testkit.WriteConfig(t, filepath.Join(dir, "backup.toml"), settings)
	cmd := exec.Command(bin, "run", "--config", cfg)
	out, err := cmd.CombinedOutput()
	t.Logf("backup run:\n%s", out)
	if err != nil {
		t.Fatalf("backup run: %v", err)
	}
}

// TestCycleWithBackup is the cycle with sets made by the real backup
// program: a first set onto an empty standby, then a second carrying exactly
// prod's changes.
func TestCycleWithBackup(t *testing.T) {
	f := newFixture(t)
	f.createIndex("docs", 2)
	f.putDocs("docs", map[string]string{"1": "one", "2": "two", "3": "three"})
	f.createIndex("gone", 1)
	f.putDocs("gone", map[string]string{"a": "a"})
	f.exec(f.prodDB, "CREATE DATABASE "+f.db("app"))
	f.exec(f.prodDB, "CREATE TABLE "+f.db("app")+".users (id INT PRIMARY KEY, name VARCHAR(50))")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".users VALUES (1,'ann'),(2,'bob')")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/b.pdf"), "pdf b")

	f.backupRun()
	f.transfer()
	if _, err := f.restore(runOptions{}); err != nil {
		t.Fatalf("cycle 1: %v", err)
	}
	f.sameData("cycle 1 (real backup)")

	f.putDocs("docs", map[string]string{"4": "four"})
	f.deleteDoc("docs", "2")
	f.deleteIndex("gone")
	f.exec(f.prodDB, "UPDATE "+f.db("app")+".users SET name='bea' WHERE id=2")
	f.exec(f.prodDB, "INSERT INTO "+f.db("app")+".users VALUES (3,'cid')")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/c.pdf"), "pdf c")
	testkit.WriteFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a, changed")
	testkit.Must(t, os.Remove(filepath.Join(f.prodTree, "docs/b.pdf")))
	f.backupRun()
	f.transfer()
	out, err := f.restore(runOptions{})
	if err != nil {
		t.Fatalf("cycle 2: %v", err)
	}
	if !strings.Contains(out.String(), "1 added, 1 replaced, 1 removed") {
		t.Errorf("cycle 2 did not carry exactly the file changes:\n%s", out)
	}
	f.sameData("cycle 2 (real backup)")
}
