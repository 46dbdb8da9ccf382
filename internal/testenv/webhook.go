package testenv

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookServer is a real HTTP server on loopback that records the JSON
// objects POSTed to it, as an alert webhook receiver would get them.
type WebhookServer struct {
	URL   string
	mu    sync.Mutex
	posts []map[string]any
	got   chan struct{}
}

// Webhook starts a webhook receiver for the test; it stops at the test's end.
func Webhook(t testing.TB) *WebhookServer {
	t.Helper()
	s := &WebhookServer{got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.posts = append(s.posts, m)
		s.mu.Unlock()
		select {
		case s.got <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Posts are the objects received so far.
func (s *WebhookServer) Posts() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.posts...)
}

// Received is signalled once per post.
func (s *WebhookServer) Received() <-chan struct{} { return s.got }
