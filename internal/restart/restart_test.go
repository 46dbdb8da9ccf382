package restart

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

func TestRunOnEveryNode(t *testing.T) {
	a, b := testenv.SSHD(t), testenv.SSHD(t)
	log := filepath.Join(t.TempDir(), "restarts")
	wrongKeys := filepath.Join(t.TempDir(), "known_hosts")
	// b's port with a's host key: a mismatch
	akh, _ := os.ReadFile(a.KnownHosts)
	line := strings.Replace(strings.TrimSpace(string(akh)), a.Addr()[len("127.0.0.1:"):], b.Addr()[len("127.0.0.1:"):], 1)
	if err := os.WriteFile(wrongKeys, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := b.Config()
	bad.KnownHosts = wrongKeys
	tests := []struct {
		name    string
		nodes   []Node
		command string
		timeout time.Duration
		wantOK  []bool
		wantErr error
		says    string
	}{
		{"all nodes", []Node{{Name: "a", SSH: a.Config()}, {Name: "b", SSH: b.Config()}}, "echo restarted $0 >> " + log, 0, []bool{true, true}, nil, ""},
		{"one node fails", []Node{{Name: "a", SSH: a.Config()}, {Name: "b", SSH: b.Config()}}, "test -e " + log + "-b-only || exit 3", 0, []bool{false, false}, ErrFailed, "exited 3"},
		{"host key mismatch", []Node{{Name: "a", SSH: a.Config()}, {Name: "b", SSH: bad}}, "true", 0, []bool{true, false}, sshx.ErrHostKey, "MISMATCH"},
		{"timeout", []Node{{Name: "a", SSH: a.Config()}}, "sleep 30", 500 * time.Millisecond, []bool{false}, ErrFailed, "no result within"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Run(context.Background(), Options{Nodes: tt.nodes, Command: tt.command, Timeout: tt.timeout})
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != nil && (!errors.Is(err, tt.wantErr) && !errors.Is(err, ErrFailed)) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == sshx.ErrHostKey && !errors.Is(res[1].Err, sshx.ErrHostKey) {
				t.Fatalf("node b: %v, want a host key error", res[1].Err)
			}
			if len(res) != len(tt.nodes) {
				t.Fatalf("%d results for %d nodes", len(res), len(tt.nodes))
			}
			for i, r := range res {
				if r.OK != tt.wantOK[i] {
					t.Fatalf("node %s ok=%v (%s), want %v", r.Node, r.OK, r.Error, tt.wantOK[i])
				}
			}
			if tt.says != "" && !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("error %q does not say %q", err, tt.says)
			}
		})
	}
	b2, _ := os.ReadFile(log)
	if strings.Count(string(b2), "restarted") != 2 {
		t.Fatalf("restart log:\n%s\nwant two lines", b2)
	}
}
