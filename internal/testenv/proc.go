package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartTimeout bounds how long one service may take to become ready. The
// machine is shared, so it is generous (Elasticsearch needs 60-90 s under load).
var StartTimeout = 3 * time.Minute

// stopGrace is how long a service gets to stop after SIGTERM before SIGKILL.
const stopGrace = 20 * time.Second

// procSpec says how to start one server process.
type procSpec struct {
	Name     string // short name: "mariadb", "redis", "sshd", "elasticsearch"
	Path     string // absolute path of the binary
	Args     []string
	Dir      string // working directory; the log and pid files go here
	Env      []string
	Detached bool // survive this process (make env-up); otherwise die with it
	Stdin    bool // keep a pipe on stdin open for the process's life
}

// Proc is a running server process, the leader of its own process group.
type Proc struct {
	Name    string
	Pid     int
	Log     string // the process's stdout and stderr
	PidFile string // "<pid> <exe>" so that env-down can find it again

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	exited chan struct{}
	once   sync.Once
}

// spawner runs every fork on one goroutine locked to an OS thread that never
// exits: Linux sends Pdeathsig when the *thread* that forked the child exits,
// not the process, so forking from an arbitrary Go thread could kill a child
// early when the runtime retires that thread.
var spawner = struct {
	once sync.Once
	reqs chan func()
}{reqs: make(chan func())}

func onSpawnThread(f func()) {
	spawner.once.Do(func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range spawner.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	spawner.reqs <- func() { f(); close(done) }
	<-done
}

func startProc(spec procSpec) (*Proc, error) {
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, err
	}
	logPath := filepath.Join(spec.Dir, spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child writes the log through its own descriptor
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), spec.Env...)
	attr := &syscall.SysProcAttr{}
	if spec.Detached {
		attr.Setsid = true
	} else {
		attr.Setpgid = true
		attr.Pdeathsig = syscall.SIGKILL
	}
	cmd.SysProcAttr = attr
	p := &Proc{Name: spec.Name, Log: logPath, cmd: cmd, exited: make(chan struct{}),
		PidFile: filepath.Join(spec.Dir, PidFileName)}
	if spec.Stdin {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	onSpawnThread(func() { err = cmd.Start() })
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Path, err)
	}
	p.Pid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); close(p.exited) }()
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.Pid))
	if exe == "" {
		exe = spec.Path
	}
	if err := os.WriteFile(p.PidFile, []byte(fmt.Sprintf("%d %s\n", p.Pid, exe)), 0o600); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Stop ends the process group: closes stdin, sends SIGTERM, and SIGKILL
// after a grace period. It waits until the leader is gone.
func (p *Proc) Stop() {
	p.once.Do(func() {
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		_ = syscall.Kill(-p.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(stopGrace):
			_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
			<-p.exited
		}
		// Anything left in the group (helpers the server forked) goes too.
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		_ = os.Remove(p.PidFile)
	})
}

// waitReady polls check until it succeeds, the process exits, or the
// start-up deadline passes. Errors carry the tail of the process's log.
//
// The server must also own the listening socket on port: a server that
// lost its port to another one (which would answer the check) is not ready.
func (p *Proc) waitReady(ctx context.Context, port int, check func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			if listensOn(p.Pid, port) {
				return nil
			}
			last = fmt.Errorf("something answers on port %d, but not this process", port)
		}
		select {
		case <-p.exited:
			err := fmt.Errorf("exited during start-up (%v)", p.cmd.ProcessState)
			if b, _ := os.ReadFile(p.Log); bytes.Contains(b, []byte("Address already in use")) {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return p.failure(err)
		case <-ctx.Done():
			return p.failure(fmt.Errorf("not ready after %s: %v", StartTimeout, last))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *Proc) failure(err error) error {
	return fmt.Errorf("%s (pid %d): %w\n--- last lines of %s ---\n%s", p.Name, p.Pid, err, p.Log, tail(p.Log, 40))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// ports hands out free loopback ports, never the same one twice in a process.
var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !ports.used[port] {
			ports.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("find a free loopback port: none left")
}

// errPortInUse: a port from freePort was taken by someone else (another
// test binary) before the server bound it. Start* then retry with new ports.
var errPortInUse = errors.New("port already in use")

// retryPorts runs start up to three times while it fails with errPortInUse.
func retryPorts[T any](start func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := start()
		if err == nil || attempt == 3 || !errors.Is(err, errPortInUse) {
			return v, err
		}
	}
}

// ErrMissing is returned (wrapped) when a binary a service needs is not installed.
var ErrMissing = errors.New("not installed")

// lookBin finds the first of names in PATH or the sbin directories (which a
// non-root PATH often lacks).
func lookBin(pkg string, names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
		for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin"} {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", &missingError{what: strings.Join(names, "/"), how: "install it with `apt-get install " + pkg + "` or run scripts/setup.sh"}
}

// ReadPidFile reads a pid file written by startProc: the pid and the
// executable it ran.
func ReadPidFile(path string) (pid int, exe string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, "", fmt.Errorf("pid file %s: empty", path)
	}
	pid, err = strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return 0, "", fmt.Errorf("pid file %s: bad pid %q", path, f[0])
	}
	if len(f) > 1 {
		exe = f[1]
	}
	return pid, exe, nil
}

// listensOn reports whether process pid holds a socket listening on
// 127.0.0.1:port (from /proc/net/tcp and the process's open files).
func listensOn(pid, port int) bool {
	suffix := fmt.Sprintf(":%04X", port)
	inodes := map[string]bool{}
	seen := false
	// tcp6 too: the JVM binds 127.0.0.1 through an IPv6 socket (::ffff:127.0.0.1).
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		seen = true
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) > 9 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" {
				inodes["socket:["+f[9]+"]"] = true
			}
		}
	}
	if !seen {
		return true // no procfs: cannot tell, trust the check
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
			return true
		}
	}
	return false
}
