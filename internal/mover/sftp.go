package mover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// SFTP is a channel directory on an SFTP server, reached over several SSH
// connections with several SFTP sessions each. Each SSH connection is
// served by its own sshd process (one encryption stream), so several of them
// use several cores on both ends; each SFTP session is its own sftp-server,
// which handles one request at a time - in particular one fsync at a time -
// so many sessions let many small files be synced at once (the file system
// commits concurrent fsyncs together). Requests are spread over the
// sessions round robin; a file's requests stay on the session that opened it.
type SFTP struct {
	cfg      sshx.Config
	root     string
	conns    int // wanted
	sessions int // wanted per connection
	helper   string
	notice   func(string)
	next     atomic.Uint64
	clients  atomic.Pointer[[]*sftp.Client] // in use, round robin
	helpers  atomic.Pointer[[]*remote.Client]
	nextH    atomic.Uint64
	first    chan struct{} // closed when the first connection's helper started or failed
	mu       sync.Mutex    // guards open and expanded
	open     []*sftpConn
	expanded bool
	// syncCmd runs syncfs(2) on the server (coreutils sync -f); tests
	// replace it to play an account that may not run commands.
	syncCmd   string
	syncState atomic.Int32 // syncUnknown, syncWorks, syncUnavailable
	shellMu   sync.Mutex   // guards shell
	shell     *remoteShell // nil until SyncFS needs it
}

const (
	syncUnknown int32 = iota
	syncWorks
	syncUnavailable
)

// syncOK is what the server's shell prints after sync -f succeeded. An
// account restricted to SFTP (ForceCommand internal-sftp, a forced command
// in authorized_keys, a restricted shell) may exit 0 without running our
// command, so the exit status alone proves nothing.
const syncOK = "bcp-syncfs-ok"

type sftpConn struct {
	ssh    *sshx.Client
	c      []*sftp.Client
	helper *remote.Client // nil: none (not asked for, or not available)
}

var (
	_ FS          = (*SFTP)(nil)
	_ Expander    = (*SFTP)(nil)
	_ FSSyncer    = (*SFTP)(nil)
	_ Digester    = (*SFTP)(nil)
	_ FileWriter  = (*SFTP)(nil)
	_ LaterWriter = (*SFTP)(nil)
)

// LinkErr says why a connection to the server was given up because the
// link stalled (wrapping sshx.ErrStalled), or nil: what a failed operation
// reports then ("connection lost", "the helper exited") is only the
// consequence.
func (s *SFTP) LinkErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.open {
		if err := c.ssh.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Expander is implemented by backends that start small - enough to list
// and decide - and open more connections only when there is work.
type Expander interface {
	Expand(ctx context.Context) error
}

// initialSessions is how many sessions the first connection opens without
// a helper: enough to list directories in parallel when there turns out to
// be nothing to do. With a helper (which lists) it opens one, for reading,
// and the rest only if the helper does not start: each session is a
// process the server forks while the account's shell starts the helper.
const initialSessions = 8

// SFTPOptions say how many connections and sessions DialSFTP opens and
// whether it uses a helper.
type SFTPOptions struct {
	Conns    int // SSH connections, at least 1
	Sessions int // SFTP sessions per connection, at least 1
	// Helper is the transfer program on the server (a name the account's
	// shell finds, or a path). Where set, each connection runs
	// "Helper serve ROOT" and the copy streams files through it
	// (package remote); SFTP is used for reading, and for everything
	// if the helper cannot be started.
	Helper string
	// Notice receives one line when the helper was asked for but cannot
	// be used, saying why; nil drops it. A start cut short because the run
	// ended first (Close, or the ctx of DialSFTP cancelled) is not
	// reported: it says nothing about the helper.
	Notice func(string)
}

// helperTimeout bounds the wait for a helper's greeting: an account
// restricted to SFTP (ForceCommand internal-sftp) never answers.
const helperTimeout = 10 * time.Second

// DialSFTP connects to cfg and returns the FS rooted at root on the server.
// It opens one SSH connection at first; Expand opens the rest, up to
// opts.Conns connections with opts.Sessions SFTP sessions each. A host key
// mismatch is returned wrapping sshx.ErrHostKey.
func DialSFTP(ctx context.Context, cfg sshx.Config, root string, opts SFTPOptions) (*SFTP, error) {
	s := &SFTP{cfg: cfg, root: root, conns: max(opts.Conns, 1), sessions: max(opts.Sessions, 1), syncCmd: "sync -f --",
		helper: opts.Helper, notice: opts.Notice, first: make(chan struct{})}
	s.helpers.Store(&[]*remote.Client{})
	cl, err := sshx.Dial(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	c := &sftpConn{ssh: cl}
	s.open = []*sftpConn{c}
	n := min(s.sessions, initialSessions)
	s.mu.Lock() // held until the first sessions are published
	if s.helper == "" {
		close(s.first)
	} else {
		// The helper starts while the SFTP session opens and the caller
		// reads the source.
		n = 1
		go func() {
			defer close(s.first)
			if !s.startHelper(ctx, c, true) {
				s.mu.Lock()
				defer s.mu.Unlock()
				if k := min(s.sessions, initialSessions) - len(c.c); k > 0 && slices.Contains(s.open, c) {
					if c.openSessions(k) == nil {
						s.publish()
					}
				}
			}
		}()
	}
	err = c.openSessions(n)
	if err == nil {
		s.publish()
	}
	s.mu.Unlock()
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startHelper runs the helper on c's connection and publishes it. It
// reports whether the helper runs. The first connection's helper starts
// in the background, beyond the ctx of DialSFTP; it reports (Notice) a
// helper that could not be started, but not one whose start was cut short
// because the run ended (Close, or ctx cancelled).
func (s *SFTP) startHelper(ctx context.Context, c *sftpConn, first bool) bool {
	run := ctx
	if first {
		ctx = context.WithoutCancel(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	h, err := remote.Start(ctx, c.ssh.Client, s.helper+" serve "+sshx.Quote(s.root))
	s.mu.Lock()
	defer s.mu.Unlock()
	closed := !slices.Contains(s.open, c)
	if err != nil {
		if s.notice != nil && first && !closed && run.Err() == nil {
			s.notice(fmt.Sprintf("%s: copying over SFTP (slower): %v", s, err))
		}
		return false
	}
	if closed {
		h.Close()
		return false
	}
	c.helper = h
	hs := append(slices.Clone(*s.helpers.Load()), h)
	s.helpers.Store(&hs)
	return true
}

// remote returns a helper to send a request to (round robin), or nil if
// there is none: the caller uses SFTP. It waits for the first
// connection's helper to start or fail.
func (s *SFTP) remote(ctx context.Context) *remote.Client {
	select {
	case <-s.first:
	case <-ctx.Done():
		return nil
	}
	hs := *s.helpers.Load()
	if len(hs) == 0 {
		return nil
	}
	return hs[s.nextH.Add(1)%uint64(len(hs))]
}

func (s *SFTP) dial(ctx context.Context, sessions int) (*sftpConn, error) {
	cl, err := sshx.Dial(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	sc := &sftpConn{ssh: cl}
	if err := sc.openSessions(sessions); err != nil {
		cl.Close()
		return nil, err
	}
	return sc, nil
}

// openSessions opens n more SFTP sessions on c's connection, all at once
// (each is a round trip and a process on the server). On error the ones
// opened here are closed again.
func (c *sftpConn) openSessions(n int) error {
	opened := make([]*sftp.Client, n)
	var g errgroup.Group
	for i := range opened {
		g.Go(func() error {
			var err error
			opened[i], err = c.ssh.SFTP()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, sc := range opened {
			if sc != nil {
				sc.Close()
			}
		}
		return err
	}
	c.c = append(c.c, opened...)
	return nil
}

// publish makes the open sessions available, interleaved so that
// consecutive requests go to different connections. Callers hold mu or
// have not shared s yet.
func (s *SFTP) publish() {
	var all []*sftp.Client
	for j := 0; ; j++ {
		added := false
		for _, c := range s.open {
			if j < len(c.c) {
				all = append(all, c.c[j])
				added = true
			}
		}
		if !added {
			break
		}
	}
	s.clients.Store(&all)
}

// Expand opens the remaining connections and sessions (once). If that
// fails the FS keeps working with what it has.
func (s *SFTP) Expand(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expanded || len(s.open) == 0 {
		return nil
	}
	s.expanded = true
	first := s.open[0]
	if n := s.sessions - len(first.c); n > 0 {
		if err := first.openSessions(n); err != nil {
			return err
		}
	}
	more := make([]*sftpConn, s.conns-1)
	g, gctx := errgroup.WithContext(ctx)
	for i := range more {
		g.Go(func() error {
			c, err := s.dial(gctx, s.sessions)
			more[i] = c
			return err
		})
	}
	err := g.Wait()
	var added []*sftpConn
	for _, c := range more {
		if c != nil {
			s.open = append(s.open, c)
			added = append(added, c)
		}
	}
	s.publish()
	if s.helper != "" && len(*s.helpers.Load()) > 0 {
		// The first helper works: one on each new connection too.
		s.mu.Unlock()
		var wg sync.WaitGroup
		for _, c := range added {
			wg.Go(func() { s.startHelper(ctx, c, false) })
		}
		wg.Wait()
		s.mu.Lock()
	}
	return err
}

func (s *SFTP) String() string {
	return fmt.Sprintf("sftp://%s@%s%s", s.cfg.User, s.cfg.Addr(), s.root)
}

func (s *SFTP) client() *sftp.Client {
	all := *s.clients.Load()
	return all[s.next.Add(1)%uint64(len(all))]
}

// rel is name as the helper takes it: relative to the root, "." for the
// root itself.
func rel(name string) string {
	if name == "" {
		return "."
	}
	return name
}

func (s *SFTP) path(name string) string {
	if name == "" {
		return s.root
	}
	return path.Join(s.root, name)
}

// ReadDir lists a directory with READDIR requests: sizes and times come
// with the names, so no per-file stat is needed.
func (s *SFTP) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	if h := s.remote(ctx); h != nil {
		ents, err := h.List(ctx, rel(dir))
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", s.path(dir), err)
		}
		return ents, nil
	}
	infos, err := s.client().ReadDirContext(ctx, s.path(dir))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.path(dir), err)
	}
	out := make([]Entry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, Entry{Name: fi.Name(), Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// WriteFile writes a whole file in one helper request (batched with other
// callers'). Without a helper it returns errNoFileWriter: the copier then
// writes over SFTP, where the close need not hold up the rename.
func (s *SFTP) WriteFile(ctx context.Context, name string, data []byte, fsync bool) error {
	h := s.remote(ctx)
	if h == nil {
		return errNoFileWriter
	}
	if err := h.Put(ctx, rel(name), data, fsync); err != nil {
		return fmt.Errorf("write %s: %w", s.path(name), err)
	}
	return nil
}

// WriteFileLater queues a whole-file write (no fsync) through a helper;
// l.Wait reports it. Without a helper it returns errNoFileWriter.
func (s *SFTP) WriteFileLater(ctx context.Context, name string, data []byte, l *remote.Later) error {
	h := s.remote(ctx)
	if h == nil {
		return errNoFileWriter
	}
	return h.PutLater(ctx, rel(name), data, l)
}

// RenameLater queues a rename through a helper; l.Wait reports it. Without
// a helper it returns errNoFileWriter.
func (s *SFTP) RenameLater(ctx context.Context, from, to string, l *remote.Later) error {
	h := s.remote(ctx)
	if h == nil {
		return errNoFileWriter
	}
	return h.RenameLater(ctx, rel(from), rel(to), l)
}

// DirDigests has the helper fingerprint each directory next to the data;
// without a helper it returns ErrNoDigest (listing over SFTP to compute them
// here would cost what they save).
func (s *SFTP) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	if s.remote(ctx) == nil {
		return nil, fmt.Errorf("%s: no helper: %w", s, ErrNoDigest)
	}
	out := make([][32]byte, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	// A few requests, each a share of the directories, keep the server's
	// cores busy without many threads contending for them.
	per := min(max((len(dirs)+digestRequests-1)/digestRequests, 1), 1<<16-1)
	for lo := 0; lo < len(dirs); lo += per {
		part := dirs[lo:min(lo+per, len(dirs))]
		g.Go(func() error {
			h := s.remote(gctx)
			if h == nil {
				return fmt.Errorf("%s: helper gone: %w", s, ErrNoDigest)
			}
			rels := make([]string, len(part))
			for i, d := range part {
				rels[i] = rel(d)
			}
			res, err := h.Digests(gctx, rels)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			for i, r := range res {
				if r.Err != nil {
					return fmt.Errorf("fingerprint %s: %w", s.path(part[i]), r.Err)
				}
				out[lo+i] = r.Sum
			}
			return nil
		})
	}
	return out, g.Wait()
}

// digestRequests is how many shares of the directories DirDigests sends to
// the helper at once.
const digestRequests = 4

// Open opens a file for reading. *sftp.File implements io.WriterTo with
// many read requests in flight.
func (s *SFTP) Open(_ context.Context, name string) (io.ReadCloser, error) {
	f, err := s.client().Open(s.path(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.path(name), err)
	}
	return f, nil
}

// Create creates or truncates a file. *sftp.File implements io.ReaderFrom
// with concurrent writes when the reader tells its size.
func (s *SFTP) Create(ctx context.Context, name string) (File, error) {
	if h := s.remote(ctx); h != nil {
		return h.Create(rel(name)), nil
	}
	f, err := s.client().OpenFile(s.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", s.path(name), err)
	}
	// SFTP's open takes no mode here, so the server makes it 0666 less
	// its umask; narrow it before any data is written.
	if err := f.Chmod(manifest.PermOf(rel(name))); err != nil {
		f.Close()
		return nil, fmt.Errorf("create %s: set mode: %w", s.path(name), err)
	}
	return f, nil
}

func (s *SFTP) MkdirAll(ctx context.Context, dir string) error {
	if h := s.remote(ctx); h != nil {
		if err := h.MkdirAll(ctx, rel(dir)); err != nil {
			return fmt.Errorf("mkdir %s: %w", s.path(dir), err)
		}
		return nil
	}
	if err := s.mkdirAll(rel(dir)); err != nil {
		return fmt.Errorf("mkdir %s: %w", s.path(dir), err)
	}
	return nil
}

// mkdirAll makes dir and its missing parents below the root (and the root
// if missing), each with manifest.DirPerm: SFTP's mkdir takes the server's
// umask, not a mode.
func (s *SFTP) mkdirAll(dir string) error {
	c := s.client()
	var missing []string // dir first, then its missing parents
	for d := dir; ; d = path.Dir(d) {
		if fi, err := c.Stat(s.path(d)); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", s.path(d))
			}
			break
		}
		missing = append(missing, d)
		if d == "." || d == "" || d == "/" {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := s.path(missing[i])
		mkdir := c.Mkdir
		if missing[i] == "." {
			mkdir = c.MkdirAll // the channel's own parents, as they were
		}
		if err := mkdir(p); err != nil {
			if fi, serr := c.Stat(p); serr == nil && fi.IsDir() {
				continue // made meanwhile by another worker
			}
			return err
		}
		if err := c.Chmod(p, manifest.DirPerm); err != nil {
			return err
		}
	}
	return nil
}

// Rename uses posix-rename@openssh.com, which replaces the target
// atomically (plain SFTP rename refuses an existing target).
func (s *SFTP) Rename(ctx context.Context, from, to string) error {
	if h := s.remote(ctx); h != nil {
		if err := h.Rename(ctx, rel(from), rel(to)); err != nil {
			return fmt.Errorf("rename %s to %s: %w", s.path(from), s.path(to), err)
		}
		return nil
	}
	if err := s.client().PosixRename(s.path(from), s.path(to)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", s.path(from), s.path(to), err)
	}
	return nil
}

func (s *SFTP) Remove(ctx context.Context, name string) error {
	if h := s.remote(ctx); h != nil {
		if err := h.Remove(ctx, rel(name)); err != nil {
			return fmt.Errorf("remove %s: %w", s.path(name), err)
		}
		return nil
	}
	if err := s.client().Remove(s.path(name)); err != nil {
		return fmt.Errorf("remove %s: %w", s.path(name), err)
	}
	return nil
}

// SyncFS runs "sync -f DIR..." in a shell that stays open on the first SSH
// connection for the whole run: one syncfs(2) per directory on the server
// (after the first, a file system with nothing dirty costs next to nothing),
// instead of an fsync@openssh.com request per file, which one sftp-server
// answers one at a time. Keeping the shell open matters: starting a
// command costs the account's login shell start-up each time. If the account
// cannot run commands (no shell, a forced command, no coreutils sync -f)
// the first call returns an error wrapping ErrNoSyncFS and so does every
// later one; once it has worked, a failure is a real error.
func (s *SFTP) SyncFS(ctx context.Context, dirs []string) error {
	if h := s.remote(ctx); h != nil {
		rels := make([]string, len(dirs))
		for i, d := range dirs {
			rels[i] = rel(d)
		}
		if err := h.SyncFS(ctx, rels); err != nil {
			return fmt.Errorf("syncfs at %s: %w", s, err)
		}
		return nil
	}
	if s.syncState.Load() == syncUnavailable {
		return ErrNoSyncFS
	}
	s.shellMu.Lock()
	defer s.shellMu.Unlock()
	cmd := s.syncCmd
	for _, d := range dirs {
		cmd += " " + sshx.Quote(s.path(d))
	}
	err := s.shellRun(ctx, cmd)
	if err == nil {
		s.syncState.Store(syncWorks)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.syncState.CompareAndSwap(syncUnknown, syncUnavailable) {
		return fmt.Errorf("sync -f at %s: %w: %w", s, err, ErrNoSyncFS)
	}
	return fmt.Errorf("sync -f at %s: %w", s, err)
}

// remoteShell is a shell on the server that reads commands from stdin.
type remoteShell struct {
	sess   *ssh.Session
	in     io.WriteCloser
	lines  chan string // stdout, line by line; closed at EOF
	stderr *sshx.Tail
}

// shellRun runs cmd in the remote shell (started on first use) and waits
// for the line that confirms it succeeded. Callers hold shellMu.
func (s *SFTP) shellRun(ctx context.Context, cmd string) error {
	if s.shell == nil {
		s.mu.Lock()
		if len(s.open) == 0 {
			s.mu.Unlock()
			return net.ErrClosed
		}
		cl := s.open[0].ssh
		s.mu.Unlock()
		sess, err := cl.NewSession()
		if err != nil {
			return fmt.Errorf("open session: %w", err)
		}
		sh := &remoteShell{sess: sess, lines: make(chan string, 16), stderr: &sshx.Tail{}}
		sess.Stderr = sh.stderr
		out, err := sess.StdoutPipe()
		if err == nil {
			sh.in, err = sess.StdinPipe()
		}
		if err == nil {
			err = sess.Start("exec /bin/sh")
		}
		if err != nil {
			sess.Close()
			return fmt.Errorf("start a shell: %w", err)
		}
		go func() {
			defer close(sh.lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				sh.lines <- sc.Text()
			}
		}()
		s.shell = sh
	}
	sh := s.shell
	fail := func(err error) error {
		sh.sess.Close()
		s.shell = nil
		if msg := sh.stderr.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	if _, err := io.WriteString(sh.in, cmd+" && echo "+syncOK+" || echo "+syncFailed+"\n"); err != nil {
		return fail(fmt.Errorf("send command: %w", err))
	}
	for {
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case line, ok := <-sh.lines:
			switch {
			case !ok:
				return fail(errors.New("the server closed the shell without confirming (may this account run commands?)"))
			case line == syncOK:
				return nil
			case line == syncFailed:
				return fail(errors.New("command failed"))
			}
			// anything else is the login shell's chatter
		}
	}
}

const syncFailed = "bcp-syncfs-failed"

// Close closes every connection. It returns once the first connection's
// helper has started or given up, so nothing is reported after it.
func (s *SFTP) Close() error {
	defer func() { <-s.first }()
	s.shellMu.Lock()
	if s.shell != nil {
		s.shell.in.Close()
		s.shell.sess.Close()
		s.shell = nil
	}
	s.shellMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.open {
		if c.helper != nil {
			c.helper.Close()
		}
		for _, sc := range c.c {
			errs = append(errs, sc.Close())
		}
		errs = append(errs, c.ssh.Close())
	}
	s.open = nil
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}
