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
		must(t, err)
		must(t, os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600))
	}
	role := filepath.Join(dir, "prod-role")
	must(t, os.WriteFile(role, []byte("active\n"), 0o644))
	m := f.w.Prod.MariaDB
	pw := filepath.Join(dir, "mysql-password")
	must(t, os.WriteFile(pw, []byte(m.Password+"\n"), 0o600))
	cfg := filepath.Join(dir, "backup.toml")
	indices := fmt.Sprintf("es-indices = [%q]", f.name+"_*")
	if sc.allIndices {
		indices = "# es-indices: all"
	}
	databases := fmt.Sprintf("mysql-databases = [%s]", quoteList(f.databases(f.prodDB)))
	if sc.allDatabases {
		databases = "# mysql-databases: all"
	}
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`channel = %q
site = "prod"
role-file = %q
state-dir = %q
es-url = [%q]
es-repository = %q
%s
mysql-host = %q
mysql-port = %d
mysql-user = %q
mysql-password-file = %q
%s
storage-root = %q
sign-key = %q
min-free-bytes = 0
`, f.prodCh, role, f.backupState, f.w.Prod.ES.URL, "bcp-"+f.name, indices, m.Host, m.Port, m.User, pw,
		databases, f.prodTree, keyFile)), 0o600))
	cmd := exec.Command(bin, "run", "--config", cfg)
	out, err := cmd.CombinedOutput()
	t.Logf("backup run:\n%s", out)
	if err != nil {
		t.Fatalf("backup run: %v", err)
	}
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
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
	writeFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a")
	writeFile(t, filepath.Join(f.prodTree, "docs/b.pdf"), "pdf b")

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
	writeFile(t, filepath.Join(f.prodTree, "docs/c.pdf"), "pdf c")
	writeFile(t, filepath.Join(f.prodTree, "docs/a.pdf"), "pdf a, changed")
	must(t, os.Remove(filepath.Join(f.prodTree, "docs/b.pdf")))
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
