package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/manifest"
)

// TestMetricsAndAlert: a successful run writes the textfile; a failed one
// keeps the last success time, sets success 0, and posts the alert.
func TestMetricsAndAlert(t *testing.T) {
	w := newWorld(t)
	var alerts []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var a map[string]any
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			t.Errorf("alert body: %v", err)
		}
		alerts = append(alerts, a)
	}))
	t.Cleanup(hook.Close)
	w.cfg.MetricsFile = filepath.Join(w.dir, "bcp_backup.prom")
	w.cfg.Alert.WebhookURL = hook.URL
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out bytes.Buffer
	if err := runRun(context.Background(), runOptions{cfg: w.cfg, log: log, progress: manifest.NoProgress{}}, &out); err != nil {
		t.Fatal(err)
	}
	prom, _ := os.ReadFile(w.cfg.MetricsFile)
	for _, want := range []string{`bcp_backup_last_run_success{channel="prod-to-bcp"} 1`, `stage="mysql"`, `stage="files"`, `stage="elasticsearch"`, "bcp_backup_last_success_timestamp_seconds"} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("textfile lacks %q:\n%s", want, prom)
		}
	}
	if len(alerts) != 0 {
		t.Fatalf("alert on success: %v", alerts)
	}
	w.cfg.ES.URLs = []string{"http://127.0.0.1:1"}
	if err := runRun(context.Background(), runOptions{cfg: w.cfg, log: log, progress: manifest.NoProgress{}}, &out); exitCodes.Code(err) != 3 {
		t.Fatalf("failed run: %v", err)
	}
	prom, _ = os.ReadFile(w.cfg.MetricsFile)
	if !strings.Contains(string(prom), `bcp_backup_last_run_success{channel="prod-to-bcp"} 0`) || !strings.Contains(string(prom), "bcp_backup_last_success_timestamp_seconds{channel=\"prod-to-bcp\"} 1") {
		t.Errorf("textfile after failure:\n%s", prom)
	}
	if len(alerts) != 1 || alerts[0]["exit_code"] != float64(3) || !strings.Contains(alerts[0]["summary"].(string), "preflight") {
		t.Fatalf("alerts = %v", alerts)
	}
}

// TestExampleConfigParses loads examples/backup.toml through the real
// command line: every key must be a setting of its type.
func TestExampleConfigParses(t *testing.T) {
	for _, cmd := range []string{"check", "prune"} {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, &out
		err := app.Run([]string{"backup", cmd, "--config", "../examples/backup.toml", "--role-file", "/nonexistent/role"})
		if cmd == "check" && err == nil {
			t.Fatal("check passed on this machine?")
		}
		if err != nil && strings.Contains(err.Error(), "config file") {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
}
