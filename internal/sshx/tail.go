package sshx

import (
	"bytes"
	"strings"
	"sync"
)

// Tail keeps the last 4 KiB written to it: a remote command's output for an
// error message, however much the command prints. Safe for concurrent
// writes (stdout and stderr may share one).
type Tail struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// TailMax is how much a Tail keeps.
const TailMax = 4096

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if t.buf.Len() > 2*TailMax {
		b := t.buf.Bytes()
		keep := append([]byte(nil), b[len(b)-TailMax:]...)
		t.buf.Reset()
		t.buf.Write(keep)
	}
	return len(p), nil
}

// String returns what was kept on one line, its lines joined by " / "
// and without surrounding white space: it ends an error message, whose
// last line must still say what failed (a login shell's noise on stderr
// would otherwise end it).
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf.Bytes()
	if len(b) > TailMax {
		b = b[len(b)-TailMax:]
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, " / ")
}
