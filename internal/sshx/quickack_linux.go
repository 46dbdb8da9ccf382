package sshx

import (
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// quickAckConn acknowledges what it receives at once (TCP_QUICKACK, armed
// again before each of its first quickAckReads reads: the kernel drops
// back to delayed acknowledgements by itself). sshd leaves Nagle's
// algorithm on for sessions without a terminal, so a small packet it sends
// right after another one waits for the client's acknowledgement of the
// first - which Linux delays by 40 ms when the client has nothing to send:
// opening each session cost 44 ms on loopback. Only the start of a
// connection (handshake, sessions, the helper's start) is that
// conversational; bulk reads do not need it.
type quickAckConn struct {
	net.Conn
	raw   syscall.RawConn
	reads atomic.Int32
}

const quickAckReads = 256

func newQuickAckConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: c, raw: raw}
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	if c.reads.Add(1) <= quickAckReads {
		_ = c.raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1) })
	}
	return c.Conn.Read(p)
}
