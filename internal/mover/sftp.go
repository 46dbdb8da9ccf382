package mover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"
	"sync/atomic"

	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"

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
type SFTP struct {
	cfg      sshx.Config
	root     string
	conns    int // wanted
	sessions int // wanted per connection
	next     atomic.Uint64
	clients  atomic.Pointer[[]*sftp.Client] // in use, round robin
	mu       sync.Mutex                     // guards open and expanded
	open     []*sftpConn
	expanded bool
}

type sftpConn struct {
	ssh *sshx.Client
	c   []*sftp.Client
}

var (
	_ FS       = (*SFTP)(nil)
	_ Expander = (*SFTP)(nil)
)

// Expander is implemented by backends that start small - enough to list
// and decide - and open more connections only when there is work.
type Expander interface {
	Expand(ctx context.Context) error
}

// initialSessions is how many sessions the first connection opens: enough
// to list directories in parallel when there turns out to be nothing to do.
const initialSessions = 8

// DialSFTP connects to cfg and returns the FS rooted at root on the server.
// It opens one SSH connection at first; Expand opens the rest, up to conns
// connections (at least one) with sessions SFTP sessions each. A host key
// mismatch is returned wrapping sshx.ErrHostKey.
func DialSFTP(ctx context.Context, cfg sshx.Config, root string, conns, sessions int) (*SFTP, error) {
	s := &SFTP{cfg: cfg, root: root, conns: max(conns, 1), sessions: max(sessions, 1)}
	c, err := s.dial(ctx, min(s.sessions, initialSessions))
	if err != nil {
		return nil, err
	}
	s.open = []*sftpConn{c}
	s.publish()
	return s, nil
}

func (s *SFTP) dial(ctx context.Context, sessions int) (*sftpConn, error) {
	cl, err := sshx.Dial(ctx, s.cfg)
	if err != nil {
		return nil, err
	}
	sc := &sftpConn{ssh: cl}
	for range sessions {
		c, err := cl.SFTP()
		if err != nil {
			for _, c := range sc.c {
				c.Close()
			}
			cl.Close()
			return nil, err
		}
		sc.c = append(sc.c, c)
	}
	return sc, nil
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
	for len(first.c) < s.sessions {
		c, err := first.ssh.SFTP()
		if err != nil {
			return err
		}
		first.c = append(first.c, c)
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
	for _, c := range more {
		if c != nil {
			s.open = append(s.open, c)
		}
	}
	s.publish()
	return err
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

// ReadDir lists a directory with READDIR requests: sizes and times come
// with the names, so no per-file stat is needed.
func (s *SFTP) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
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
func (s *SFTP) Create(_ context.Context, name string) (File, error) {
	f, err := s.client().OpenFile(s.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", s.path(name), err)
	}
	return f, nil
}

func (s *SFTP) MkdirAll(_ context.Context, dir string) error {
	if err := s.client().MkdirAll(s.path(dir)); err != nil {
		return fmt.Errorf("mkdir %s: %w", s.path(dir), err)
	}
	return nil
}

// Rename uses posix-rename@openssh.com, which replaces the target
// atomically (plain SFTP rename refuses an existing target).
func (s *SFTP) Rename(_ context.Context, from, to string) error {
	if err := s.client().PosixRename(s.path(from), s.path(to)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", s.path(from), s.path(to), err)
	}
	return nil
}

func (s *SFTP) Remove(_ context.Context, name string) error {
	if err := s.client().Remove(s.path(name)); err != nil {
		return fmt.Errorf("remove %s: %w", s.path(name), err)
	}
	return nil
}

// Close closes every connection.
func (s *SFTP) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.open {
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
