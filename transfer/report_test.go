package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// TestPushMetricsAndAlert: push writes its textfile after a run (the
// newest set forwarded, the bytes, the result); a failed push alerts by
// mail (a real SMTP listener) and webhook (a real HTTP listener) and keeps
// the time of the last success; every bcp_transfer_* metric the example
// alert rules use is in the file.
func TestPushMetricsAndAlert(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 3))
	smtp, hook := testenv.SMTP(t), testenv.Webhook(t)
	prom := filepath.Join(t.TempDir(), "bcp_transfer.prom")
	args := []string{"push", "--allowed-signers", c.Allowed, "--metrics-file", prom,
		"--alert-smtp-addr", smtp.Addr(), "--alert-smtp-from", "bcp@example.org", "--alert-smtp-to", "ops@example.org",
		"--alert-webhook-url", hook.URL, srcDir, dstDir}

	out, errs, code := transfer(t, nil, args...)
	want(t, "push", code, 0, out, errs)
	text := readText(t, prom)
	seq, _ := manifest.ParseSetID(id)
	for _, w := range []string{
		`bcp_transfer_last_run_success{channel="` + filepath.Base(srcDir) + `"} 1`,
		fmt.Sprintf(`bcp_transfer_set_sequence{channel=%q} %d`, filepath.Base(srcDir), seq),
		`bcp_transfer_sets_copied{channel="` + filepath.Base(srcDir) + `"} 1`,
		`bcp_transfer_stage_bytes{channel="` + filepath.Base(srcDir) + `",stage="copy"}`,
	} {
		if !strings.Contains(text, w) {
			t.Errorf("metrics file lacks %q:\n%s", w, text)
		}
	}
	rules, err := metrics.ReadRules("../examples/prometheus/bcp-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	missing, err := rules.MissingIn(prom, "bcp_transfer_")
	if err != nil {
		t.Fatal(err)
	}
	for m, alerts := range missing {
		t.Errorf("example rules %v use %s, which transfer does not write", alerts, m)
	}
	if len(smtp.Messages())+len(hook.Posts()) != 0 {
		t.Fatal("a successful push alerted")
	}

	// The destination turns out to be another channel: refused (exit 6),
	// alerted, recorded as failed.
	if err := os.Remove(filepath.Join(dstDir, manifest.ChannelFileName)); err != nil {
		t.Fatal(err)
	}
	if err := manifest.WriteChannel(dstDir, manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}); err != nil {
		t.Fatal(err)
	}
	out, errs, code = transfer(t, nil, args...)
	want(t, "push to another channel", code, 6, out, errs)
	mails, posts := smtp.Messages(), hook.Posts()
	if len(mails) != 1 || !strings.Contains(mails[0], "Subject: [bcp] transfer push FAILED on") || !strings.Contains(mails[0], "(exit 6)") ||
		!strings.Contains(mails[0], "bcp-to-prod") || len(posts) != 1 || posts[0]["exit_code"] != float64(6) {
		t.Fatalf("alert: mails %q, webhook %v", mails, posts)
	}
	text = readText(t, prom)
	if !strings.Contains(text, `bcp_transfer_last_run_success{channel="`+filepath.Base(srcDir)+`"} 0`) ||
		!strings.Contains(text, "bcp_transfer_last_success_timestamp_seconds") {
		t.Fatalf("metrics file after the failure:\n%s", text)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
