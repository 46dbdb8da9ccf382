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

	"github.com/klauspost/compress/gzip"
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

// stager holds the staging state of an sftpFS. Two locks: wmu orders
// the writes into the current stream (held while a write waits for the
// SSH channel's window), mu guards the rest and is held only briefly, so
// that the renames of one batch (stagedPath) never wait behind the
// writes of the next.
type stager struct {
	wmu      sync.Mutex                 // held while a file goes into cur's stream
	cur      atomic.Pointer[tarSession] // taking this batch's files, or nil
	finishMu sync.Mutex                 // held while a stream is ended (finishStaged)
	mu       sync.Mutex                 // guards what follows
	state    int32                      // syncUnknown, syncWorks, syncUnavailable
	// prep is closed once the staging directory is made afresh and the
	// first sessions are being started (startStaging), or that failed
	// (state syncUnavailable); nil until then.
	prep chan struct{}
	// spare holds sessions started ahead (spareTars): a session's start is
	// the account's login shell, longer than a phase of a few files takes.
	spare    chan tarSession
	starting sync.WaitGroup // sessions being started into spare
	conn     *sshx.Client   // the tar sessions' connection (dialTarConn), or nil: the first
	connOnce sync.Once      // dialTarConnAhead
	connDone chan struct{}  // closed once conn is set
	connStop context.CancelFunc
	ctx      context.Context // ends the preparation and the starts (closeStage)
	cancel   context.CancelFunc
	closing  bool              // closeStage was called: nothing more is started
	staged   map[string]string // the mover's temporary name -> the staged one
	n        atomic.Uint64     // files staged so far this run (their names there)
	sessions atomic.Uint64     // tar sessions started (their scripts' names)
	gzipped  atomic.Uint64     // sessions taken whose stream is compressed
	clean    atomic.Bool       // what a killed run left was removed
}

// spareTars is how many tar sessions are kept started ahead. Four: the
// last phases of a push (a file or a few each, one after the other) take
// a session each, every 0.06-0.1 s at 50 ms, and a session takes 0.2-0.5
// s to start (the account's login shell; more on a busy server); with
// two started ahead the third and fourth phase waited 0.2 and 0.5 s.
const spareTars = 4

// stagePrepTimeout bounds the making of the staging directory, which
// waits for the account's shell: a forced command that never answers
// must not hold up the copy (the files then go the usual way).
const stagePrepTimeout = 30 * time.Second

// tarSession is tar -x running in the staging directory, reading stdin
// (gzip-compressed where gz is set).
type tarSession struct {
	sess   *ssh.Session
	in     io.WriteCloser
	w      *bufio.Writer
	gz     *gzip.Writer // between tw and w where the stream is compressed
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
	st.wmu.Lock()
	defer st.wmu.Unlock()
	t := st.cur.Load()
	if t == nil {
		var err error
		if t, err = f.takeTar(ctx); err != nil {
			return err
		}
		st.cur.Store(t)
	}
	name, err := t.add(&st.n, data, manifest.PermOf(rel(tmp)))
	if err != nil {
		return fmt.Errorf("write %s at %s through tar: %w", tmp, f.s, err)
	}
	st.mu.Lock()
	st.staged[tmp] = name
	st.mu.Unlock()
	return nil
}

// takeTar returns a tar session of its own to the caller (one started
// ahead; another is started), the staging directory made first if no one
// has started that yet (startStaging). Where the staging directory or
// the run's first tar session cannot be made, it returns errNoFileWriter,
// and does so for the rest of the run.
func (f *sftpFS) takeTar(ctx context.Context) (*tarSession, error) {
	st := &f.stage
	st.mu.Lock()
	if st.state == syncUnavailable || st.closing {
		st.mu.Unlock()
		return nil, errNoFileWriter
	}
	prep := f.startStagingLocked()
	st.mu.Unlock()
	select {
	case <-prep:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st.mu.Lock()
	unavailable := st.state == syncUnavailable
	st.mu.Unlock()
	if unavailable {
		return nil, errNoFileWriter
	}
	var t tarSession
	var ok bool
	select {
	case t, ok = <-st.spare:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !ok {
		return nil, errNoFileWriter // closed (closeStage)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f.startSpare()
	if t.err != nil {
		if st.state == syncUnknown {
			f.giveUpStaging()
			return nil, errNoFileWriter
		}
		return nil, fmt.Errorf("%s: %w", f.s, t.err)
	}
	if st.closing {
		_ = t.sess.Close()
		return nil, errNoFileWriter
	}
	st.state = syncWorks
	if t.gz != nil {
		st.gzipped.Add(1)
	}
	return &t, nil
}

// startStaging has the staging directory made afresh (what a killed run
// left in it goes) and spareTars sessions started, in the background,
// once per run: the mover calls it (through Expand) when it knows files
// are to be written, so that the shell's round trip and the sessions'
// login shells pass while it makes directories, not before the first
// file is written.
func (f *sftpFS) startStaging() {
	f.stage.mu.Lock()
	defer f.stage.mu.Unlock()
	f.startStagingLocked()
}

// startStagingLocked is startStaging for callers holding stage.mu; it
// returns the channel closed when the preparation is done.
func (f *sftpFS) startStagingLocked() chan struct{} {
	st := &f.stage
	if st.prep != nil {
		return st.prep
	}
	st.prep = make(chan struct{})
	st.ctx, st.cancel = context.WithCancel(context.Background())
	if st.state == syncUnavailable || st.closing {
		close(st.prep)
		return st.prep
	}
	st.staged = map[string]string{}
	st.spare = make(chan tarSession, spareTars)
	go func() {
		ctx, cancel := context.WithTimeout(st.ctx, stagePrepTimeout)
		f.dialTarConnAhead()
		err := f.makeStage(ctx)
		select {
		case <-st.connDone:
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
		}
		cancel()
		st.mu.Lock()
		defer st.mu.Unlock()
		defer close(st.prep)
		if err != nil {
			f.giveUpStaging()
			return
		}
		for range spareTars {
			f.startSpare()
		}
	}()
	return st.prep
}

// dialTarConnAhead starts dialTarConn in the background, once: when SFTP
// alone is dialled (no helper asked for), so that the connection's
// handshake passes while the source is read, not when the first tar
// session waits for it (0.35 s at 50 ms). closeStage ends it.
func (f *sftpFS) dialTarConnAhead() {
	st := &f.stage
	st.connOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stagePrepTimeout)
		st.connStop = cancel
		st.connDone = make(chan struct{})
		go func() {
			defer close(st.connDone)
			st.conn = f.dialTarConn(ctx)
		}()
	})
}

// dialTarConn opens the SSH connection that the tar sessions go over, or
// returns nil if it cannot (they then go over the first). A connection of
// their own: an sshd allows MaxSessions sessions a connection (10 unless
// configured), and the first already holds up to 8 SFTP sessions and the
// shell, where the tar sessions - spareTars ahead, the current one and
// the one being finished - would not fit. It is one of the SFTP's
// connections (closed with them, watched for a stalled link) without
// SFTP sessions.
func (f *sftpFS) dialTarConn(ctx context.Context) *sshx.Client {
	cl, err := sshx.Dial(ctx, f.s.cfg)
	if err != nil {
		return nil
	}
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	if f.s.closed {
		_ = cl.Close()
		return nil
	}
	f.s.open = append(f.s.open, &sftpConn{ssh: cl})
	return cl
}

// makeStage makes the staging directory afresh through the shell.
func (f *sftpFS) makeStage(ctx context.Context) error {
	dir := sshx.Quote(f.s.path(stageName))
	f.shellMu.Lock()
	defer f.shellMu.Unlock()
	// Under shellMu: SyncFS's first run, which also removes what a killed
	// run left staged, comes before this command or not at all.
	f.stage.clean.Store(true)
	return f.shellRun(ctx, "rm -rf -- "+dir+" && mkdir -m 700 -- "+dir, nil)
}

// giveUpStaging marks staging unavailable for the run and removes the
// staging directory if it was made. Callers hold stage.mu.
func (f *sftpFS) giveUpStaging() {
	f.stage.state = syncUnavailable
	_ = f.s.client().RemoveDirectory(f.s.path(stageName)) // if made
}

// startSpare starts a tar session into stage.spare in the background,
// unless the stage is closing. Callers hold stage.mu.
func (f *sftpFS) startSpare() {
	st := &f.stage
	if st.closing || st.state == syncUnavailable {
		return
	}
	st.starting.Add(1)
	go func() {
		defer st.starting.Done()
		st.spare <- f.startTar(st.ctx)
	}()
}

// startTar starts tar -x in the staging directory on the tar sessions'
// connection and waits until it runs (or ctx ends). Where compression is
// on (SetCompress) and the server has gzip, tar reads a gzip stream
// (tar -z: tar's exit status covers gzip's): its 512-byte header per file
// takes a few bytes, 10% of a 4 KiB file's share of the link.
func (f *sftpFS) startTar(ctx context.Context) tarSession {
	cl := f.stage.conn // set before any session is started (connDone)
	if cl == nil {
		f.s.mu.Lock()
		if len(f.s.open) == 0 {
			f.s.mu.Unlock()
			return tarSession{err: errors.New("closed")}
		}
		cl = f.s.open[0].ssh
		f.s.mu.Unlock()
	}
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
		err = sess.Start(f.tarCommand(stage, t.afterPath))
	}
	if err != nil {
		_ = sess.Close()
		return tarSession{err: fmt.Errorf("start tar: %w", err)}
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); l == tarReady || l == tarReadyGz {
				ready <- l
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- ""
	}()
	timeout := time.NewTimer(helperTimeout)
	defer timeout.Stop()
	select {
	case l := <-ready:
		if l != "" {
			t.w = bufio.NewWriterSize(t.in, 256<<10)
			if l == tarReadyGz {
				t.gz, _ = gzip.NewWriterLevel(t.w, gzip.BestSpeed) // a valid level: no error
				t.tw = tar.NewWriter(t.gz)
			} else {
				t.tw = tar.NewWriter(t.w)
			}
			return t
		}
	case <-timeout.C:
	case <-ctx.Done():
		_ = sess.Close()
		return tarSession{err: ctx.Err()}
	}
	_ = sess.Close()
	return tarSession{err: fmt.Errorf("tar did not start in %s: %s", f.s.path(stageName), t.stderr.String())}
}

// tarCommand is what a tar session runs: it says it is ready (and
// whether it takes a gzip stream), extracts the stream into stage, then
// runs the script at after if the stream held one (script), in the login
// directory, as the shell's commands do.
func (f *sftpFS) tarCommand(stage, after string) string {
	// -m: the time of the write, as any other write; -o: never the
	// archive's owner; -p: the archive's mode, not less the umask.
	x := f.tarCmd + " -C " + sshx.Quote(stage) + " -x -m -o -p -f -"
	then := ` && sh -c '[ ! -f "$1" ] || . "$1"' sh ` + sshx.Quote(after)
	plain := "echo " + tarReady + " && " + x + then
	cmd := "command -v " + f.tarCmd + " >/dev/null && "
	if f.s.viaHelper.raw.Load() || f.gzipCmd == "" {
		return cmd + "{ " + plain + "; }"
	}
	return cmd + "if command -v " + f.gzipCmd + " >/dev/null; then echo " + tarReadyGz + " && " + x + " -z" + then +
		"; else " + plain + "; fi"
}

// add puts data into t's stream under the next name of the staging
// directory (n counts them) with mode perm, and returns that name.
func (t *tarSession) add(n *atomic.Uint64, data []byte, perm fs.FileMode) (string, error) {
	name := strconv.FormatUint(n.Add(1), 10)
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

const (
	tarReady   = "bcp-tar-ready"
	tarReadyGz = "bcp-tar-ready-gz" // the stream is to be gzip-compressed
)

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
	if err == nil && t.gz != nil {
		err = t.gz.Close()
	}
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
	st.wmu.Lock()
	t := st.cur.Swap(nil)
	st.wmu.Unlock()
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
// not renamed: the next run removes it), once the ones being started
// gave up, and removes the staging directory if it is empty.
func (f *sftpFS) closeStage() {
	st := &f.stage
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closing {
		return // closed before
	}
	st.closing = true
	st.connOnce.Do(func() {}) // no dial from now on
	if st.connStop != nil {
		st.connStop()
		st.mu.Unlock()
		<-st.connDone // (the connection, if made, is closed with the others)
		st.mu.Lock()
	}
	if t := st.cur.Swap(nil); t != nil {
		_ = t.sess.Close() // a write waiting for the channel fails
	}
	if st.prep == nil {
		return
	}
	st.cancel()
	st.mu.Unlock()
	<-st.prep // a preparation ends at once once cancelled
	st.starting.Wait()
	st.mu.Lock()
	if st.spare != nil {
		close(st.spare) // nothing is started any more
		for t := range st.spare {
			if t.sess != nil {
				_ = t.in.Close() // tar reads an empty stream and exits
				_ = remote.EndSession(t.sess)
			}
		}
	}
	if st.state == syncUnavailable {
		return
	}
	st.state = syncUnavailable
	if len(st.staged) == 0 {
		_ = f.s.client().RemoveDirectory(f.s.path(stageName))
	}
}
