package leader

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func write(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestHTTP asks the cluster service stand-in, over https with a private CA
// and a bearer token, whether this node leads; then the leader moves.
func TestHTTP(t *testing.T) {
	svc := testenv.NewClusterService(t, "app-1", "s3cret-token", true)
	ca := write(t, "ca.pem", string(svc.CAPEM()), 0o644)
	tok := write(t, "token", "s3cret-token\n", 0o600)
	o := Options{URL: svc.URL, Field: "cluster.leader", TokenFile: tok, CAFile: ca, NodeName: "app-1"}
	if err := o.Validate(); err != nil || o.Mode != ModeHTTP {
		t.Fatalf("Validate: %v, mode %q; want http (leader-url set)", err, o.Mode)
	}
	r, err := Find(context.Background(), o)
	if err != nil || !r.Leader || r.Name != "app-1" {
		t.Fatalf("Find = %+v, %v; want app-1 leads", r, err)
	}
	svc.Move("app-2")
	r, err = Find(context.Background(), o)
	if err != nil || r.Leader || r.Name != "app-2" || !strings.Contains(r.Note, "app-2") {
		t.Fatalf("after the move Find = %+v, %v; want app-2 leads, not this node", r, err)
	}
}

// TestHTTPRefusals: every way the leader cannot be told is an error that
// says what to fix, and a secret never shows in it.
func TestHTTPRefusals(t *testing.T) {
	svc := testenv.NewClusterService(t, "app-1", "s3cret-token", true)
	ca := write(t, "ca.pem", string(svc.CAPEM()), 0o644)
	tests := []struct {
		name string
		o    Options
		is   error
		want string
	}{
		{"no CA", Options{URL: svc.URL, TokenFile: write(t, "t", "s3cret-token", 0o600)}, ErrUnavailable, "certificate"},
		{"wrong token", Options{URL: svc.URL, CAFile: ca, TokenFile: write(t, "t", "wrong-token", 0o600)}, ErrUnavailable, "leader-token-file"},
		{"token readable by others", Options{URL: svc.URL, CAFile: ca, TokenFile: write(t, "t", "s3cret-token", 0o644)}, ErrSecretFile, "chmod 600"},
		{"empty token", Options{URL: svc.URL, CAFile: ca, TokenFile: write(t, "t", "\n", 0o600)}, ErrSecretFile, "empty"},
		{"no such field", Options{URL: svc.URL, CAFile: ca, Field: "leader.name", TokenFile: write(t, "t", "s3cret-token", 0o600)}, ErrUnavailable, "leader-json-field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			if err := o.Validate(); err != nil {
				t.Fatal(err)
			}
			_, err := Find(context.Background(), o)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Find: %v; want %v saying %q", err, tt.is, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}

// TestBasicAuth logs in with a user and a password from a 0600 file.
func TestBasicAuth(t *testing.T) {
	svc := testenv.NewClusterService(t, "app-1", "", false)
	svc.BasicAuth("bcp", "pw-42")
	o := Options{URL: svc.URL, Field: "cluster.leader", Username: "bcp", PasswordFile: write(t, "pw", "pw-42\n", 0o600), NodeName: "app-1"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if r, err := Find(context.Background(), o); err != nil || !r.Leader {
		t.Fatalf("Find = %+v, %v; want this node leads", r, err)
	}
	o.PasswordFile = write(t, "pw", "wrong\n", 0o600)
	if _, err := Find(context.Background(), o); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("wrong password: %v, want ErrUnavailable", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		mode string
		bad  bool
	}{
		{"nothing set", Options{}, ModeNone, false},
		{"url only", Options{URL: "http://127.0.0.1:1/x"}, ModeHTTP, false},
		{"static without host", Options{Mode: ModeStatic}, "", true},
		{"mysql without mysql", Options{Mode: ModeMySQL}, "", true},
		{"token and basic", Options{URL: "http://127.0.0.1:1/", TokenFile: "/t", Username: "u", PasswordFile: "/p"}, "", true},
		{"user without password", Options{URL: "http://127.0.0.1:1/", Username: "u"}, "", true},
		{"unknown mode", Options{Mode: "zookeeper"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			if tt.bad != (err != nil) || (err != nil && !errors.Is(err, cli.ErrUsage)) {
				t.Fatalf("Validate: %v, want bad=%v as a usage error", err, tt.bad)
			}
			if !tt.bad && tt.o.Mode != tt.mode {
				t.Fatalf("mode %q, want %q", tt.o.Mode, tt.mode)
			}
		})
	}
}

// TestStaticAndMySQL: a static name, and the node whose MySQL is writable.
func TestStaticAndMySQL(t *testing.T) {
	o := Options{Mode: ModeStatic, Host: "app-2", NodeName: "app-1"}
	if r, err := Find(context.Background(), o); err != nil || r.Leader {
		t.Fatalf("static: %+v, %v; want not the leader", r, err)
	}
	m := testenv.MariaDB(t)
	db := m.DB(t)
	o = Options{Mode: ModeMySQL, NodeName: "app-1", MySQL: func(context.Context) (*sql.DB, error) { return sql.Open("mysql", m.DSN("")) }}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if r, err := Find(context.Background(), o); err != nil || !r.Leader {
		t.Fatalf("writable MySQL: %+v, %v; want the leader", r, err)
	}
	if _, err := db.Exec("SET GLOBAL read_only = 1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = db.Exec("SET GLOBAL read_only = 0") })
	if r, err := Find(context.Background(), o); err != nil || r.Leader {
		t.Fatalf("read-only MySQL: %+v, %v; want not the leader", r, err)
	}
}

func TestEvenWarning(t *testing.T) {
	for n, warn := range map[int]bool{0: false, 1: false, 2: true, 3: false, 4: true, 5: false} {
		if got := EvenWarning("nodes", n); (got != "") != warn {
			t.Errorf("EvenWarning(%d) = %q, want a warning: %v", n, got, warn)
		}
	}
}
