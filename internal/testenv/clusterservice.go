package testenv

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// ClusterService stands in for Squirro's cluster service, the proprietary
// part that names a site's leader: an honest HTTP server on loopback that
// answers GET with {"cluster": {"leader": NAME}} and can be told to move the
// leader (Move), as Squirro does when the leader node fails. With Token set
// it answers 401 to a request without "Authorization: Bearer TOKEN".
type ClusterService struct {
	URL   string
	Token string

	user, password string
	srv            *httptest.Server
	mu             sync.Mutex
	leader         string
	asked          int
}

// NewClusterService starts a stand-in naming leader, stopped when the test
// ends. token may be empty (no auth); tls serves https with httptest's
// certificate (CAPEM gives it).
func NewClusterService(t testing.TB, leader, token string, tls bool) *ClusterService {
	t.Helper()
	c := &ClusterService{Token: token, leader: leader}
	h := http.HandlerFunc(c.serve)
	if tls {
		c.srv = httptest.NewTLSServer(h)
	} else {
		c.srv = httptest.NewServer(h)
	}
	c.URL = c.srv.URL + "/service/cluster/v0/leader"
	t.Cleanup(c.srv.Close)
	return c
}

func (c *ClusterService) serve(w http.ResponseWriter, r *http.Request) {
	if c.Token != "" && r.Header.Get("Authorization") != "Bearer "+c.Token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	c.mu.Lock()
	user, pw := c.user, c.password
	c.mu.Unlock()
	if u, p, _ := r.BasicAuth(); user != "" && (u != user || p != pw) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	c.mu.Lock()
	c.asked++
	name := c.leader
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"cluster": map[string]string{"leader": name}})
}

// BasicAuth makes the service require basic auth with user and password.
func (c *ClusterService) BasicAuth(user, password string) {
	c.mu.Lock()
	c.user, c.password = user, password
	c.mu.Unlock()
}

// Move makes name the leader.
func (c *ClusterService) Move(name string) {
	c.mu.Lock()
	c.leader = name
	c.mu.Unlock()
}

// Asked is how many answers the service gave.
func (c *ClusterService) Asked() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.asked
}

// CAPEM is the PEM certificate a client must trust to reach a TLS service.
func (c *ClusterService) CAPEM() []byte {
	cert := c.srv.Certificate()
	if cert == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}
