package main

import (
	"context"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

// sshOptions say how to reach an sftp:// end.
type sshOptions struct {
	keyFile     string
	knownHosts  string
	connections int
	sessions    int
	keepAlive   time.Duration
	helper      string // transfer on an sftp:// destination; "" none
	compress    bool   // zstd on the helper's stream, gzip on SFTP alone's tar streams, where they gain
}

func sshFlags() []ucli.Flag {
	return append(cli.SSHKeyFlags(flags),
		flags.Int("connections", defaultConnections(), "SSH connections to an sftp:// end (each its own sshd process, helper and cipher stream); "+
			"the default is one per two CPUs here, at most 4"),
		flags.Int("sessions", 8, "SFTP sessions per SSH connection (each its own sftp-server: more fsyncs at once)"),
		flags.Duration("keepalive", 15*time.Second, "interval of SSH keep-alive requests; when 3 in a row go unanswered the link counts as stalled: the connection is closed and the run fails (exit 1) saying so"),
		flags.String("remote-transfer", "transfer", "this program on an sftp:// destination, started there as `PROGRAM serve DIR` to stream files "+
			"(several times faster than SFTP for many small files); a name the account's shell finds or a path; \"none\": SFTP only. "+
			"If it cannot be started, the copy goes over SFTP and says so"),
		flags.Bool("compress", true, "compress the stream to the --remote-transfer helper (zstd) where the data compresses: each chunk or batch of "+
			"files goes compressed only where that makes it smaller, data that does not compress goes as it is at almost no cost; "+
			"over SFTP alone (--remote-transfer none) batches of small files go as gzip-compressed tar streams where the server has gzip; "+
			"false sends everything as it is (a helper older than this option gets everything as it is anyway)"),
	)
}

// defaultConnections is one SSH connection per two CPUs, at most four.
// Each connection is a cipher stream here and an sshd process and a helper
// at the far end; where the cores are few they only compete for them. On
// two cores, one connection against four (alternating runs, loopback):
// 100k files of 4 KiB 13.1-13.6 s against 15.7-18.0 s, server CPU 11.7-12.7
// against 16.8-21.1 s; 2 GiB of blobs 8.5-9.3 s against 9.3-9.9 s, server
// CPU 3.5 against 5.6-6.6 s.
func defaultConnections() int { return min(max(runtime.NumCPU()/2, 1), 4) }

func readSSHOptions(c *ucli.Context) sshOptions {
	return sshOptions{keyFile: c.Path("ssh-key"), knownHosts: c.Path("ssh-known-hosts"),
		connections: c.Int("connections"), sessions: c.Int("sessions"), keepAlive: c.Duration("keepalive"),
		helper: c.String("remote-transfer"), compress: c.Bool("compress")}
}

// endpoint is one end of a copy: a directory, or sftp://user@host:port/path.
type endpoint struct {
	raw  string
	dir  string      // local directory, or
	ssh  sshx.Config // an SFTP server
	path string      // and the path on it
}

func (e endpoint) remote() bool { return e.dir == "" }

func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		if s == "" {
			return endpoint{}, cli.Usagef("empty directory name")
		}
		return endpoint{raw: s, dir: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "sftp" {
		return endpoint{}, cli.Usagef("%q: want a directory or sftp://user@host[:port]/path", s)
	}
	if u.User == nil || u.User.Username() == "" || u.Hostname() == "" || u.Path == "" {
		return endpoint{}, cli.Usagef("%q: want sftp://user@host[:port]/path (user, host and path are required)", s)
	}
	if _, ok := u.User.Password(); ok {
		return endpoint{}, cli.Usagef("%q: passwords are not accepted in URLs; use a key file or ssh-agent", s)
	}
	port := 22
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return endpoint{}, cli.Usagef("%q: bad port %q", s, p)
		}
	}
	return endpoint{raw: s, ssh: sshx.Config{Host: u.Hostname(), Port: port, User: u.User.Username()}, path: u.Path}, nil
}

// open connects to the end (fs, then Dial).
func (e endpoint) open(ctx context.Context, so sshOptions, destination bool, notice func(string)) (mover.FS, error) {
	f, err := e.fs(so, destination, notice)
	if err != nil {
		return nil, err
	}
	if d, ok := f.(mover.Dialer); ok {
		if err := d.Dial(ctx); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// fs returns the end, not connected yet where it is on a server (a
// mover.Dialer: mover.Run connects a destination itself while it reads
// the source). A destination on a server runs the helper (so.helper)
// unless it is "none"; notice receives why it could not.
func (e endpoint) fs(so sshOptions, destination bool, notice func(string)) (mover.FS, error) {
	if !e.remote() {
		return mover.NewLocal(e.dir), nil
	}
	if err := cli.CheckKnownHosts(e.raw+" needs", so.knownHosts); err != nil {
		return nil, err
	}
	cfg := e.ssh
	cfg.KeyFile, cfg.KnownHosts, cfg.KeepAlive = so.keyFile, so.knownHosts, so.keepAlive
	o := mover.SFTPOptions{Conns: so.connections, Sessions: so.sessions, Notice: notice}
	if destination && so.helper != "none" {
		o.Helper = so.helper
	}
	f := mover.NewSFTP(cfg, e.path, o)
	if !so.compress {
		f.SetCompress(false)
	}
	return f, nil
}
