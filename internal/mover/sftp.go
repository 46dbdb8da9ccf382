package mover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
)

// SFTP is a channel directory on an SFTP server, reached over several SSH
// connections with several SFTP sessions each. Each SSH connection is
// served by its own sshd process (one encryption stream), so several of them
// use several cores on both ends; each SFTP session is its own sftp-server,
// which handles one request at a time - in particular one fsync at a time -
// so many sessions let many small files be synced at once (the file system
// commits concurrent fsyncs together). Requests are spread over the
// sessions round robin; a file's requests stay on the session that opened it.
//
// SFTP holds the connections; what goes over them is one of two ways,
// chosen in one place (way): through the helper on each connection
// (helperFS, helperfs.go) where it starts, else SFTP alone (sftpFS,
// sftpfs.go).
type SFTP struct {
	cfg       sshx.Config
	root      string
	conns     int // wanted
	sessions  int // wanted per connection
	helper    string
	notice    func(string)
	next      atomic.Uint64
	clients   atomic.Pointer[[]*sftp.Client] // in use, round robin
	helpers   atomic.Pointer[[]*remote.Client]
	nextH     atomic.Uint64
	first     chan struct{} // closed when the first connection's helper started or failed (or Dial failed)
	dialOnce  sync.Once
	dialErr   error
	mu        sync.Mutex // guards open, expanded and closed
	open      []*sftpConn
	expanded  bool
	closed    bool
	viaSFTP   *sftpFS
	viaHelper *helperFS
	bg        sync.WaitGroup // sessions being added in the background (expand)
}

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

// Dialer is implemented by file systems made not connected yet (NewSFTP).
// Run connects such a destination itself, while it reads the source's
// newest set; nothing else of it is used before. Dial connects once: a
// later call returns the first one's result.
type Dialer interface {
	Dial(ctx context.Context) error
}

var _ Dialer = (*SFTP)(nil)

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

// DialSFTP connects to cfg and returns the FS rooted at root on the server
// (NewSFTP, then Dial).
func DialSFTP(ctx context.Context, cfg sshx.Config, root string, opts SFTPOptions) (*SFTP, error) {
	s := NewSFTP(cfg, root, opts)
	if err := s.Dial(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// NewSFTP returns the FS rooted at root on the server cfg names, not
// connected yet: Dial connects it (Run does so for a destination while it
// reads the source). Only String and Close may be called before.
func NewSFTP(cfg sshx.Config, root string, opts SFTPOptions) *SFTP {
	s := &SFTP{cfg: cfg, root: root, conns: max(opts.Conns, 1), sessions: max(opts.Sessions, 1),
		helper: opts.Helper, notice: opts.Notice, first: make(chan struct{})}
	s.viaSFTP = &sftpFS{s: s, syncCmd: "sync -f --", findCmd: "find", tarCmd: "tar", gzipCmd: "gzip", mvCmd: "mv", mkdirCmd: "mkdir",
		shellCmd: "exec /bin/sh"}
	s.viaHelper = &helperFS{s: s, viaSFTP: s.viaSFTP}
	s.helpers.Store(&[]*remote.Client{})
	return s
}

// Dial opens the first SSH connection, with its helper starting in the
// background, or its SFTP sessions; Expand opens the rest, up to
// opts.Conns connections with opts.Sessions SFTP sessions each. A host key
// mismatch is returned wrapping sshx.ErrHostKey. It connects once: a
// later call returns the first one's result (an SFTP closed before it was
// dialed: net.ErrClosed).
func (s *SFTP) Dial(ctx context.Context) error {
	s.dialOnce.Do(func() { s.dialErr = s.dial(ctx) })
	return s.dialErr
}

func (s *SFTP) dial(ctx context.Context) error {
	cl, err := sshx.Dial(ctx, s.cfg)
	if err != nil {
		close(s.first)
		return err
	}
	c := &sftpConn{ssh: cl}
	n := min(s.sessions, initialSessions)
	s.mu.Lock()
	s.open = []*sftpConn{c}
	s.mu.Unlock()
	published := make(chan struct{}) // the session below, or its failure
	if s.helper == "" {
		close(s.first)
	} else {
		// The helper starts while the SFTP session opens and the caller
		// reads the source; it is published as soon as it greets, not
		// once the session is open, a round trip later (a listing asked
		// for in between would go over SFTP: four round trips).
		n = 1
		go func() {
			defer close(s.first)
			if !s.startHelper(ctx, c, true) {
				<-published
				s.mu.Lock()
				defer s.mu.Unlock()
				if k := min(s.sessions, initialSessions) - len(c.c); k > 0 && !s.closed && slices.Contains(s.open, c) {
					if opened, err := c.openSessions(k); err == nil {
						c.c = append(c.c, opened...)
						s.publish()
					}
				}
			}
		}()
	}
	opened, err := c.openSessions(n)
	s.mu.Lock()
	if err == nil {
		c.c = opened // (a helper that failed opens more only after this)
		s.publish()
	}
	s.mu.Unlock()
	close(published)
	if err != nil {
		_ = s.closeConns()
		return err
	}
	if s.helper == "" {
		go s.viaSFTP.warmShell()
		s.viaSFTP.dialTarConnAhead()
	}
	return nil
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
		_ = h.Close()
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

// openSessions opens n more SFTP sessions on c's connection, all at once
// (each is a round trip and a process on the server), and returns them.
// On error the ones opened here are closed again.
func (c *sftpConn) openSessions(n int) ([]*sftp.Client, error) {
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
				_ = sc.Close()
			}
		}
		return nil, err
	}
	return opened, nil
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

// helperSessions is how many SFTP sessions a connection with a helper
// has: the helper writes, lists and syncs; SFTP only reads (files checked
// at the destination), and each session is an sftp-server the server
// forks.
const helperSessions = 2

// Expand opens the remaining connections and sessions (once), all at
// once: each new connection starts its helper as soon as it is up (dial,
// sessions and helper one stage after the other for all connections took
// 1.4 s on a far link, this 0.8 s). Without a helper every connection has
// Sessions SFTP sessions; with one, helperSessions (and the rest where a
// connection's helper does not start). If that fails the FS keeps working
// with what it has.
//
// It returns when all are up, but for the first connection's further
// SFTP sessions where a helper serves it (added in the background: see
// expand). (Returning at once and letting the copy
// start on the first connection, the others joining as they came up, was
// tried: no gain showed in alternating runs over the far link, and a
// connection that cannot be opened would no longer stop the run; see
// bench/wan.md.)
func (s *SFTP) Expand(ctx context.Context) error {
	s.mu.Lock()
	if s.expanded || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.expanded = true
	s.mu.Unlock()
	return s.expand(ctx)
}

// expand opens what Expand promises, all at once, and returns the first
// error.
func (s *SFTP) expand(ctx context.Context) error {
	s.mu.Lock()
	first := s.open[0]
	s.mu.Unlock()
	useHelper := s.helper != "" && s.remote(ctx) != nil
	per := s.sessions
	if useHelper {
		per = min(per, helperSessions)
	}
	g, gctx := errgroup.WithContext(ctx)
	if n := per - s.sessionCount(first); n > 0 {
		if useHelper {
			// Beside a helper, SFTP only reads (files to hash at the
			// destination), and the first connection has a session for
			// that already: the copy does not wait for more (three round
			// trips each, on a far link the longest step before a first
			// copy begins). One that cannot be opened leaves the FS with
			// what it has.
			s.bg.Go(func() { _ = s.addSessions(first, n) })
		} else {
			g.Go(func() error { return s.addSessions(first, n) })
		}
	}
	for range s.conns - 1 {
		g.Go(func() error {
			cl, err := sshx.Dial(gctx, s.cfg)
			if err != nil {
				return err
			}
			c := &sftpConn{ssh: cl}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = cl.Close()
				return net.ErrClosed
			}
			s.open = append(s.open, c)
			s.mu.Unlock()
			var cg errgroup.Group
			cg.Go(func() error { return s.addSessions(c, per) })
			if useHelper {
				cg.Go(func() error {
					if !s.startHelper(ctx, c, false) && per < s.sessions {
						return s.addSessions(c, s.sessions-per)
					}
					return nil
				})
			}
			return cg.Wait()
		})
	}
	return g.Wait()
}

// sessionCount is how many SFTP sessions c has.
func (s *SFTP) sessionCount(c *sftpConn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(c.c)
}

// addSessions opens n more SFTP sessions on c and publishes them (or
// closes them if s was closed meanwhile).
func (s *SFTP) addSessions(c *sftpConn, n int) error {
	opened, err := c.openSessions(n)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !slices.Contains(s.open, c) {
		for _, sc := range opened {
			_ = sc.Close()
		}
		return net.ErrClosed
	}
	c.c = append(c.c, opened...)
	s.publish()
	return nil
}

func (s *SFTP) String() string {
	return fmt.Sprintf("sftp://%s@%s%s", s.cfg.User, s.cfg.Addr(), s.root)
}

func (s *SFTP) client() *sftp.Client {
	all := *s.clients.Load()
	return all[s.next.Add(1)%uint64(len(all))]
}

func (s *SFTP) path(name string) string {
	if name == "" {
		return s.root
	}
	return path.Join(s.root, name)
}

// access is what each of the two ways to the server does: every
// operation of the FS and of the optional interfaces SFTP implements. A
// way that cannot do one (WriteFile, Publish over SFTP alone) says so
// with the error the interface documents.
type access interface {
	ReadDir(ctx context.Context, dir string) ([]Entry, error)
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	Create(ctx context.Context, name string) (File, error)
	MkdirAll(ctx context.Context, dir string) error
	Rename(ctx context.Context, from, to string) error
	Remove(ctx context.Context, name string) error
	FSSyncer
	FileWriter
	LaterWriter
	Digester
	Publisher
	DirsLister
}

// way is the one place that chooses between the helper and SFTP alone:
// the helpers once the first connection's helper has started, SFTP if it
// could not (or ctx ended while waiting for it). Only reads do not wait
// for it: Open always goes over SFTP, ReadDir while the helper starts.
func (s *SFTP) way(ctx context.Context) access {
	if s.remote(ctx) != nil {
		return s.viaHelper
	}
	return s.viaSFTP
}

// ReadDir lists dir through the helpers once the first one has started
// (way), over SFTP while it is starting: the few listings a run begins
// with (the destination's top directories) do not wait for it.
func (s *SFTP) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	select {
	case <-s.first:
		return s.way(ctx).ReadDir(ctx, dir)
	default:
		return s.viaSFTP.ReadDir(ctx, dir)
	}
}

// Open reads over SFTP, the helper or not (helperFS.Open): it does not
// wait for the helper to start.
func (s *SFTP) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.viaSFTP.Open(ctx, name)
}

func (s *SFTP) Create(ctx context.Context, name string) (File, error) {
	return s.way(ctx).Create(ctx, name)
}

func (s *SFTP) MkdirAll(ctx context.Context, dir string) error {
	return s.way(ctx).MkdirAll(ctx, dir)
}

func (s *SFTP) Rename(ctx context.Context, from, to string) error {
	return s.way(ctx).Rename(ctx, from, to)
}

func (s *SFTP) Remove(ctx context.Context, name string) error {
	return s.way(ctx).Remove(ctx, name)
}

func (s *SFTP) SyncFS(ctx context.Context, dirs []string) error {
	return s.way(ctx).SyncFS(ctx, dirs)
}

func (s *SFTP) WriteFile(ctx context.Context, name string, data []byte, fsync bool) error {
	return s.way(ctx).WriteFile(ctx, name, data, fsync)
}

func (s *SFTP) WriteFileLater(ctx context.Context, name string, data []byte, l *remote.Later) error {
	return s.way(ctx).WriteFileLater(ctx, name, data, l)
}

func (s *SFTP) RenameLater(ctx context.Context, from, to string, l *remote.Later) error {
	return s.way(ctx).RenameLater(ctx, from, to, l)
}

func (s *SFTP) DirDigests(ctx context.Context, dirs []string) ([][32]byte, error) {
	return s.way(ctx).DirDigests(ctx, dirs)
}

func (s *SFTP) Publish(ctx context.Context, files []remote.Published) error {
	return s.way(ctx).Publish(ctx, files)
}

func (s *SFTP) ReadDirs(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	return s.way(ctx).ReadDirs(ctx, dirs)
}

// Close closes every connection, all at once: an SFTP session's close
// waits for the server to end it (a round trip), so one after the other
// 32 of them would take 32 round trips. It returns once the first
// connection's helper has started or given up, so nothing is reported
// after it, nor any session still being added.
func (s *SFTP) Close() error {
	s.dialOnce.Do(func() { // never dialed: never will be
		s.dialErr = fmt.Errorf("%s: %w", s, net.ErrClosed)
		close(s.first)
	})
	return s.closeConns()
}

// closeConns is Close once Dial is done.
func (s *SFTP) closeConns() error {
	defer func() { <-s.first }()
	defer s.bg.Wait() // (addSessions closes what it opens once closed is set)
	s.viaSFTP.closeShell()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	var emu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, c := range s.open {
		wg.Go(func() {
			// The helper and the SFTP sessions end at once: each waits
			// for the server to end its side, a round trip.
			var cwg sync.WaitGroup
			if c.helper != nil {
				cwg.Go(func() { _ = c.helper.Close() }) // a write through it reports its own failure (Later.Wait)
			}
			for _, sc := range c.c {
				cwg.Go(func() {
					err := sc.Close()
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				})
			}
			cwg.Wait()
			err := c.ssh.Close()
			emu.Lock()
			errs = append(errs, err)
			emu.Unlock()
		})
	}
	wg.Wait()
	s.open = nil
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}
