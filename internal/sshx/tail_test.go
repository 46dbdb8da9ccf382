package sshx

import (
	"strings"
	"testing"
)

// A remote command's output ends an error message on one line: a login
// shell's multi-line noise does not become the message's last line.
func TestTailOneLine(t *testing.T) {
	var tl Tail
	_, _ = tl.Write([]byte("pyenv: cannot rehash\n\n  line 22: cannot overwrite\r\n"))
	if got, want := tl.String(), "pyenv: cannot rehash / line 22: cannot overwrite"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	_, _ = tl.Write([]byte(strings.Repeat("x", 3*TailMax)))
	if got := tl.String(); len(got) != TailMax || strings.Contains(got, "/") {
		t.Fatalf("after %d bytes: %d kept", 3*TailMax, len(got))
	}
}
