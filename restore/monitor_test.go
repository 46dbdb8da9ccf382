package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/alert"
	"github.com/squirro-bcp/bcp/internal/ledger"
	"github.com/squirro-bcp/bcp/internal/metrics"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// TestWatchRecoveryPointAlert: the watcher restores a set and writes the
// metrics file (recovery point age, the restore's result and stages, sets
// waiting); when the recovery point passes max-recovery-point-age it
// alerts once, by mail (a real SMTP listener) and webhook (a real HTTP
// listener), also across a restart of the watcher; when the recovery
// point is within the threshold again it says so once. The watcher's
// clock is moved instead of waiting hours.
func TestWatchRecoveryPointAlert(t *testing.T) {
	f := newFixture(t)
	smtp, hook := testenv.SMTP(t), testenv.Webhook(t)
	e := f.env()
	e.cfg.MetricsFile = filepath.Join(t.TempDir(), "bcp_restore.prom")
	e.cfg.MaxRecoveryPointAge = time.Hour
	e.cfg.Alert = alert.Options{SMTPAddr: smtp.Addr(), SMTPFrom: "bcp@example.org", SMTPTo: []string{"ops@example.org"}, WebhookURL: hook.URL}
	var ahead atomic.Int64 // how far the watcher's clock is ahead
	set := f.publishSmall()
	f.transfer()

	type watcher struct {
		cancel context.CancelFunc
		done   chan error
		looked chan struct{}
	}
	start := func() *watcher {
		ctx, cancel := context.WithCancel(context.Background())
		w := &watcher{cancel: cancel, done: make(chan error, 1), looked: make(chan struct{}, 1)}
		o := watchOptions{Poll: 20 * time.Millisecond, Retry: time.Hour,
			Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
			AfterLook: func() {
				select {
				case w.looked <- struct{}{}:
				default:
				}
			}}
		go func() { w.done <- runWatch(ctx, o, e, testWriter{t}) }()
		return w
	}
	// looks waits for n looks after this call.
	looks := func(w *watcher, n int) {
		t.Helper()
		select {
		case <-w.looked: // drain one that happened before
		default:
		}
		for range n {
			select {
			case <-w.looked:
			case err := <-w.done:
				t.Fatalf("watch ended: %v", err)
			case <-time.After(5 * time.Minute): // a bound against hanging, not a measurement
				t.Fatal("the watcher did not look")
			}
		}
	}
	stop := func(w *watcher) {
		t.Helper()
		w.cancel()
		if err := <-w.done; err != nil {
			t.Fatalf("watch: %v", err)
		}
	}
	messages := func() (mails []string, posts []map[string]any) { return smtp.Messages(), hook.Posts() }

	w := start()
	l, err := ledger.Open(f.state)
	testkit.Must(t, err)
	for {
		looks(w, 1)
		if live, err := l.Live(""); err == nil && live.Set == set {
			break
		}
		if recs, _ := l.Records(); len(recs) > 0 && recs[len(recs)-1].Outcome == ledger.Failed {
			t.Fatalf("restore failed: %s", recs[len(recs)-1].Error)
		}
	}
	looks(w, 2)
	prom := readText(t, e.cfg.MetricsFile)
	for _, want := range []string{
		`bcp_restore_recovery_point_age_seconds{channel="prod-to-bcp"}`,
		`bcp_restore_recovery_point_sequence{channel="prod-to-bcp"} 1`,
		`bcp_restore_last_run_success{channel="prod-to-bcp"} 1`,
		`bcp_restore_stage_duration_seconds{channel="prod-to-bcp",stage="elasticsearch"}`,
		`bcp_restore_sets_waiting{channel="prod-to-bcp"} 0`,
		`bcp_restore_recovery_point_alert{channel="prod-to-bcp"} 0`,
	} {
		if !strings.Contains(prom, want) {
			t.Errorf("metrics file lacks %q:\n%s", want, prom)
		}
	}
	if mails, posts := messages(); len(mails)+len(posts) != 0 {
		t.Fatalf("alerted while the recovery point is fresh: %q %v", mails, posts)
	}

	// Two hours later, no new set: one alert, however many looks.
	ahead.Store(int64(2 * time.Hour))
	looks(w, 5)
	mails, posts := messages()
	if len(mails) != 1 || len(posts) != 1 {
		t.Fatalf("after the threshold: %d mails, %d webhook posts; want one each", len(mails), len(posts))
	}
	if !strings.Contains(mails[0], "Subject: [bcp] restore watch FIRING on") || !strings.Contains(mails[0], set) ||
		!strings.Contains(mails[0], "max-recovery-point-age 1h") || posts[0]["status"] != "firing" {
		t.Fatalf("alert says:\n%s\nwebhook: %v", mails[0], posts[0])
	}
	if prom := readText(t, e.cfg.MetricsFile); !strings.Contains(prom, `bcp_restore_recovery_point_alert{channel="prod-to-bcp"} 1`) {
		t.Fatalf("metrics file does not show the alert firing:\n%s", prom)
	}

	// A restarted watcher remembers it alerted.
	stop(w)
	w = start()
	looks(w, 5)
	if mails, posts := messages(); len(mails) != 1 || len(posts) != 1 {
		t.Fatalf("after a restart: %d mails, %d webhook posts; want still one each", len(mails), len(posts))
	}

	// Within the threshold again: one notice.
	ahead.Store(0)
	looks(w, 5)
	stop(w)
	mails, posts = messages()
	if len(mails) != 2 || len(posts) != 2 {
		t.Fatalf("after recovery: %d mails, %d webhook posts; want two each", len(mails), len(posts))
	}
	if !strings.Contains(mails[1], "Subject: [bcp] restore watch RESOLVED on") || posts[1]["status"] != "resolved" {
		t.Fatalf("recovery notice says:\n%s\nwebhook: %v", mails[1], posts[1])
	}

	// Every bcp_restore_* metric the example alert rules use is in the file.
	rules, err := metrics.ReadRules("../examples/prometheus/bcp-alerts.yml")
	testkit.Must(t, err)
	missing, err := rules.MissingIn(e.cfg.MetricsFile, "bcp_restore_")
	testkit.Must(t, err)
	for m, alerts := range missing {
		t.Errorf("example rules %v use %s, which restore does not write", alerts, m)
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	testkit.Must(t, err)
	return string(b)
}
