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
// connections at once. Each SSH connection is served by its own sshd
// process (one encryption stream, one sftp-server), so several of them use
// several cores on both ends; requests are spread over them round robin.
type SFTP struct {
	cfg     sshx.Config
	root    string
	conns   []*sftpConn
	next    atomic.Uint64
	closeMu sync.Mutex
}

type sftpConn struct {
	ssh *sshx.Client
	c   *sftp.Client
}

var _ FS = (*SFTP)(nil)

// DialSFTP opens conns SSH connections (at least one) to cfg, each with an
// SFTP session, and returns the FS rooted at root on the server. A host key
// mismatch is returned wrapping sshx.ErrHostKey.
func DialSFTP(ctx context.Context, cfg sshx.Config, root string, conns int) (*SFTP, error) {
	if conns < 1 {
		conns = 1
	}
	s := &SFTP{cfg: cfg, root: root, conns: make([]*sftpConn, conns)}
	g, gctx := errgroup.WithContext(ctx)
	for i := range s.conns {
		g.Go(func() error {
			cl, err := sshx.Dial(gctx, cfg)
			if err != nil {
				return err
			}
			sc, err := cl.SFTP()
			if err != nil {
				cl.Close()
				return err
			}
			s.conns[i] = &sftpConn{ssh: cl, c: sc}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *SFTP) String() string {
	return fmt.Sprintf("sftp://%s@%s%s", s.cfg.User, s.cfg.Addr(), s.root)
}

func (s *SFTP) client() *sftp.Client {
	n := s.next.Add(1)
	return s.conns[n%uint64(len(s.conns))].c
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
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	var errs []error
	for i, c := range s.conns {
		if c == nil {
			continue
		}
		errs = append(errs, c.c.Close(), c.ssh.Close())
		s.conns[i] = nil
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
	}
	return nil
}
