package alert

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a small but real SMTP server on loopback: it speaks the
// protocol net/smtp speaks and records each message.
type smtpServer struct {
	ln   net.Listener
	mu   sync.Mutex
	msgs []string
	rcpt []string
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(l string) { io.WriteString(c, l+"\r\n") }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			s.mu.Lock()
			s.rcpt = append(s.rcpt, strings.TrimSpace(line[8:]))
			s.mu.Unlock()
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, b.String())
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestSendBoth(t *testing.T) {
	srv := startSMTP(t)
	var got map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&got)
	}))
	t.Cleanup(hook.Close)
	a := Alert{Program: "backup", Command: "run", Host: "node1", Time: time.Unix(0, 0), ExitCode: 3, Summary: "elasticsearch at 127.0.0.1:9200: connection refused"}
	o := Options{SMTPAddr: srv.ln.Addr().String(), SMTPFrom: "bcp@example.org", SMTPTo: []string{"ops@example.org"}, WebhookURL: hook.URL}
	if err := Send(context.Background(), o, a); err != nil {
		t.Fatal(err)
	}
	if len(srv.msgs) != 1 || !strings.Contains(srv.msgs[0], "Subject: [bcp] backup run FAILED on node1 (exit 3)") || !strings.Contains(srv.msgs[0], "connection refused") {
		t.Fatalf("mail = %q", srv.msgs)
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
	ln.Close() // nothing listens there now
	err := Send(context.Background(), Options{SMTPAddr: addr, SMTPFrom: "a@b", SMTPTo: []string{"c@d"}, WebhookURL: hook.URL}, Alert{})
	if err == nil || !strings.Contains(err.Error(), "alert email") || !strings.Contains(err.Error(), "alert webhook") {
		t.Fatalf("err = %v, want both failures named", err)
	}
}
