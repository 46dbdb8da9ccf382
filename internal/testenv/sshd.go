package testenv

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/sshx"
)

// SSHServer is a running OpenSSH sshd on a loopback port with its own host
// key. The current user logs in with KeyFile; KnownHosts holds the host key
// as "[127.0.0.1]:PORT ssh-ed25519 ...". Commands run through the user's
// shell; the sftp subsystem is internal-sftp.
type SSHServer struct {
	Host       string // 127.0.0.1
	Port       int
	User       string // the current user
	KeyFile    string // client private key (ed25519, OpenSSH format, 0600)
	KnownHosts string // known_hosts with this server's host key
	HostKey    ssh.PublicKey
	Dir        string // sshd_config, keys, sshd.log
	proc       *Proc
}

// Addr is host:port.
func (s *SSHServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Config is an sshx.Config that logs in to this server as User.
func (s *SSHServer) Config() sshx.Config {
	return sshx.Config{Host: s.Host, Port: s.Port, User: s.User, KeyFile: s.KeyFile, KnownHosts: s.KnownHosts}
}

// Stop stops sshd (connections already open end when their client closes).
func (s *SSHServer) Stop() { s.proc.Stop() }

// Pid is the listening sshd's process id.
func (s *SSHServer) Pid() int { return s.proc.Pid }

// SSHD starts a fresh sshd for one test, stopped when the test ends.
func SSHD(t testing.TB) *SSHServer {
	t.Helper()
	s, err := StartSSHD(bg(), tempDir(t, "sshd"), StartOptions{})
	need(t, "sshd", err)
	t.Cleanup(s.Stop)
	return s
}

// writeKey writes a new ed25519 private key (OpenSSH format, 0600) and
// returns its public key.
func writeKey(path, comment string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return sp, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sp), 0o644)
}

// StartSSHD starts sshd in dir.
func StartSSHD(ctx context.Context, dir string, o StartOptions) (*SSHServer, error) {
	return retryPorts(func() (*SSHServer, error) { return startSSHDOnce(ctx, dir, o) })
}

func startSSHDOnce(ctx context.Context, dir string, o StartOptions) (*SSHServer, error) {
	bin, err := lookBin("openssh-server", "sshd")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// sshd insists on its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); err != nil {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshd needs its privilege separation directory /run/sshd: %w (create it as root: mkdir -p /run/sshd)", err)
		}
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &SSHServer{Host: "127.0.0.1", Port: port, User: u.Username, Dir: dir,
		KeyFile: filepath.Join(dir, "id_ed25519"), KnownHosts: filepath.Join(dir, "known_hosts")}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	if s.HostKey, err = writeKey(hostKeyFile, "bcp-testenv-host"); err != nil {
		return nil, err
	}
	clientKey, err := writeKey(s.KeyFile, "bcp-testenv-client")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientKey), 0o600); err != nil {
		return nil, err
	}
	kh := fmt.Sprintf("[%s]:%d %s", s.Host, port, ssh.MarshalAuthorizedKey(s.HostKey))
	if err := os.WriteFile(s.KnownHosts, []byte(kh), 0o600); err != nil {
		return nil, err
	}
	cfg := strings.Join([]string{
		"Port " + strconv.Itoa(port),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyFile,
		"PidFile " + filepath.Join(dir, "sshd.pidfile"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"StrictModes no",
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"Subsystem sftp internal-sftp",
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel VERBOSE",
		// Every command runs through the account's login shell, and bash
		// run by sshd reads ~/.bashrc unless it is a nested shell (SHLVL
		// set): on this kind of machine that runs pyenv (0.15 s and
		// 0.15 s of CPU per login, for the helper's start and rsync's
		// alike), and pyenv's rehash waits for a lock that a login killed
		// mid-way (a test that kills sshd or drops its connections) leaves
		// behind - up to a minute, or PYENV_REHASH_TIMEOUT seconds, for
		// every later login. The test world's logins do not depend on the
		// account's dotfiles.
		"SetEnv SHLVL=1 PYENV_REHASH_TIMEOUT=1",
		"",
	}, "\n")
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p, err := startProc(procSpec{Name: "sshd", Path: bin, Dir: dir, Detached: o.Detached,
		Args: []string{"-D", "-e", "-f", cfgFile}})
	if err != nil {
		return nil, err
	}
	s.proc = p
	err = p.waitReady(ctx, port, func(ctx context.Context) error { return sshBanner(ctx, s.Addr()) })
	if err != nil {
		p.Stop()
		return nil, err
	}
	return s, nil
}

// sshBanner succeeds once the server at addr sends its SSH banner.
func sshBanner(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("unexpected banner %q", line)
	}
	return nil
}

// KillSessions kills (SIGKILL) every process the server started for its
// connections - the per-connection sshd, sftp-server, commands - as a
// dropped connection would end them; the listening sshd stays up.
func (s *SSHServer) KillSessions() { killTree(s.Pid()) }

func killTree(pid int) {
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			killTree(p)
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}
