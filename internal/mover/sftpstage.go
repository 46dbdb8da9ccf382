package mover

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/mover/remote"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// A batch of small files over SFTP alone, where the account may run
// commands (the shell kept for sync -f works): instead of five SFTP
// requests per file (open, fsetstat to narrow the mode before any data,
// write, close, rename) each file goes into one tar(1) stream per batch,
// extracted on the server into a staging directory that only the account
// may enter (0700, made afresh by each run: what a killed run left there
// is removed), with its final mode; the batch's SyncFS ends the stream
// with a script that the session runs once tar has exited 0 (sync -f of
// the staging directory: one round trip for the stream's end and the
// sync) and waits for the session to end; only then does the mover
// rename each file into place (one posix-rename request each, from the
// staging directory to its final name). So nothing is half-written
// under a final name, a file's data is never where anyone else may open it
// before its mode is narrowed, and every file is durable before its
// rename. Where tar cannot be started the files go the usual way
// (WriteFileLater returns errNoFileWriter).

// stageName is the staging directory, below the channel root (the same
// file system, so a rename out of it is a rename(2)); a temporary name
// that every reader of a channel ignores.
const stageName = manifest.MoverTempPrefix + "stage"

// stager holds the staging state of an sftpFS.
type stager struct {
	mu       sync.Mutex
	finishMu sync.Mutex      // held while a stream is ended (finishStaged)
	state    int32           // syncUnknown, syncWorks, syncUnavailable
	cur      *tarSession     // taking this batch's files, or nil
	spare    chan tarSession // one started ahead: a session's start is the account's login shell
	n        uint64          // files staged so far this run (their names there)
	sessions atomic.Uint64   // tar sessions started (their scripts' names)
	staged   map[string]string
	clean    atomic.Bool // what a killed run left was removed
}

// tarSession is tar -x running in the staging directory, reading stdin.
type tarSession struct {
	sess   *ssh.Session
	in     io.WriteCloser
	w      *bufio.Writer
	tw     *tar.Writer
	stderr *sshx.Tail
	// afterPath is the script run after the stream, if it holds one
	// (script), as the login directory sees it.
	afterPath string
	err       error // from the start
}

// afterName starts the name of a tar session's script (the staged files
// are numbers).
const afterName = "after-"

// shellPath is p as an argument to a command: never an option.
func shellPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "./" + p
	}
	return p
}

// WriteFileLater writes data into the current batch's tar stream under a
// name of the staging directory (the mover's name tmp is remembered for
// Rename); the batch's SyncFS reports whether tar wrote it. l is not used:
// nothing is left to wait for when this returns but tar's exit.
func (f *sftpFS) WriteFileLater(ctx context.Context, tmp string, data []byte, _ *remote.Later) error {
	st := &f.stage
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur == nil {
		t, err := f.takeTar(ctx)
		if err != nil {
			return err
		}
		st.cur = t
	}
	name, err := st.cur.add(&st.n, data, manifest.PermOf(rel(tmp)))
	if err != nil {
		return fmt.Errorf("write %s at %s through tar: %w", tmp, f.s, err)
	}
	st.staged[tmp] = name
	return nil
}

// takeTar returns a tar session of its own to the caller (the one started
// ahead; the next is started), making the staging directory first if this
// is the run's first. Where tar cannot be started it returns
// errNoFileWriter. Callers hold stage.mu.
func (f *sftpFS) takeTar(ctx context.Context) (*tarSession, error) {
	st := &f.stage
	if st.state == syncUnavailable {
		return nil, errNoFileWriter
	}
	if st.state == syncUnknown {
		if err := f.startStage(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			st.state = syncUnavailable
			_ = f.s.client().RemoveDirectory(f.s.path(stageName)) // if made
			return nil, errNoFileWriter
		}
		st.state = syncWorks
	}
	var t tarSession
	select {
	case t = <-st.spare:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	go func() { st.spare <- f.startTar() }()
	if t.err != nil {
		return nil, fmt.Errorf("%s: %w", f.s, t.err)
	}
	return &t, nil
}

// add puts data into t's stream under the next name of the staging
// directory (n counts them) with mode perm, and returns that name.
func (t *tarSession) add(n *uint64, data []byte, perm fs.FileMode) (string, error) {
	*n++
	name := strconv.FormatUint(*n, 10)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data)),
		Mode: int64(perm), ModTime: time.Now()}
	err := t.tw.WriteHeader(hdr)
	if err == nil {
		_, err = t.tw.Write(data)
	}
	if err != nil {
		return "", t.fail(err)
	}
	return name, nil
}

// startStage makes the staging directory afresh (what a killed run left
// in it goes) and starts the first tar. Callers hold stage.mu.
func (f *sftpFS) startStage(ctx context.Context) error {
	dir := sshx.Quote(f.s.path(stageName))
	f.shellMu.Lock()
	err := f.shellRun(ctx, "rm -rf -- "+dir+" && mkdir -m 700 -- "+dir, nil)
	f.shellMu.Unlock()
	if err != nil {
		return err
	}
	f.stage.clean.Store(true) // what a killed run left is gone
	f.stage.staged = map[string]string{}
	f.stage.spare = make(chan tarSession, 1)
	t := f.startTar()
	if t.err != nil {
		return t.err
	}
	f.stage.spare <- t
	return nil
}

// startTar starts tar -x in the staging directory on the first
// connection and waits until it runs.
func (f *sftpFS) startTar() tarSession {
	f.s.mu.Lock()
	if len(f.s.open) == 0 {
		f.s.mu.Unlock()
		return tarSession{err: errors.New("closed")}
	}
	cl := f.s.open[0].ssh
	f.s.mu.Unlock()
	sess, err := cl.NewSession()
	if err != nil {
		return tarSession{err: fmt.Errorf("open a session for tar: %w", err)}
	}
	stage := f.s.path(stageName)
	t := tarSession{sess: sess, stderr: &sshx.Tail{},
		afterPath: shellPath(path.Join(stage, afterName+strconv.FormatUint(f.stage.sessions.Add(1), 10)))}
	sess.Stderr = t.stderr
	out, err := sess.StdoutPipe()
	if err == nil {
		t.in, err = sess.StdinPipe()
	}
	if err == nil {
		// -m: the time of the write, as any other write; -o: never the
		// archive's owner; -p: the archive's mode, not less the umask.
		// Once tar has extracted the whole stream, the script the stream
		// ended with, if any (script), runs in the login directory, as
		// the shell's commands do.
		err = sess.Start("command -v " + f.tarCmd + " >/dev/null && echo " + tarReady + " && " +
			f.tarCmd + " -C " + sshx.Quote(stage) + " -x -m -o -p -f - && " +
			`sh -c '[ ! -f "$1" ] || . "$1"' sh ` + sshx.Quote(t.afterPath))
	}
	if err != nil {
		_ = sess.Close()
		return tarSession{err: fmt.Errorf("start tar: %w", err)}
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == tarReady {
				ready <- true
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if ok {
			t.w = bufio.NewWriterSize(t.in, 256<<10)
			t.tw = tar.NewWriter(t.w)
			return t
		}
	case <-time.After(helperTimeout):
	}
	_ = sess.Close()
	return tarSession{err: fmt.Errorf("tar did not start in %s: %s", f.s.path(stageName), t.stderr.String())}
}

const tarReady = "bcp-tar-ready"

// fail ends a tar session that could not take a file and says why.
func (t *tarSession) fail(err error) error {
	_ = t.sess.Close()
	if msg := t.stderr.String(); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	return err
}

// finish ends the tar stream and waits for tar to exit: every file in it
// then is whole (not yet durable) in the staging directory.
func (t *tarSession) finish(ctx context.Context) error {
	err := t.tw.Close()
	if err == nil {
		err = t.w.Flush()
	}
	if err == nil {
		err = t.in.Close()
	}
	if err != nil {
		return t.fail(err)
	}
	done := make(chan error, 1)
	go func() { done <- t.sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return t.fail(ctx.Err())
	}
	if err != nil {
		return t.fail(fmt.Errorf("tar: %w", err))
	}
	return nil
}

// finishStaged ends the current tar stream, if any (SyncFS, before the
// renames), with a script that runs sync -f on the staging directory's
// file system once tar has extracted the stream, and waits for the
// session to end: every file written before the call is then durable -
// the ones in this stream, and those in streams ended before (finishes
// are one at a time) - in the staging directory, on the file system of
// every directory a staged file is renamed into (a rename(2)). It says
// whether it ended a stream: if not, the caller syncs itself.
func (f *sftpFS) finishStaged(ctx context.Context) (bool, error) {
	st := &f.stage
	st.finishMu.Lock()
	defer st.finishMu.Unlock()
	st.mu.Lock()
	t := st.cur
	st.cur = nil
	st.mu.Unlock()
	if t == nil {
		return false, nil
	}
	err := t.script(f.syncCmd + " " + sshx.Quote(shellPath(f.s.path(stageName))))
	if err == nil {
		err = t.finish(ctx)
	}
	if err != nil {
		return false, fmt.Errorf("write files at %s through tar and sync -f: %w", f.s, err)
	}
	return true, nil
}

// script ends t's stream with cmd, which the session runs in the login
// directory once tar has extracted the whole stream and exited 0; the
// script removes itself after cmd succeeded.
func (t *tarSession) script(cmd string) error {
	s := cmd + " && rm -f -- " + sshx.Quote(t.afterPath) + "\n"
	err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Base(t.afterPath), Size: int64(len(s)), Mode: 0o600, ModTime: time.Now()})
	if err == nil {
		_, err = t.tw.Write([]byte(s))
	}
	if err != nil {
		return t.fail(err)
	}
	return nil
}

// stagedPath is where tmp was staged, if it was.
func (f *sftpFS) stagedPath(tmp string) (string, bool) {
	st := &f.stage
	st.mu.Lock()
	defer st.mu.Unlock()
	name, ok := st.staged[tmp]
	if !ok {
		return "", false
	}
	return path.Join(f.s.path(stageName), name), true
}

// unstage forgets tmp once it left the staging directory.
func (f *sftpFS) unstage(tmp string) {
	st := &f.stage
	st.mu.Lock()
	delete(st.staged, tmp)
	st.mu.Unlock()
}

// closeStage ends the spare and current tar sessions (what they took was
// not renamed: the next run removes it) and removes the staging directory
// if it is empty.
func (f *sftpFS) closeStage() {
	st := &f.stage
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cur != nil {
		_ = st.cur.sess.Close()
		st.cur = nil
	}
	if st.state != syncWorks {
		return
	}
	st.state = syncUnavailable
	if t := <-st.spare; t.sess != nil {
		_ = t.sess.Close()
	}
	if len(st.staged) == 0 {
		_ = f.s.client().RemoveDirectory(f.s.path(stageName))
	}
}
