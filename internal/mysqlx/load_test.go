package mysqlx

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestLoad dumps two schemas of one real server with mysqldump and loads the
// zstd-compressed dump into another: tables the target had but the dump does
// not are gone, row counts match, and a dump that touches a system schema is
// refused.
func TestLoad(t *testing.T) {
	src, dst := testenv.MariaDB(t), testenv.MariaDB(t)
	sdb, ddb := src.DB(t), dst.DB(t)
	ctx := context.Background()
	for _, q := range []string{
		"CREATE DATABASE ld_app", "CREATE TABLE ld_app.users (id INT PRIMARY KEY, name VARCHAR(20))",
		"INSERT INTO ld_app.users VALUES (1,'ann'),(2,'bob')",
		"CREATE DATABASE ld_meta", "CREATE TABLE ld_meta.p (id INT PRIMARY KEY)", "INSERT INTO ld_meta.p VALUES (7)",
	} {
		if _, err := sdb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"CREATE DATABASE ld_app", "CREATE TABLE ld_app.leftover (id INT)", "INSERT INTO ld_app.leftover VALUES (1)"} {
		if _, err := ddb.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var dump bytes.Buffer
	cmd := exec.Command("mysqldump", "--defaults-extra-file="+src.Defaults(t), "--single-transaction", "--databases", "ld_app", "ld_meta")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &dump, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mysqldump: %v %s", err, stderr.String())
	}
	var z bytes.Buffer
	zw, err := zstd.NewWriter(&z)
	testkit.Must(t, err)
	_, err = zw.Write(dump.Bytes())
	testkit.Must(t, err)
	testkit.Must(t, zw.Close())
	defaults := dst.Defaults(t)

	st, err := Load(ctx, LoadOptions{Dump: bytes.NewReader(z.Bytes()), Compression: "zstd", Databases: []string{"ld_app", "ld_meta"}, DefaultsFile: defaults})
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes < int64(dump.Len()) {
		t.Fatalf("sent %d bytes, dump has %d", st.Bytes, dump.Len())
	}
	counts := []manifest.TableCount{{Database: "ld_app", Table: "users", Rows: 2}, {Database: "ld_meta", Table: "p", Rows: 1}}
	if err := CheckRowCounts(ctx, ddb, counts); err != nil {
		t.Fatal(err)
	}
	if err := CheckRowCounts(ctx, ddb, []manifest.TableCount{{Database: "ld_app", Table: "users", Rows: 3}}); !errors.Is(err, ErrRowCount) {
		t.Fatalf("wrong count: %v, want ErrRowCount", err)
	}
	var n int
	testkit.Must(t, ddb.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='ld_app' AND TABLE_NAME='leftover'").Scan(&n))
	if n != 0 {
		t.Fatal("a table the set does not have survived the load")
	}

	tests := []struct {
		name string
		dbs  []string
		sql  string
	}{
		{"set lists a system schema", []string{"mysql"}, "SELECT 1;\n"},
		{"dump switches to a system schema", []string{"ld_app"}, "USE `ld_app`;\nUSE `mysql`;\nDELETE FROM user;\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(ctx, LoadOptions{Dump: bytes.NewReader([]byte(tt.sql)), Databases: tt.dbs, DefaultsFile: defaults})
			if !errors.Is(err, ErrSystemSchema) {
				t.Fatalf("err = %v, want ErrSystemSchema", err)
			}
			var users int
			if err := ddb.QueryRow("SELECT COUNT(*) FROM mysql.user").Scan(&users); err != nil || users == 0 {
				t.Fatalf("mysql.user touched: %d users, %v", users, err)
			}
		})
	}
}
