package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/manifest"
)

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.toml")
	if err := os.WriteFile(cfg, []byte("name = \"from-file\"\nwait = \"90s\"\nroots = [\"a\", \"b\"]\ncount = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantName  string
		wantCount int
	}{
		{"file", []string{"--config", cfg}, nil, "from-file", 7},
		{"env beats file", []string{"--config", cfg}, map[string]string{"BCP_TESTPROG_NAME": "from-env"}, "from-env", 7},
		{"flag beats env", []string{"--config", cfg, "--name", "from-flag"}, map[string]string{"BCP_TESTPROG_NAME": "from-env"}, "from-flag", 7},
		{"default", nil, nil, "def", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			f := Flags{Program: "testprog"}
			var gotName string
			var gotCount int
			var gotWait time.Duration
			var gotRoots []string
			cmd := Program{Name: "testprog"}.Command(&ucli.Command{
				Name:  "x",
				Flags: []ucli.Flag{f.String("name", "def", ""), f.Int("count", 1, ""), f.Duration("wait", 0, ""), f.Strings("roots", nil, "")},
				Action: func(c *ucli.Context) error {
					gotName, gotCount, gotWait, gotRoots = c.String("name"), c.Int("count"), c.Duration("wait"), c.StringSlice("roots")
					return nil
				},
			})
			app := &ucli.App{Name: "testprog", Commands: []*ucli.Command{cmd}}
			if err := app.Run(append([]string{"testprog", "x"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if gotName != tt.wantName || gotCount != tt.wantCount {
				t.Errorf("name=%q count=%d, want %q %d", gotName, gotCount, tt.wantName, tt.wantCount)
			}
			if tt.args != nil && (gotWait != 90*time.Second || len(gotRoots) != 2) {
				t.Errorf("wait=%v roots=%v", gotWait, gotRoots)
			}
		})
	}
}

func TestExitTable(t *testing.T) {
	errA := errors.New("a")
	table := ExitTable{{Err: errA, Code: 6}}
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"wrapped sentinel", fmt.Errorf("x: %w", errA), 6},
		{"usage", Usagef("bad"), 2},
		{"other", errors.New("boom"), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := table.Code(tt.err); got != tt.want {
				t.Errorf("Code = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestUnknownFlagIsUsage(t *testing.T) {
	cmd := Program{Name: "p"}.Command(&ucli.Command{Name: "x", Action: func(*ucli.Context) error { return nil }})
	app := &ucli.App{Name: "p", Commands: []*ucli.Command{cmd}, Writer: os.Stderr}
	err := app.Run([]string{"p", "x", "--nope"})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("err = %v, want ErrUsage", err)
	}
}

func TestEnvVar(t *testing.T) {
	if got := EnvVar("backup", "es-url"); got != "BCP_BACKUP_ES_URL" {
		t.Fatal(got)
	}
}

func TestDefaultConfigFile(t *testing.T) {
	dir := t.TempDir()
	old := DefaultConfigDir
	DefaultConfigDir = dir
	t.Cleanup(func() { DefaultConfigDir = old })
	other := filepath.Join(t.TempDir(), "other.toml")
	if err := os.WriteFile(other, []byte("name = \"from-other\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		var got string
		cmd := Program{Name: "testprog"}.Command(&ucli.Command{
			Name:   "x",
			Flags:  []ucli.Flag{Flags{Program: "testprog"}.String("name", "def", "")},
			Action: func(c *ucli.Context) error { got = c.String("name"); return nil },
		})
		app := &ucli.App{Name: "testprog", Commands: []*ucli.Command{cmd}}
		err := app.Run(append([]string{"testprog", "x"}, args...))
		return got, err
	}
	// No default file: the defaults, no error.
	if got, err := run(t); err != nil || got != "def" {
		t.Fatalf("without a default file: %q, %v", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "testprog.toml"), []byte("name = \"from-default\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := run(t); err != nil || got != "from-default" {
		t.Fatalf("default file: %q, %v; want from-default", got, err)
	}
	if got, err := run(t, "--config", other); err != nil || got != "from-other" {
		t.Fatalf("--config beats the default file: %q, %v", got, err)
	}
	t.Setenv("BCP_TESTPROG_CONFIG", other)
	if got, err := run(t); err != nil || got != "from-other" {
		t.Fatalf("BCP_TESTPROG_CONFIG beats the default file: %q, %v", got, err)
	}
	// A file named explicitly must exist.
	if _, err := run(t, "--config", filepath.Join(dir, "missing.toml")); !errors.Is(err, ErrUsage) {
		t.Fatalf("missing explicit config: %v, want ErrUsage", err)
	}
}

// TestNewExitTable: a program's table maps every shared sentinel to its
// code, and an error matching several takes the code of the first tier: a
// refusal before a role error before a failed preflight before another
// usage error before integrity before "try again later".
func TestNewExitTable(t *testing.T) {
	errPre := errors.New("preflight failed")
	errMine := errors.New("mine")
	table := NewExitTable(ExitRule{Err: errPre, Code: ExitPreflight}, ExitRule{Err: errMine, Code: ExitIncomplete})
	for _, r := range BaseExitRules {
		if got := table.Code(fmt.Errorf("wrapped: %w", r.Err)); got != r.Code {
			t.Errorf("%v: exit %d, want %d", r.Err, got, r.Code)
		}
	}
	both := func(a, b error) error { return errors.Join(a, b) }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"refusal and incomplete", both(manifest.ErrIncomplete, manifest.ErrStale), ExitRefused},
		{"untrusted and incomplete", both(errMine, manifest.ErrNotAuthentic), ExitIntegrity},
		{"preflight with a usage error in it", both(ErrUsage, errPre), ExitPreflight},
		{"preflight with a corrupt set in it", both(manifest.ErrCorrupt, errPre), ExitPreflight},
		{"role file missing in a preflight", both(errPre, site.ErrNoRole), ExitUsage},
		{"program's own", errMine, ExitIncomplete},
	}
	for _, tt := range tests {
		if got := table.Code(tt.err); got != tt.want {
			t.Errorf("%s: exit %d, want %d", tt.name, got, tt.want)
		}
	}
}
