package remote

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/squirro-bcp/bcp/internal/sshx"
)

// Client drives one helper over one SSH session. It is safe for
// concurrent use: requests are pipelined and answered out of order.
type Client struct {
	sess    *ssh.Session
	in      io.WriteCloser
	wmu     sync.Mutex // guards bw and hdr
	bw      *bufio.Writer
	hdr     []byte
	waiting atomic.Int32 // senders waiting for wmu; the last one flushes
	next    atomic.Uint32
	mu      sync.Mutex // guards calls and err
	calls   map[uint32]chan result
	err     error         // why the helper is gone; nil while it runs
	gone    chan struct{} // closed when err is set
	stderr  *sshx.Tail
	puts    *batcher
	renames *batcher
	stamped *batcher      // renames answered with what each renamed file shows
	ops     map[byte]bool // optional requests the helper announced (opsLine)
	// Compression of the stream (zstd.go): off by SetCompress, a gate per
	// kind of request, and the bytes before and after.
	zoff        atomic.Bool
	gates       map[byte]*gate
	zraw, zsent atomic.Int64
}

type result struct {
	body []byte
	err  error
}

// Error is an error the helper reported. It unwraps to the errno the
// helper saw, so errors.Is(err, fs.ErrNotExist) and fs.ErrPermission work
// as they do for local files.
type Error struct {
	Msg   string
	Errno syscall.Errno
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ErrUnavailable is returned (wrapped) by Start when the command did not
// greet as a helper of this protocol version: not installed, a different
// version, or an account that may not run commands.
var ErrUnavailable = errors.New("no transfer helper on the server")

// Start runs command (e.g. "transfer serve '/srv/bcp'") in a new session on
// cl and waits, at most until ctx ends, for the helper's greeting.
func Start(ctx context.Context, cl *ssh.Client, command string) (*Client, error) {
	sess, err := cl.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session: %w", err)
	}
	stderr := &sshx.Tail{}
	sess.Stderr = stderr
	out, err := sess.StdoutPipe()
	var in io.WriteCloser
	if err == nil {
		in, err = sess.StdinPipe()
	}
	if err == nil {
		err = sess.Start(command)
	}
	if err == nil {
		var c *Client
		c, err = connect(ctx, in, out, stderr)
		if err == nil {
			c.sess = sess
			return c, nil
		}
	}
	_ = sess.Close()
	return nil, fmt.Errorf("%q: %w", command, err)
}

// connect waits for the greeting on out and starts reading replies.
func connect(ctx context.Context, in io.WriteCloser, out io.Reader, stderr *sshx.Tail) (*Client, error) {
	c := &Client{in: in, calls: map[uint32]chan result{}, stderr: stderr, gone: make(chan struct{}),
		gates: map[byte]*gate{opPutMany: {}, opWrite: {}, opPublish: {}, opRenameMany: {}, opRenameStat: {}, opPublishSteps: {}, opPublishList: {}}}
	c.bw = bufio.NewWriterSize(in, 256<<10)
	br := bufio.NewReaderSize(out, 1<<20)
	greeted := make(chan error, 1)
	go func() {
		var err error
		c.ops, err = awaitHello(br)
		greeted <- err
	}()
	var err error
	select {
	case err = <-greeted:
	case <-ctx.Done():
		err = fmt.Errorf("no greeting: %w", ctx.Err())
	}
	if err != nil {
		if msg := stderr.String(); msg != "" {
			err = fmt.Errorf("%w; it said: %s", err, msg)
		}
		return nil, fmt.Errorf("%w: %w", err, ErrUnavailable)
	}
	go c.readReplies(br)
	c.puts, c.renames, c.stamped = newBatcher(c, opPutMany), newBatcher(c, opRenameMany), newBatcher(c, opRenameStat)
	return c, nil
}

// awaitHello skips what the login shell prints and returns when the
// greeting arrives, with the optional requests announced just before it
// (opsLine; none from a helper that announces none).
func awaitHello(br *bufio.Reader) (map[byte]bool, error) {
	var seen int
	ops := map[byte]bool{}
	for seen < 64<<10 {
		line, err := br.ReadString('\n')
		seen += len(line)
		line = strings.TrimRight(line, "\r\n")
		if line == Hello {
			return ops, nil
		}
		if strings.HasPrefix(line, "bcp-transfer-serve ") {
			return nil, fmt.Errorf("the helper speaks %q, this program %q: install the same version of transfer on both ends", line, Hello)
		}
		ops = map[byte]bool{}
		if rest, ok := strings.CutPrefix(line, opsLine+" "); ok {
			for _, f := range strings.Fields(rest) {
				if n, err := strconv.ParseUint(f, 10, 8); err == nil {
					ops[byte(n)] = true
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("the command ended without a greeting (%v)", err)
		}
	}
	return nil, errors.New("no greeting in the first 64 KiB of output")
}

// announce is the list of ops as opsLine gives it.
func announce(ops []byte) string {
	var b strings.Builder
	for _, op := range ops {
		fmt.Fprintf(&b, " %d", op)
	}
	return b.String()
}

// ErrNotOffered is returned (wrapped) by a request that the helper did not
// announce (an older version): the caller does the same with the requests
// every helper carries out.
var ErrNotOffered = errors.New("request not offered by this transfer helper (an older version)")

// Published is a file for Publish: its data, written as Tmp, then renamed
// to Name.
type Published struct {
	Tmp, Name string
	Data      []byte
}

// Publish has the helper write each file under its temporary name with
// fsync, rename each over its final name and fsync the directories
// holding them: one round trip for what a phase of a few small files
// (the manifest, the signature) needs. A helper that did not announce it
// returns ErrNotOffered.
func (c *Client) Publish(ctx context.Context, files []Published) error {
	if !c.ops[opPublish] {
		return ErrNotOffered
	}
	if len(files) > 1<<16-1 {
		return fmt.Errorf("publish %d files at once: %w", len(files), errProtocol)
	}
	_, err := c.call(ctx, opPublish, 0, appendPublished(nil, files)...)
	return err
}

// appendPublished appends files as opPublish's payload has them.
func appendPublished(parts [][]byte, files []Published) [][]byte {
	parts = append(parts, binary.BigEndian.AppendUint16(nil, uint16(len(files))))
	for _, p := range files {
		b := appendString(appendString(nil, p.Tmp), p.Name)
		parts = append(parts, binary.BigEndian.AppendUint32(b, uint32(len(p.Data))), p.Data)
	}
	return parts
}

// PublishSteps has the helper make what was written to the file systems
// holding sync durable (as SyncFS), then publish each step's files as
// Publish does - the directories holding them made first - each step
// only once the one before is durable: one round trip for the end of a
// copy (its last renames made durable, then the phases of a few small
// files: indexes, the manifest, its signature). A failure stops the steps
// after it. A helper that did not announce it returns ErrNotOffered.
//
// Once the steps are done, it lists the directories of list in the same
// request where the helper can (opPublishList): their listings, in list's
// order; none (nil) where it cannot, and the caller lists them itself.
func (c *Client) PublishSteps(ctx context.Context, sync []string, steps [][]Published, list []string) ([]DirList, error) {
	if !c.ops[opPublishSteps] {
		return nil, ErrNotOffered
	}
	if len(sync) > 1<<16-1 || len(steps) > 1<<16-1 || len(list) > 1<<16-1 {
		return nil, fmt.Errorf("publish %d steps after syncing %d directories, then list %d: %w", len(steps), len(sync), len(list), errProtocol)
	}
	parts := [][]byte{encodeNames(sync), binary.BigEndian.AppendUint16(nil, uint16(len(steps)))}
	for _, files := range steps {
		if len(files) > 1<<16-1 {
			return nil, fmt.Errorf("publish %d files at once: %w", len(files), errProtocol)
		}
		parts = appendPublished(parts, files)
	}
	op := byte(opPublishSteps)
	if len(list) > 0 && c.ops[opPublishList] {
		op = opPublishList
		parts = append(parts, encodeNames(list))
	}
	body, err := c.call(ctx, op, 0, parts...)
	if err != nil || op == opPublishSteps {
		return nil, err
	}
	return decodeDirLists(body, len(list))
}

// DirList is a directory's listing, or why the helper could not list it.
type DirList struct {
	Entries []Entry
	Err     error
}

// ListMany has the helper list each of dirs (as List) and returns the
// listings in the order of dirs, one round trip for all; the helper lists
// them one after the other. A helper that did not announce it returns
// ErrNotOffered.
func (c *Client) ListMany(ctx context.Context, dirs []string) ([]DirList, error) {
	if !c.ops[opListMany] {
		return nil, ErrNotOffered
	}
	if len(dirs) > 1<<16-1 {
		return nil, fmt.Errorf("list %d directories at once: %w", len(dirs), errProtocol)
	}
	body, err := c.call(ctx, opListMany, 0, encodeNames(dirs))
	if err != nil {
		return nil, err
	}
	return decodeDirLists(body, len(dirs))
}

// decodeDirLists reads n directories' results and listings, as
// opListMany's reply carries them.
func decodeDirLists(body []byte, n int) ([]DirList, error) {
	d := decoder{b: body}
	out := make([]DirList, n)
	for i := range out {
		if out[i].Err = d.result(); d.err != nil {
			break
		}
		if out[i].Err == nil {
			out[i].Entries, d.err = decodeList(&d)
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("list many: %w", d.err)
	}
	return out, nil
}

func (c *Client) readReplies(br *bufio.Reader) {
	var hdr [9]byte
	var err error
	for {
		var f frame
		f, err = readFrame(br, &hdr, nil)
		if err != nil {
			break
		}
		if f.op != opReply {
			err = fmt.Errorf("unexpected frame %d: %w", f.op, errProtocol)
			break
		}
		c.mu.Lock()
		ch := c.calls[f.id]
		delete(c.calls, f.id)
		c.mu.Unlock()
		if ch != nil {
			ch <- decodeReply(f.payload)
		}
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("the helper exited")
	}
	if msg := c.stderr.String(); msg != "" {
		err = fmt.Errorf("%w; it said: %s", err, msg)
	}
	c.fail(fmt.Errorf("transfer helper: %w", err))
}

// fail ends every waiting call with err; later calls fail at once.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.gone)
	}
	calls := c.calls
	c.calls = map[uint32]chan result{}
	c.mu.Unlock()
	for _, ch := range calls {
		ch <- result{err: err}
	}
}

func (c *Client) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func decodeReply(p []byte) result {
	d := decoder{b: p}
	if err := d.result(); err != nil {
		return result{err: err}
	}
	return result{body: d.b}
}

// result reads a status byte and, for statusErr, the error.
func (d *decoder) result() error {
	switch d.u8() {
	case statusOK:
		return d.err
	case statusErr:
		errno := d.u32()
		msg := d.str()
		if d.err != nil {
			return d.err
		}
		return &Error{Msg: msg, Errno: syscall.Errno(errno)}
	}
	if d.err != nil {
		return d.err
	}
	return fmt.Errorf("bad reply status: %w", errProtocol)
}

// directPayload is the size from which send writes a payload to the
// channel directly; sshPacket is the data one SSH packet carries to sshd
// (OpenSSH's session channels accept at most 32 KiB per packet).
const (
	directPayload = 64 << 10
	sshPacket     = 32 << 10
)

// send writes one frame, compressed where that gains (squeeze). Frames
// from concurrent callers never interleave; the buffer is flushed when no
// other sender is waiting.
func (c *Client) send(op byte, id uint32, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if sq, sp := c.squeeze(op, n, parts); sq != op { // opZstd, opPutSplit
		op, parts, n = sq, sp, 0
		for _, p := range parts {
			n += len(p)
		}
	}
	c.waiting.Add(1)
	c.wmu.Lock()
	c.waiting.Add(-1)
	defer c.wmu.Unlock()
	c.hdr = appendHeader(c.hdr[:0], op, id, n)
	_, err := c.bw.Write(c.hdr)
	for _, p := range parts {
		if err != nil {
			break
		}
		if len(p) < directPayload {
			_, err = c.bw.Write(p)
			continue
		}
		// A large payload (a stream's chunk) goes to the channel as it
		// is, after only enough of it to fill the buffer up to a whole
		// SSH packet: not copied into the buffer first.
		k := min(len(p), (sshPacket-c.bw.Buffered()%sshPacket)%sshPacket)
		if _, err = c.bw.Write(p[:k]); err == nil {
			err = c.bw.Flush()
		}
		if err == nil {
			_, err = c.in.Write(p[k:])
		}
	}
	if err == nil && c.waiting.Load() == 0 {
		err = c.bw.Flush()
	}
	if err != nil {
		c.mu.Lock()
		gone := c.err
		c.mu.Unlock()
		if gone != nil {
			return gone
		}
		return fmt.Errorf("transfer helper: send: %w", err)
	}
	return nil
}

// call sends a request and waits for its reply.
func (c *Client) call(ctx context.Context, op byte, id uint32, parts ...[]byte) ([]byte, error) {
	if id == 0 {
		id = c.next.Add(1)
	}
	ch := make(chan result, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.calls[id] = ch
	c.mu.Unlock()
	if err := c.send(op, id, parts...); err != nil {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		return nil, err
	}
	select {
	case r := <-ch:
		return r.body, r.err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (c *Client) callName(ctx context.Context, op byte, name string) error {
	_, err := c.call(ctx, op, 0, appendString(nil, name))
	return err
}

// Put creates name (or truncates it), writes data, fsyncs it if asked and
// closes it: one round trip.
// Puts from concurrent callers travel together (see batcher).
func (c *Client) Put(ctx context.Context, name string, data []byte, fsync bool) error {
	return c.puts.do(ctx, encodePut(name, data, fsync, 0))
}

// PutLater is Put without fsync that does not wait for the result: it
// returns once the put is queued (data may be reused then), and l.Wait
// reports it. A helper that can keeps the file in mind for l.RenameKept
// where l.Keep was called.
func (c *Client) PutLater(ctx context.Context, name string, data []byte, l *Later) error {
	tag := l.keepTag(c)
	if err := c.puts.post(ctx, encodePut(name, data, false, tag), l, "write "+name); err != nil {
		return err
	}
	if tag != 0 {
		l.keptBy(c, name)
	}
	return nil
}

// encodePut encodes a file of opPutMany, kept under tag unless it is 0.
func encodePut(name string, data []byte, fsync bool, tag uint32) []byte {
	var flags byte
	if fsync {
		flags = flagFsync
	}
	if tag != 0 {
		flags |= flagKeep
	}
	enc := append(make([]byte, 0, 1+4+2+len(name)+4+len(data)), flags)
	if tag != 0 {
		enc = binary.BigEndian.AppendUint32(enc, tag)
	}
	enc = appendString(enc, name)
	enc = binary.BigEndian.AppendUint32(enc, uint32(len(data)))
	return append(enc, data...)
}

// Rename renames from to to, replacing to atomically.
// Renames from concurrent callers travel together (see batcher).
func (c *Client) Rename(ctx context.Context, from, to string) error {
	return c.renames.do(ctx, appendString(appendString(nil, from), to))
}

// RenameLater is Rename that does not wait for the result: l.Wait
// reports it.
func (c *Client) RenameLater(ctx context.Context, from, to string, l *Later) error {
	return c.renames.post(ctx, appendString(appendString(nil, from), to), l, "rename "+from)
}

// RenameStampLater is RenameLater that also has the helper say what the
// renamed file shows then (size and modification time, as a listing has
// them): stamp is called with it once the rename is answered, before
// l.Wait returns, unless the helper could not stat it. A helper that did
// not announce it returns ErrNotOffered.
func (c *Client) RenameStampLater(ctx context.Context, from, to string, l *Later, stamp func(Entry)) error {
	if !c.ops[opRenameStat] {
		return ErrNotOffered
	}
	return c.stamped.postItem(ctx, &item{enc: appendString(appendString(nil, from), to), later: l, what: "rename " + from, stamp: stamp})
}

// Later collects requests sent without waiting for each one's result
// (PutLater, RenameLater), over one client or several: the caller goes on
// at once - no goroutine waits per file - and Wait reports them all. The
// mover sends a batch of small files this way and waits once per batch.
type Later struct {
	mu      sync.Mutex
	n       int           // requests not answered yet
	zero    chan struct{} // closed while n is 0
	err     error         // the first failure
	clients []*Client
	tag     uint32               // Keep: the files put with l kept in mind under it; 0 not
	kept    map[*Client][]string // the temporary names each helper keeps (PutLater)
}

// tags numbers the Laters that keep their files (Keep); 0 is none.
var tags atomic.Uint32

// Keep has the files put with l (PutLater) kept in mind by the helpers
// that can (announced opRenameKept), so that RenameKept renames them
// without sending their names again: for a batch of files named by their
// SHA-256 sums, 36 bytes a file on the link. Call it before the first
// PutLater.
func (l *Later) Keep() {
	l.mu.Lock()
	l.tag = tags.Add(1)
	l.mu.Unlock()
}

// keepTag is the tag a put through c is kept under; 0: not kept.
func (l *Later) keepTag(c *Client) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.ops[opRenameKept] {
		return 0
	}
	return l.tag
}

// keptBy records that c keeps tmp.
func (l *Later) keptBy(c *Client, tmp string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kept == nil {
		l.kept = map[*Client][]string{}
	}
	l.kept[c] = append(l.kept[c], tmp)
}

// Kept is how many files put with l the helpers keep for RenameKept.
func (l *Later) Kept() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, names := range l.kept {
		n += len(names)
	}
	return n
}

// RenameKept has each helper that keeps files put with l (Keep) sync the
// file systems of dirs, then rename each of them over the name it has
// without prefix at the start of its last element, one request per
// helper: a batch's writes answered (Wait), made durable, then renamed -
// the order of copySet's batches - with no file's name sent again. stamp
// gets, from the helpers' goroutines, each renamed file's temporary name
// and what the file shows then (ok false: the helper could not say). It
// returns the first failure; the helpers' names are forgotten either way.
// Files put with l that no helper keeps (an older helper) are left to
// the caller to rename by name.
func (l *Later) RenameKept(ctx context.Context, dirs []string, prefix string, stamp func(tmp string, e Entry, ok bool)) error {
	l.mu.Lock()
	kept, tag := l.kept, l.tag
	l.kept = nil
	l.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(kept))
	for c, tmps := range kept {
		wg.Go(func() { errs <- c.renameKept(ctx, tag, tmps, prefix, dirs, stamp) })
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		first = cmp.Or(first, err)
	}
	return first
}

// renameKept sends one opRenameKept for the files c keeps under tag
// (tmps, in the order they were put) and reads its reply.
func (c *Client) renameKept(ctx context.Context, tag uint32, tmps []string, prefix string, dirs []string, stamp func(string, Entry, bool)) error {
	req := binary.BigEndian.AppendUint32(nil, tag)
	req = binary.BigEndian.AppendUint32(req, uint32(len(tmps)))
	req = appendString(req, prefix)
	req = append(req, encodeNames(dirs)...)
	body, err := c.call(ctx, opRenameKept, 0, req)
	if err != nil {
		return err
	}
	tmps = slices.Clone(tmps)
	slices.Sort(tmps) // the helper renames them in this order
	d := decoder{b: body}
	var first error
	for _, tmp := range tmps {
		if err := d.result(); err != nil {
			if d.err != nil {
				break
			}
			first = cmp.Or(first, fmt.Errorf("rename %s: %w", tmp, err))
			continue
		}
		var e Entry
		ok := false
		d.stamp(func(s Entry) { e, ok = s, true })
		if d.err != nil {
			break
		}
		stamp(tmp, e, ok)
	}
	if d.err != nil {
		return fmt.Errorf("rename a batch of %d files: %w", len(tmps), d.err)
	}
	return first
}

// NewLater returns an empty Later.
func NewLater() *Later {
	z := make(chan struct{})
	close(z)
	return &Later{zero: z}
}

func (l *Later) add(c *Client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == 0 {
		l.zero = make(chan struct{})
	}
	l.n++
	if !slices.Contains(l.clients, c) {
		l.clients = append(l.clients, c)
	}
}

func (l *Later) done(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil && l.err == nil {
		l.err = err
	}
	if l.n--; l.n == 0 {
		close(l.zero)
	}
}

// Wait returns when every request sent with l so far has been answered,
// with the first failure among them; or when one of their helpers is gone
// (what it had not answered may or may not have been done), or ctx ends.
func (l *Later) Wait(ctx context.Context) error {
	l.mu.Lock()
	zero, clients := l.zero, slices.Clone(l.clients)
	l.mu.Unlock()
	stop := make(chan struct{})
	defer close(stop)
	gone := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			select {
			case <-c.gone:
				gone <- c.failure()
			case <-stop:
			}
		}()
	}
	select {
	case <-zero:
	case err := <-gone:
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.n == 0 {
			return l.err // all answered before the helper went
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// batcher sends the items that concurrent callers submit in few requests:
// while maxInFlight requests are outstanding, new items wait and then go
// together (up to maxBatchItems or maxBatchBytes). 100k small files are
// then a few thousand frames and replies each way instead of 200k, which
// is what sshd spends its time on. (Requests of 1 MiB, 8 in flight, so
// that less is left to write after a batch's last byte: no clear gain over
// a far link, bench/wan.md.)
type batcher struct {
	c     *Client
	op    byte
	queue chan *item
	slots chan struct{} // requests in flight
}

type item struct {
	enc   []byte
	done  chan error // nil: later says it
	later *Later
	what  string      // names the request in later's error
	stamp func(Entry) // opRenameStat: what the renamed file shows
}

const (
	maxInFlight   = 4
	maxBatchItems = 512
	maxBatchBytes = 4 << 20
)

func newBatcher(c *Client, op byte) *batcher {
	b := &batcher{c: c, op: op, queue: make(chan *item, maxBatchItems), slots: make(chan struct{}, maxInFlight)}
	go b.run()
	return b
}

func (b *batcher) do(ctx context.Context, enc []byte) error {
	it := &item{enc: enc, done: make(chan error, 1)}
	select {
	case b.queue <- it:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.c.gone:
		return b.c.failure()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the request may still be carried out
	case <-b.c.gone:
		return b.c.failure() // it may have been carried out; the reply is lost
	}
}

// post queues enc without waiting for its result, which l gets.
func (b *batcher) post(ctx context.Context, enc []byte, l *Later, what string) error {
	return b.postItem(ctx, &item{enc: enc, later: l, what: what})
}

// postItem queues it without waiting for its result, which it.later gets.
func (b *batcher) postItem(ctx context.Context, it *item) error {
	l := it.later
	l.add(b.c)
	select {
	case b.queue <- it:
		return nil
	case <-ctx.Done():
		l.done(nil)
		return ctx.Err()
	case <-b.c.gone:
		l.done(nil)
		return b.c.failure()
	}
}

func (b *batcher) run() {
	for {
		var first *item
		select {
		case first = <-b.queue:
		case <-b.c.gone:
			return
		}
		b.slots <- struct{}{}
		items, size := []*item{first}, len(first.enc)
	more:
		for len(items) < maxBatchItems && size < maxBatchBytes {
			select {
			case it := <-b.queue:
				items = append(items, it)
				size += len(it.enc)
			default:
				break more
			}
		}
		go func() {
			defer func() { <-b.slots }()
			parts := make([][]byte, 0, 1+len(items))
			parts = append(parts, binary.BigEndian.AppendUint16(nil, uint16(len(items))))
			for _, it := range items {
				parts = append(parts, it.enc)
			}
			body, err := b.c.call(context.Background(), b.op, 0, parts...)
			d := decoder{b: body}
			for _, it := range items {
				res := err
				if err == nil {
					res = d.result()
				}
				if res == nil && b.op == opRenameStat {
					d.stamp(it.stamp)
					res = d.err
				}
				if it.later == nil {
					it.done <- res
					continue
				}
				if res != nil {
					res = fmt.Errorf("%s: %w", it.what, res)
				}
				it.later.done(res)
			}
		}()
	}
}

// stamp reads what an opRenameStat reply says the renamed file shows and
// passes it to fn (not if the helper could not stat it).
func (d *decoder) stamp(fn func(Entry)) {
	if d.result() != nil || d.err != nil {
		return
	}
	e := Entry{Size: int64(d.u64())}
	e.ModTime = time.Unix(0, int64(d.u64()))
	if d.err == nil && fn != nil {
		fn(e)
	}
}

// Remove removes a file or an empty directory.
func (c *Client) Remove(ctx context.Context, name string) error {
	return c.callName(ctx, opRemove, name)
}

// MkdirAll creates dir and its parents (and the root if it is missing).
func (c *Client) MkdirAll(ctx context.Context, dir string) error {
	return c.callName(ctx, opMkdirAll, dir)
}

// SyncFS makes everything written to the file systems holding dirs durable
// (syncfs(2) once per file system).
func (c *Client) SyncFS(ctx context.Context, dirs []string) error {
	_, err := c.call(ctx, opSyncFS, 0, encodeNames(dirs))
	return err
}

// encodeNames is a request's list of names: count u16, then each name.
func encodeNames(names []string) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(names)))
	for _, n := range names {
		b = appendString(b, n)
	}
	return b
}

// List lists dir with each entry's size and modification time (fstatat on
// the server: one request per directory).
func (c *Client) List(ctx context.Context, dir string) ([]Entry, error) {
	body, err := c.call(ctx, opList, 0, appendString(nil, dir))
	if err != nil {
		return nil, err
	}
	out, err := decodeList(&decoder{b: body})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return out, nil
}

// decodeList reads a listing (encodeList) from d.
func decodeList(d *decoder) ([]Entry, error) {
	n := d.u32()
	if d.err != nil || uint64(n) > uint64(len(d.b)) {
		return nil, errProtocol
	}
	out := make([]Entry, 0, n)
	for range n {
		e := Entry{Name: d.str(), Size: int64(d.u64())}
		e.ModTime = time.Unix(0, int64(d.u64()))
		e.Dir = d.u8() == 1
		if d.err != nil {
			return nil, d.err
		}
		out = append(out, e)
	}
	return out, nil
}

// DirDigest is a directory's entry count and Digest, or why the helper
// could not list it.
type DirDigest struct {
	Entries int
	Sum     [32]byte
	Err     error
}

// Digests has the helper list each of dirs and returns their digests, in
// the order of dirs. The helper does them one after the other; a caller
// that wants them done in parallel splits dirs over several calls.
func (c *Client) Digests(ctx context.Context, dirs []string) ([]DirDigest, error) {
	body, err := c.call(ctx, opDigest, 0, encodeNames(dirs))
	if err != nil {
		return nil, err
	}
	d := decoder{b: body}
	out := make([]DirDigest, len(dirs))
	for i := range out {
		if out[i].Err = d.result(); d.err != nil {
			break
		}
		if out[i].Err == nil {
			out[i].Entries = int(d.u32())
			copy(out[i].Sum[:], d.take(32))
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("digests: %w", d.err)
	}
	return out, nil
}

// Close ends the helper (it exits when its input ends) and the session.
func (c *Client) Close() error {
	c.wmu.Lock()
	_ = c.bw.Flush() // requests not sent yet were not waited for: dropped
	c.wmu.Unlock()
	err := c.in.Close()
	c.fail(errors.New("transfer helper: closed"))
	if c.sess != nil {
		// The helper ends when it has carried out what it was sent (its
		// input ended).
		if cerr := EndSession(c.sess); cerr != nil {
			err = cerr
		}
	}
	return err
}

// closeWait is how long EndSession waits for a session to end.
const closeWait = 10 * time.Second

// EndSession waits a little (closeWait) for sess, whose input the caller
// closed, to end, then closes it: what its command was sent (a helper's
// requests, a shell's commands, a tar stream) is carried out before the
// run returns, and nothing it still writes outlives the run (a next run,
// or a test's cleanup, would find it writing beside them). A session
// that had ended is no error.
func EndSession(sess *ssh.Session) error {
	ended := make(chan struct{})
	go func() {
		_ = sess.Wait() // its exit status: what failed was answered already
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(closeWait):
	}
	if err := sess.Close(); !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// putLimit is the size up to which a file written through File is sent
// in one opPut when it is closed or synced.
const putLimit = 1 << 20

// File is a file being written through the helper. Up to putLimit bytes
// are kept and sent with one request when the file is synced or closed;
// a larger file is streamed as it is written.
type File struct {
	c      *Client
	name   string
	buf    bytes.Buffer
	handle uint32 // non-zero once streaming
	done   bool   // sent (put) or closed (stream)
}

// Create starts writing name (created or truncated).
func (c *Client) Create(name string) *File { return &File{c: c, name: name} }

func (f *File) Write(p []byte) (int, error) {
	if f.done {
		return 0, errors.New("write after close")
	}
	if f.handle == 0 && f.buf.Len()+len(p) <= putLimit {
		return f.buf.Write(p)
	}
	if f.handle == 0 {
		f.handle = f.c.next.Add(1)
		if err := f.c.send(opOpen, f.handle, appendString(nil, f.name)); err != nil {
			return 0, err
		}
		if err := f.stream(f.buf.Bytes()); err != nil {
			return 0, err
		}
		f.buf = bytes.Buffer{}
	}
	if err := f.stream(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (f *File) stream(p []byte) error {
	for len(p) > 0 {
		n := min(len(p), chunkSize)
		if err := f.c.send(opWrite, f.handle, p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Sync makes what was written durable: a small file is created, written
// and fsynced in one request now; a stream is fsynced.
func (f *File) Sync() error {
	if f.handle == 0 {
		if f.done {
			return nil
		}
		f.done = true
		return f.c.Put(context.Background(), f.name, f.buf.Bytes(), true)
	}
	_, err := f.c.call(context.Background(), opFsync, f.handle)
	return err
}

// Close writes a small file that was not synced (without fsync), or closes
// a stream; it reports any error the helper met writing the file.
func (f *File) Close() error {
	if f.done {
		return nil
	}
	f.done = true
	if f.handle == 0 {
		return f.c.Put(context.Background(), f.name, f.buf.Bytes(), false)
	}
	_, err := f.c.call(context.Background(), opClose, f.handle)
	return err
}
