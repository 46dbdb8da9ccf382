package mysqlx

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

func seed(t *testing.T, m *testenv.MariaDBServer) {
	t.Helper()
	db := m.DB(t)
	for _, q := range []string{
		"CREATE DATABASE app", "CREATE TABLE app.users (id INT PRIMARY KEY, name TEXT)",
		"INSERT INTO app.users VALUES (1,'a (b)'),(2,'it''s ),( x'),(3,'line\nbreak')",
		"CREATE TABLE app.empty (id INT)",
		"CREATE DATABASE other", "CREATE TABLE other.t (b BLOB)", "INSERT INTO other.t VALUES (x'28290027')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestDump(t *testing.T) {
	m := testenv.MariaDB(t)
	seed(t, m)
	ssh := testenv.SSHD(t)
	sshCfg := ssh.Config()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(m.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Options{Host: m.Host, Port: m.Port, User: m.User, PasswordFile: pwFile}
	remote := base
	remote.SSH = &sshCfg
	tests := []struct {
		name string
		o    Options
	}{{"local", base}, {"over ssh", remote}}
	ctx := context.Background()
	db, err := Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	dbs, err := Databases(ctx, db)
	if err != nil || strings.Join(dbs, ",") != "app,other" {
		t.Fatalf("Databases = %v, %v", dbs, err)
	}
	tables, err := Tables(ctx, db, dbs)
	if err != nil || len(tables) != 3 {
		t.Fatalf("Tables = %v, %v", tables, err)
	}
	want, err := CountRows(ctx, db, tables)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			counts, err := tt.o.Dump(ctx, DumpOptions{Databases: dbs}, &out)
			if err != nil {
				t.Fatal(err)
			}
			if testing.Verbose() {
				t.Log(out.String())
			}
			for _, w := range want {
				if got := counts[TableKey{w.Database, w.Table}]; got != w.Rows {
					t.Errorf("%s.%s: dump counted %d rows, COUNT(*) says %d", w.Database, w.Table, got, w.Rows)
				}
			}
			if strings.Contains(out.String(), m.Password) {
				t.Error("password appears in the dump")
			}
			if !strings.Contains(out.String(), "CREATE TABLE `users`") {
				t.Error("dump lacks the users table")
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	m := testenv.MariaDB(t)
	o := Options{Host: m.Host, Port: m.Port, User: m.User, Password: "wrong"}
	if _, err := Open(context.Background(), o); !errors.Is(err, ErrConnect) {
		t.Fatalf("Open = %v, want ErrConnect", err)
	}
	_, err := o.Dump(context.Background(), DumpOptions{Databases: []string{"mysql"}}, &bytes.Buffer{})
	if !errors.Is(err, ErrDump) || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("Dump = %v, want ErrDump without the password", err)
	}
}
