package alert

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestSendBoth(t *testing.T) {
	srv := testenv.SMTP(t)
	var got map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Errorf("webhook body: %v", err)
		}
	}))
	t.Cleanup(hook.Close)
	a := Alert{Program: "backup", Command: "run", Host: "node1", Time: time.Unix(0, 0), ExitCode: 3, Summary: "elasticsearch at 127.0.0.1:9200: connection refused"}
	o := Options{SMTPAddr: srv.Addr(), SMTPFrom: "bcp@example.org", SMTPTo: []string{"ops@example.org"}, WebhookURL: hook.URL}
	if err := Send(context.Background(), o, a); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(); len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: [bcp] backup run FAILED on node1 (exit 3)") || !strings.Contains(msgs[0], "connection refused") {
		t.Fatalf("mail = %q", msgs)
	}
	if got["exit_code"] != float64(3) || !strings.Contains(got["text"].(string), "FAILED") {
		t.Fatalf("webhook got %v", got)
	}
}

func TestSendReportsEachFailure(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	t.Cleanup(hook.Close)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	err := Send(context.Background(), Options{SMTPAddr: addr, SMTPFrom: "a@b", SMTPTo: []string{"c@d"}, WebhookURL: hook.URL}, Alert{})
	if err == nil || !strings.Contains(err.Error(), "alert email") || !strings.Contains(err.Error(), "alert webhook") {
		t.Fatalf("err = %v, want both failures named", err)
	}
}

// A condition's alert and its end say so, not FAILED; the webhook's JSON
// carries the status.
func TestStatusInSubjectAndWebhook(t *testing.T) {
	hook := testenv.Webhook(t)
	for i, tt := range []struct {
		a       Alert
		subject string
		status  string
	}{
		{Alert{Program: "restore", Command: "watch", Host: "bcp1", Status: Firing}, "[bcp] restore watch FIRING on bcp1", "firing"},
		{Alert{Program: "restore", Command: "watch", Host: "bcp1", Status: Resolved}, "[bcp] restore watch RESOLVED on bcp1", "resolved"},
		{Alert{Program: "transfer", Command: "push", Host: "prod1", ExitCode: 4}, "[bcp] transfer push FAILED on prod1 (exit 4)", "failed"},
	} {
		if s := tt.a.Subject(); s != tt.subject {
			t.Errorf("subject %q, want %q", s, tt.subject)
		}
		if err := Send(context.Background(), Options{WebhookURL: hook.URL}, tt.a); err != nil {
			t.Fatal(err)
		}
		if got := hook.Posts(); len(got) != i+1 || got[i]["status"] != tt.status {
			t.Errorf("webhook got %v, want status %q", got, tt.status)
		}
	}
}
