package metrics

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const exampleRules = "../../examples/prometheus/bcp-alerts.yml"

// The example rules parse, every bcp_* metric they name belongs to one of
// the three programs, and backup's are the ones Write writes for a backup
// (restore's and transfer's are checked against what those programs write,
// in their own tests).
func TestExampleRules(t *testing.T) {
	f, err := ReadRules(exampleRules)
	if err != nil {
		t.Fatal(err)
	}
	for m, alerts := range f.Metrics("bcp_") {
		if !strings.HasPrefix(m, "bcp_backup_") && !strings.HasPrefix(m, "bcp_transfer_") && !strings.HasPrefix(m, "bcp_restore_") {
			t.Errorf("%v use %s, which no program writes", alerts, m)
		}
	}
	path := filepath.Join(t.TempDir(), "bcp_backup.prom")
	if err := Write(path, Run{Program: "backup", Channel: "prod-to-bcp", Time: time.Now(), Stages: []Stage{{Name: "total"}}}); err != nil {
		t.Fatal(err)
	}
	missing, err := f.MissingIn(path, "bcp_backup_")
	if err != nil {
		t.Fatal(err)
	}
	for m, alerts := range missing {
		t.Errorf("%v use %s, which backup does not write", alerts, m)
	}
	if len(f.Metrics("bcp_restore_")) == 0 || len(f.Metrics("bcp_transfer_")) == 0 {
		t.Error("the example rules watch neither restore nor transfer")
	}
}

// A rule file with a mistake in its structure is refused, naming it.
func TestReadRulesStrict(t *testing.T) {
	for name, text := range map[string]string{
		"unknown key": "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels: {severity: x}\n        annotations: {summary: s}\n        fro: 5m\n",
		"no severity": "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations: {summary: s}\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "r.yml")
			writeText(t, p, text)
			if _, err := ReadRules(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
