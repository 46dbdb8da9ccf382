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
