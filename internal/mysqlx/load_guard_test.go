package mysqlx

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGuardStopsAtSystemSchema(t *testing.T) {
	long := strings.Repeat("x", 200_000) // a line longer than the guard's buffer
	tests := []struct {
		name    string
		sql     string
		wantErr bool
	}{
		{"app schema", "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `squirro` /*!40100 DEFAULT CHARACTER SET utf8mb4 */;\nUSE `squirro`;\nINSERT INTO t VALUES ('" + long + "');\n", false},
		{"use mysql", "USE `squirro`;\nUSE `mysql`;\nINSERT INTO user VALUES (1);\n", true},
		{"create sys", "CREATE DATABASE IF NOT EXISTS sys;\n", true},
		{"drop schema", "DROP SCHEMA performance_schema;\n", true},
		{"mention inside a long insert is data", "INSERT INTO t VALUES ('" + long + "\nUSE `mysql`');\n", true},
		{"mention mid-line is data", "INSERT INTO t VALUES ('USE `mysql`');\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &guard{br: newBufReader(tt.sql)}
			out, err := io.ReadAll(g)
			if tt.wantErr {
				if !errors.Is(err, ErrSystemSchema) || !errors.Is(g.verdict(), ErrSystemSchema) {
					t.Fatalf("err = %v, want ErrSystemSchema", err)
				}
				if strings.Contains(string(out), "`mysql`;") || strings.Contains(string(out), " sys;") {
					t.Fatalf("the offending statement was passed on")
				}
				return
			}
			if err != nil || string(out) != tt.sql {
				t.Fatalf("err = %v, output differs: %v", err, string(out) != tt.sql)
			}
		})
	}
}

func TestOptionFileDSN(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, file, want string }{
		{"tcp", "[client]\nuser=bcp\npassword=\"s3cr=t\"\nhost=127.0.0.1\nport=3307\n", "bcp:s3cr=t@tcp(127.0.0.1:3307)/"},
		{"socket", "[client]\nuser = root\nsocket = /run/my.sock\n[mysqld]\nport=1\n", "root@unix(/run/my.sock)/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".cnf")
			if err := os.WriteFile(p, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := OptionFileDSN(p)
			if err != nil || !strings.HasPrefix(got, tt.want) {
				t.Fatalf("OptionFileDSN = %q, %v; want prefix %q", got, err, tt.want)
			}
		})
	}
}

func newBufReader(s string) *bufio.Reader { return bufio.NewReaderSize(strings.NewReader(s), 64<<10) }

// TestLoadNeverDropsSystemSchema: a system schema among the databases to
// drop stops the load before the client runs.
func TestLoadNeverDropsSystemSchema(t *testing.T) {
	_, err := Load(t.Context(), LoadOptions{Dump: strings.NewReader(""), Databases: []string{"app"}, Drop: []string{"old", "MySQL"}, DefaultsFile: "/nonexistent"})
	if !errors.Is(err, ErrSystemSchema) || !strings.Contains(err.Error(), "MySQL") {
		t.Fatalf("err = %v, want ErrSystemSchema naming MySQL", err)
	}
}
