package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey is returned (wrapped) when the server's host key is unknown or
// does not match known_hosts. Programs map it to exit code 6.
var ErrHostKey = errors.New("ssh host key not trusted")

// Config says how to reach one SSH server.
type Config struct {
	Host       string // host name or IP (loopback in tests)
	Port       int    // 22 when zero
	User       string // empty: the user running this program, as ssh(1) does
	KeyFile    string // private key; empty means ssh-agent via SSH_AUTH_SOCK
	KnownHosts string // OpenSSH known_hosts file; required
	Timeout    time.Duration
	// KeepAlive is the interval of keep-alive requests; 15s when zero,
	// negative to disable.
	KeepAlive time.Duration
	// KeepAliveCountMax is how many intervals may pass without an answer
	// from the server before the link counts as stalled and the connection
	// is closed (OpenSSH's ServerAliveCountMax); 3 when zero.
	KeepAliveCountMax int
}

// Addr is host:port.
func (c Config) Addr() string {
	p := c.Port
	if p == 0 {
		p = 22
	}
	return net.JoinHostPort(c.Host, strconv.Itoa(p))
}

// Client is an SSH connection.
type Client struct {
	*ssh.Client
	cfg  Config
	stop chan struct{}

	heard *heardConn

	mu  sync.Mutex
	err error // why the keep-alive closed the connection
}

// heardConn remembers when the server last sent anything.
type heardConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds
}

func (c *heardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// ErrStalled is returned (wrapped, by Client.Err) when the server stopped
// answering keep-alives: the link carries no bytes any more, though the TCP
// connection may still look open.
var ErrStalled = errors.New("ssh link stalled")

// fast ciphers first: AES-GCM is hardware accelerated on amd64 and arm64.
var ciphers = []string{"aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr", "aes256-ctr"}

// Dial connects and authenticates. The host key is verified against
// cfg.KnownHosts; there is no way to turn that off.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.KnownHosts == "" {
		return nil, fmt.Errorf("ssh %s: no known_hosts file configured: host keys are always verified; add the host's key with ssh-keyscan -p PORT HOST >> known_hosts after checking its fingerprint", cfg.Addr())
	}
	if cfg.User == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("ssh %s: no SSH user configured (ssh-user) and the user running this program is unknown: %w", cfg.Addr(), err)
		}
		cfg.User = u.Username
	}
	hk, err := knownhosts.New(cfg.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: read known_hosts %s: %w", cfg.Addr(), cfg.KnownHosts, err)
	}
	auth, closeAuth, err := authMethod(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAuth()
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	var keyErr error
	cc := &ssh.ClientConfig{
		User: cfg.User,
		Auth: []ssh.AuthMethod{auth},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if err := hk(hostname, remote, key); err != nil {
				keyErr = hostKeyError(cfg, key, err)
				return keyErr
			}
			return nil
		},
		Timeout: timeout,
		Config:  ssh.Config{Ciphers: ciphers},
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: connect: %w (is the host up and sshd listening?)", cfg.Addr(), err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(timeout))
	}
	heard := &heardConn{Conn: newQuickAckConn(conn)}
	sc, chans, reqs, err := ssh.NewClientConn(heard, cfg.Addr(), cc)
	if err != nil {
		_ = conn.Close()
		if keyErr != nil {
			return nil, keyErr
		}
		return nil, fmt.Errorf("ssh %s@%s: handshake: %w", cfg.User, cfg.Addr(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	c := &Client{Client: ssh.NewClient(sc, chans, reqs), cfg: cfg, stop: make(chan struct{}), heard: heard}
	if cfg.KeepAlive >= 0 {
		iv := cfg.KeepAlive
		if iv == 0 {
			iv = 15 * time.Second
		}
		go c.keepAlive(iv)
	}
	return c, nil
}

func hostKeyError(cfg Config, key ssh.PublicKey, err error) error {
	var ke *knownhosts.KeyError
	fp := ssh.FingerprintSHA256(key)
	if errors.As(err, &ke) && len(ke.Want) > 0 {
		want := ""
		for i, w := range ke.Want {
			if i > 0 {
				want += ", "
			}
			want += fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line)
		}
		return fmt.Errorf("%w: ssh %s: host key MISMATCH: server offered %s %s, %s expects %s; if the host was reinstalled, verify the new key out of band and update known_hosts", ErrHostKey, cfg.Addr(), key.Type(), fp, cfg.KnownHosts, want)
	}
	return fmt.Errorf("%w: ssh %s: host key %s %s is not in %s; verify it out of band and add it (ssh-keyscan)", ErrHostKey, cfg.Addr(), key.Type(), fp, cfg.KnownHosts)
}

func authMethod(cfg Config) (ssh.AuthMethod, func(), error) {
	if cfg.KeyFile != "" {
		pem, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh %s: read private key: %w", cfg.Addr(), err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh %s: parse private key %s: %w (encrypted keys must be loaded into ssh-agent instead)", cfg.Addr(), cfg.KeyFile, err)
		}
		return ssh.PublicKeys(signer), func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, fmt.Errorf("ssh %s: no key file configured and SSH_AUTH_SOCK is not set: configure a key file or start ssh-agent", cfg.Addr())
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh %s: connect to ssh-agent at %s: %w", cfg.Addr(), sock, err)
	}
	return ssh.PublicKeysCallback(agent.NewClient(conn).Signers), func() { _ = conn.Close() }, nil
}

// keepAlive sends a keep-alive request every iv and closes the connection
// when the server has sent nothing - no answer, no data - for
// KeepAliveCountMax intervals. Data counts: on a slow link busy carrying
// what the server sends (a pull), the answer to a keep-alive queues behind
// megabytes of channel data, and the link is anything but stalled. On a
// link that stalled (no bytes pass, no RST arrives) every read and write of
// the connection would otherwise wait forever. The request is sent from
// its own goroutine, since on such a link the write itself can block.
func (c *Client) keepAlive(iv time.Duration) {
	count := c.cfg.KeepAliveCountMax
	if count <= 0 {
		count = 3
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	answered := make(chan error, 1)
	waiting := false
	last := time.Now() // the server was last heard from
	for {
		select {
		case <-c.stop:
			return
		case err := <-answered:
			waiting = false
			if err != nil {
				_ = c.Client.Close()
				return
			}
			last = time.Now()
		case <-t.C:
			if h := time.Unix(0, c.heard.last.Load()); h.After(last) {
				last = h
			}
			if silent := time.Since(last); silent >= time.Duration(count)*iv {
				err := fmt.Errorf("%w: ssh %s sent nothing for %v (%d keep-alives every %v unanswered); closed the connection: check the network between here and %s, then run again (what was copied is kept)",
					ErrStalled, c.cfg.Addr(), silent.Round(time.Millisecond), count, iv, c.cfg.Host)
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
				slog.Error(err.Error())
				_ = c.Client.Close()
				return
			}
			if !waiting {
				waiting = true
				go func() {
					_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
					answered <- err
				}()
			}
		}
	}
}

// Err says why the connection was closed by this side because the link
// stalled (wrapping ErrStalled), or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection.
func (c *Client) Close() error {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	return c.Client.Close()
}

// Run runs cmd on the server with the given stdin, stdout and stderr (each may
// be nil). A command that exits non-zero returns a *ssh.ExitError (errors.As),
// whose ExitStatus() is the remote exit code. Cancelling ctx closes the session.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("ssh %s: open session: %w", c.cfg.Addr(), err)
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Signal(ssh.SIGTERM)
			_ = s.Close()
		case <-done:
		}
	}()
	if err := s.Run(cmd); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// sftpMaxPayload is the largest data payload per SFTP request that OpenSSH
// accepts: its sftp-server limits a whole message to 256 KiB
// (SFTP_MAX_MSG_LENGTH) and a read to 255 KiB (SFTP_MAX_READ_LENGTH); a
// 256 KiB write plus its header exceeds the limit and the server drops the
// connection ("connection lost").
const sftpMaxPayload = 255 * 1024

// SFTP opens an SFTP session tuned for throughput against OpenSSH: large
// packets, many requests in flight, concurrent reads and writes.
func (c *Client) SFTP() (*sftp.Client, error) {
	cl, err := sftp.NewClient(c.Client,
		sftp.MaxPacketUnchecked(sftpMaxPayload),
		sftp.MaxConcurrentRequestsPerFile(64),
		sftp.UseConcurrentReads(true),
		sftp.UseConcurrentWrites(true),
	)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: %w (is the sftp subsystem enabled in sshd_config?)", c.cfg.Addr(), err)
	}
	return cl, nil
}

// Quote quotes s for a POSIX shell, the way every command this project
// runs over SSH must quote its arguments (the server hands the command line
// to the user's shell).
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
