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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// sftpFS is the channel directory on the server reached over SFTP alone
// (the sessions of s, round robin), with syncfs(2) through a shell on the
// server where the account may run commands. It writes no whole files in
// one request (Create per file) and fingerprints and lists directories
// from one find(1) through that shell where it can (sftpdigest.go).
type sftpFS struct {
	s *SFTP
	// syncCmd runs syncfs(2) on the server (coreutils sync -f); tests
	// replace it to play an account that may not run commands.
	syncCmd   string
	syncState atomic.Int32 // syncUnknown, syncWorks, syncUnavailable
	// findCmd lists directories on the server (GNU find); tests replace it.
	findCmd   string
	findState atomic.Int32 // syncUnknown, syncWorks, syncUnavailable
	// tarCmd extracts a batch of small files (sftpstage.go); tests
	// replace it.
	tarCmd string
	// gzipCmd is what tar -z needs on the server to take a compressed
	// stream; tests replace it ("": never compressed).
	gzipCmd string
	// shellCmd starts the shell kept for the run; tests replace it to
	// play an account that may not run commands.
	shellCmd string
	// mkdirCmd makes directories through the shell (mkdirShell); tests
	// replace it.
	mkdirCmd   string
	mkdirState atomic.Int32 // syncUnknown, syncWorks, syncUnavailable
	mkdirMu    sync.Mutex   // guards mkdirNext
	mkdirNext  *dirBatch    // the batch MkdirAll calls join, or nil
	// mvCmd renames a phase's files in place (sftppublish.go); tests
	// replace it.
	mvCmd        string
	publishState atomic.Int32 // syncUnknown, syncWorks, syncUnavailable
	stage        stager
	shellMu      sync.Mutex   // guards shell and shellClosed
	shell        *remoteShell // nil until first needed (or warmShell)
	shellClosed  bool         // closeShell was called: warmShell starts none
}

var _ access = (*sftpFS)(nil)

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

// ReadDir lists a directory with READDIR requests: sizes and times come
// with the names, so no per-file stat is needed.
func (f *sftpFS) ReadDir(ctx context.Context, dir string) ([]Entry, error) {
	infos, err := f.s.client().ReadDirContext(ctx, f.s.path(dir))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.s.path(dir), err)
	}
	out := make([]Entry, 0, len(infos))
	for _, fi := range infos {
		out = append(out, Entry{Name: fi.Name(), Size: fi.Size(), Dir: fi.IsDir(), ModTime: fi.ModTime()})
	}
	return out, nil
}

// Open opens a file for reading. *sftp.File implements io.WriterTo with
// many read requests in flight.
func (f *sftpFS) Open(_ context.Context, name string) (io.ReadCloser, error) {
	r, err := f.s.client().Open(f.s.path(name))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", f.s.path(name), err)
	}
	return r, nil
}

// Create creates or truncates a file. *sftp.File implements io.ReaderFrom
// with concurrent writes when the reader tells its size.
func (f *sftpFS) Create(_ context.Context, name string) (File, error) {
	w, err := f.s.client().OpenFile(f.s.path(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", f.s.path(name), err)
	}
	// SFTP's open takes no mode here, so the server makes it 0666 less
	// its umask; narrow it before any data is written.
	if err := w.Chmod(manifest.PermOf(rel(name))); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("create %s: set mode: %w", f.s.path(name), err)
	}
	return w, nil
}

// MkdirAll makes dir and its missing parents, each with
// manifest.DirPerm. Through the shell where it can, with the directories
// other callers ask for at about the same time, in one command
// (mkdirShell); else, or if that fails, over SFTP (a stat, mkdir and
// chmod each), which says what failed. A directory made means files
// are to be written: the staging of batches starts (startStaging).
func (f *sftpFS) MkdirAll(ctx context.Context, dir string) error {
	f.startStaging()
	if d := rel(dir); d != "." && f.mkdirShell(ctx, d) == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := f.mkdirAll(rel(dir)); err != nil {
		return fmt.Errorf("mkdir %s: %w", f.s.path(dir), err)
	}
	return nil
}

// dirBatch is the directories that MkdirAll calls made at about the same
// time ask for, made in one shell command.
type dirBatch struct {
	dirs []string
	done chan struct{} // closed once err is set
	err  error
}

// mkdirGather is how long the first MkdirAll of a batch waits for others
// to join (the mover makes up to 64 directories at once, each from its
// own goroutine); mkdirBatchMax bounds a batch.
const (
	mkdirGather   = 2 * time.Millisecond
	mkdirBatchMax = 256
)

// mkdirShell makes dir (relative to the root, not the root) and its
// missing parents below the root through the shell, in one command with
// the directories other callers ask for meanwhile: a round trip for all
// of them instead of three or four for each over SFTP (the 256 object
// directories of a first copy took 1.1 s at 50 ms, 64 at a time). An
// error says only that this way did not work: the caller makes dir over
// SFTP, which reports a real failure. Where the shell cannot be run it
// is not tried again.
func (f *sftpFS) mkdirShell(ctx context.Context, dir string) error {
	if f.mkdirState.Load() == syncUnavailable {
		return errNoFileWriter
	}
	f.mkdirMu.Lock()
	b := f.mkdirNext
	lead := b == nil
	if lead {
		b = &dirBatch{done: make(chan struct{})}
		f.mkdirNext = b
	}
	b.dirs = append(b.dirs, dir)
	if len(b.dirs) >= mkdirBatchMax {
		f.mkdirNext = nil // the next caller starts another
	}
	f.mkdirMu.Unlock()
	if !lead {
		select {
		case <-b.done:
			return b.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(b.done)
	time.Sleep(mkdirGather)
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	f.mkdirMu.Lock()
	if f.mkdirNext == b {
		f.mkdirNext = nil
	}
	f.mkdirMu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, stagePrepTimeout)
	defer cancel()
	b.err = f.shellRun(cctx, f.mkdirCommand(b.dirs), nil)
	switch {
	case b.err == nil:
		f.mkdirState.Store(syncWorks)
	case errors.Is(b.err, errCommandFailed) && f.mkdirState.Load() == syncWorks:
		// a directory of this batch could not be made: each goes over SFTP
	case ctx.Err() == nil:
		f.mkdirState.Store(syncUnavailable)
	}
	return b.err
}

// mkdirCommand makes dirs and their parents below the root that are
// missing with one mkdir -m (exact mode, not less the umask), parents
// first; it fails if one cannot be made.
func (f *sftpFS) mkdirCommand(dirs []string) string {
	seen := map[string]bool{}
	var cmd strings.Builder
	cmd.WriteString("{ set --; for d in")
	for _, d := range dirs {
		parts := strings.Split(d, "/")
		for i := range parts {
			p := shellPath(f.s.path(strings.Join(parts[:i+1], "/")))
			if !seen[p] {
				seen[p] = true
				cmd.WriteString(" " + sshx.Quote(p))
			}
		}
	}
	mode := strconv.FormatUint(uint64(manifest.DirPerm.Perm()), 8)
	cmd.WriteString(`; do [ -d "$d" ] || set -- "$@" "$d"; done; [ $# -eq 0 ] || ` + f.mkdirCmd + " -m " + mode + ` -- "$@"; }`)
	return cmd.String()
}

// mkdirAll makes dir and its missing parents below the root (and the root
// if missing), each with manifest.DirPerm: SFTP's mkdir takes the server's
// umask, not a mode.
func (f *sftpFS) mkdirAll(dir string) error {
	c := f.s.client()
	var missing []string // dir first, then its missing parents
	for d := dir; ; d = path.Dir(d) {
		if fi, err := c.Stat(f.s.path(d)); err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", f.s.path(d))
			}
			break
		}
		missing = append(missing, d)
		if d == "." || d == "" || d == "/" {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		p := f.s.path(missing[i])
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
// atomically (plain SFTP rename refuses an existing target). A file of a
// batch (WriteFileLater) is renamed from where it was staged.
func (f *sftpFS) Rename(_ context.Context, from, to string) error {
	src, staged := f.stagedPath(from)
	if !staged {
		src = f.s.path(from)
	}
	if err := f.s.client().PosixRename(src, f.s.path(to)); err != nil {
		return fmt.Errorf("rename %s to %s: %w", src, f.s.path(to), err)
	}
	if staged {
		f.unstage(from)
	}
	return nil
}

func (f *sftpFS) Remove(_ context.Context, name string) error {
	p, staged := f.stagedPath(name)
	if !staged {
		p = f.s.path(name)
	}
	if err := f.s.client().Remove(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	if staged {
		f.unstage(name)
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
// later one; once it has worked, a failure is a real error. Where the
// batch's files went through tar, the tar session syncs instead
// (finishStaged).
func (f *sftpFS) SyncFS(ctx context.Context, dirs []string) error {
	f.startStaging() // a destination that syncs is written to
	if synced, err := f.finishStaged(ctx); err != nil || synced {
		return err // synced: by the tar session's script, after every write before this call
	}
	if f.syncState.Load() == syncUnavailable {
		return ErrNoSyncFS
	}
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	paths := make([]string, len(dirs))
	for i, d := range dirs {
		paths[i] = f.s.path(d)
	}
	cmd := syncDirsCommand(f.syncCmd, paths)
	if f.stage.clean.CompareAndSwap(false, true) {
		// the first sync of a run (the mover's probe, before any batch)
		// also removes what a killed run left staged
		cmd = "rm -rf -- " + sshx.Quote(f.s.path(stageName)) + " && " + cmd
	}
	err := f.shellRun(ctx, cmd, nil)
	if err == nil {
		f.syncState.Store(syncWorks)
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if f.syncState.CompareAndSwap(syncUnknown, syncUnavailable) {
		return fmt.Errorf("sync -f at %s: %w: %w", f.s, err, ErrNoSyncFS)
	}
	return fmt.Errorf("sync -f at %s: %w", f.s, err)
}

// syncDirsCommand runs sync (sync -f --) on paths, one of them per file
// system where stat(1) tells their devices: a syncfs(2) waits for the
// file system's journal each time, and the copy's last SyncFS names
// every directory written to (256 object directories took 0.2-0.26 s at
// 50 ms where one takes a round trip). Where stat cannot tell, every path
// is synced. Paths go out quoted.
func syncDirsCommand(sync string, paths []string) string {
	var cmd strings.Builder
	cmd.WriteString(sync)
	if len(paths) < 2 {
		for _, p := range paths {
			cmd.WriteString(" " + sshx.Quote(p))
		}
		return cmd.String()
	}
	cmd.Reset()
	cmd.WriteString("{ set --")
	for _, p := range paths {
		cmd.WriteString(" " + sshx.Quote(p))
	}
	// Each path is taken from the front and put back at the end if its
	// device is new: after a round "$@" holds one path per device.
	cmd.WriteString(`; if devs=$(stat -L -c %d -- "$@" 2>/dev/null); then seen=' '; for dev in $devs; do d=$1; shift; ` +
		`case $seen in *" $dev "*) ;; *) seen="$seen$dev "; set -- "$@" "$d";; esac; done; fi; ` + sync + ` "$@"; }`)
	return cmd.String()
}

// WriteFile returns errNoFileWriter: the copier writes through Create,
// where the close need not hold up the rename.
func (f *sftpFS) WriteFile(context.Context, string, []byte, bool) error { return errNoFileWriter }

// RenameLater returns errNoFileWriter: Rename takes a staged file out of
// the staging directory.
func (f *sftpFS) RenameLater(context.Context, string, string, *remote.Later) error {
	return errNoFileWriter
}

// readDirsSFTP lists dirs over SFTP (ReadDirs where find cannot). Each
// listing is its own exchange (open, reads, close: a few round trips);
// listing sftpListsInFlight at once over the sessions keeps a far link's
// round trips from adding up one directory after the other.
func (f *sftpFS) readDirsSFTP(ctx context.Context, dirs []string) ([]remote.DirList, error) {
	out := make([]remote.DirList, len(dirs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(sftpListsInFlight)
	for i, d := range dirs {
		g.Go(func() error {
			// a failure other than a missing directory is kept: the caller
			// lists that directory again on its own and reports it there
			out[i].Entries, out[i].Err = f.ReadDir(gctx, d)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// sftpListsInFlight is how many directories SFTP alone lists at once.
const sftpListsInFlight = 32

// remoteShell is a shell on the server that reads commands from stdin.
type remoteShell struct {
	sess   *ssh.Session
	in     io.WriteCloser
	lines  chan string // stdout, line by line; closed at EOF
	stderr *sshx.Tail
}

// shellRun runs cmd in the remote shell (started on first use) and waits
// for the line that confirms it succeeded. Where out is not nil, it gets
// each line cmd prints (which must end in a newline), and nothing printed
// before (a login shell's chatter). Callers hold f.shellMu.
func (f *sftpFS) shellRun(ctx context.Context, cmd string, out func(line string)) error {
	if f.shell == nil {
		if err := f.openShell(); err != nil {
			return err
		}
	}
	sh := f.shell
	fail := func(err error) error {
		_ = sh.sess.Close()
		f.shell = nil
		if msg := sh.stderr.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	line := cmd + " && echo " + syncOK + " || echo " + syncFailed + "\n"
	if out != nil {
		line = "echo " + shellBegin + "; " + line
	}
	if _, err := io.WriteString(sh.in, line); err != nil {
		return fail(fmt.Errorf("send command: %w", err))
	}
	begun := false
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
				// the shell ran it to the end: it stays in step
				if msg := sh.stderr.String(); msg != "" {
					return fmt.Errorf("%w: %s", errCommandFailed, msg)
				}
				return errCommandFailed
			case out != nil && line == shellBegin:
				begun = true
			case begun:
				out(line)
			}
			// anything else is the login shell's chatter
		}
	}
}

// openShell starts the shell on the first connection. Callers hold
// f.shellMu.
func (f *sftpFS) openShell() error {
	f.s.mu.Lock()
	if len(f.s.open) == 0 {
		f.s.mu.Unlock()
		return net.ErrClosed
	}
	cl := f.s.open[0].ssh
	f.s.mu.Unlock()
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
		err = sess.Start(f.shellCmd)
	}
	if err != nil {
		_ = sess.Close()
		return fmt.Errorf("start a shell: %w", err)
	}
	go func() {
		defer close(sh.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			sh.lines <- sc.Text()
		}
	}()
	f.shell = sh
	return nil
}

// warmShell starts the shell ahead of its first command (SFTP alone from
// the start: no helper asked for), so that the account's login shell
// starts while the run reads the source, not when the first listing or
// sync waits for it (0.6 s on the benchmark machine, whose ~/.bashrc runs
// pyenv). Where it cannot, the first command tries again and says why.
func (f *sftpFS) warmShell() {
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	if f.shell == nil && !f.shellClosed {
		_ = f.openShell()
	}
}

// errCommandFailed is a command run through the shell that exited
// non-zero; the shell still runs.
var errCommandFailed = errors.New("command failed")

const (
	syncFailed = "bcp-syncfs-failed"
	shellBegin = "bcp-shell-begin" // what a command prints follows
)

// closeShell ends the shell and the staging of batches, if they were
// started.
func (f *sftpFS) closeShell() {
	f.closeStage()
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	f.shellClosed = true
	if f.shell != nil {
		_ = f.shell.in.Close()              // the shell reads EOF and exits
		_ = remote.EndSession(f.shell.sess) // the shell runs what it was sent, then exits
		f.shell = nil
	}
}
