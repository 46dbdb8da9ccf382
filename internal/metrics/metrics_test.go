package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteKeepsLastSuccess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bcp_backup.prom")
	ok := Run{Program: "backup", Channel: "prod-to-bcp", Time: time.Unix(1000, 0), Success: true,
		Stages: []Stage{{"elasticsearch", 2 * time.Second, 100}, {"mysql", time.Second, 50}}}
	if err := Write(path, ok); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, Run{Program: "backup", Channel: "prod-to-bcp", Time: time.Unix(2000, 0)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	for _, want := range []string{
		`bcp_backup_last_success_timestamp_seconds{channel="prod-to-bcp"} 1000`,
		`bcp_backup_last_run_timestamp_seconds{channel="prod-to-bcp"} 2000`,
		`bcp_backup_last_run_success{channel="prod-to-bcp"} 0`,
		`bcp_backup_stage_bytes{channel="prod-to-bcp",stage="mysql"} 50`,
		`bcp_backup_stage_duration_seconds{channel="prod-to-bcp",stage="elasticsearch"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("textfile lacks %q:\n%s", want, out)
		}
	}
}

// Between runs a program writes its state; the last run's values stay as
// the file had them, and a program that never ran shows no run at all.
func TestWriteStateKeepsLastRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bcp_restore.prom")
	age := func(v float64) []Gauge {
		return []Gauge{{Name: "recovery_point_age_seconds", Help: "Age of the recovery point.", Value: v}}
	}
	if err := WriteState(path, Run{Program: "restore", Channel: "prod-to-bcp", Gauges: age(60)}); err != nil {
		t.Fatal(err)
	}
	out := readFile(t, path)
	if !strings.Contains(out, `bcp_restore_recovery_point_age_seconds{channel="prod-to-bcp"} 60`) || strings.Contains(out, "last_run") {
		t.Fatalf("before any run:\n%s", out)
	}
	run := Run{Program: "restore", Channel: "prod-to-bcp", Time: time.Unix(1000, 0), Success: true,
		Stages: []Stage{{Name: "elasticsearch", Duration: 3 * time.Second}}, Gauges: age(5)}
	if err := Write(path, run); err != nil {
		t.Fatal(err)
	}
	if err := WriteState(path, Run{Program: "restore", Channel: "prod-to-bcp", Time: time.Unix(5000, 0), Gauges: age(4000)}); err != nil {
		t.Fatal(err)
	}
	out = readFile(t, path)
	for _, want := range []string{
		`bcp_restore_recovery_point_age_seconds{channel="prod-to-bcp"} 4000`,
		`bcp_restore_last_run_timestamp_seconds{channel="prod-to-bcp"} 1000`,
		`bcp_restore_last_run_success{channel="prod-to-bcp"} 1`,
		`bcp_restore_last_success_timestamp_seconds{channel="prod-to-bcp"} 1000`,
		`bcp_restore_stage_duration_seconds{channel="prod-to-bcp",stage="elasticsearch"} 3`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("textfile lacks %q:\n%s", want, out)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeText(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
