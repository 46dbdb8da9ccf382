package sshx_test

import (
	"context"
	"os/user"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// TestEmptyUserIsCurrentUser: no ssh-user logs in as the user running the
// program, as ssh(1) does (the test sshd accepts only that user), and the
// host key is still checked.
func TestEmptyUserIsCurrentUser(t *testing.T) {
	srv := testenv.SSHD(t)
	cfg := srv.Config()
	cfg.User = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sshx.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.User(); got != me.Username {
		t.Fatalf("logged in as %q, want %q", got, me.Username)
	}
	var out strings.Builder
	if err := c.Run(ctx, "id -un", nil, &out, nil); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != me.Username {
		t.Fatalf("id -un = %q, want %q", out.String(), me.Username)
	}
}
