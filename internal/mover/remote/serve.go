package remote

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/squirro-bcp/bcp/manifest"
)

// workers bounds the requests the helper carries out at once (creates,
// renames, listings and fsyncs block in the kernel; writes of a stream are
// done in order by the reading loop).
const workers = 64

// Serve prints Hello on out, then carries out the requests read from in
// below the directory root until in ends. The root need not exist yet:
// until opMkdirAll creates it, every request reports it missing.
func Serve(root string, in io.Reader, out io.Writer) error {
	return serve(root, in, out, optionalOps)
}

// serve is Serve announcing ops (a test plays an older helper with fewer).
func serve(root string, in io.Reader, out io.Writer, ops []byte) error {
	growPipe(in)
	growPipe(out)
	s := &server{rootPath: root, handles: map[uint32]*handle{}, dirs: map[string]*os.File{}, replies: make(chan []byte, 1024), sem: make(chan struct{}, workers)}
	bw := bufio.NewWriterSize(out, 256<<10)
	if _, err := fmt.Fprintf(bw, "%s%s\n%s\n", opsLine, announce(ops), Hello); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	writerDone := make(chan error, 1)
	go func() { writerDone <- s.write(bw) }()
	err := s.read(bufio.NewReaderSize(in, 1<<20))
	s.wg.Wait()
	s.mu.Lock()
	for _, h := range s.handles {
		h.stopWriter()
		if h.f != nil {
			_ = h.f.Close() // a write the client left unfinished: a temporary file, never renamed
		}
	}
	if s.root != nil {
		_ = s.root.Close()
	}
	for _, d := range s.dirs {
		_ = d.Close()
	}
	s.mu.Unlock()
	close(s.replies)
	werr := <-writerDone
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return errors.Join(err, werr)
}

type server struct {
	rootPath string
	mu       sync.Mutex // guards root, dirs and handles
	root     *os.Root
	dirs     map[string]*os.File // open directories below root (dirs_linux.go)
	handles  map[uint32]*handle
	wg       sync.WaitGroup
	sem      chan struct{}
	replies  chan []byte
	keptMu   sync.Mutex
	kept     map[uint32][]string // temporary names of files put with flagKeep, by tag (opRenameKept)
}

type handle struct {
	name    string
	f       *os.File
	err     error // first error of open or write; reported by fsync and close
	written int64 // bytes written
	flushed int64 // bytes handed to write-back (startWriteback)
	// direct: f writes around the page cache (O_DIRECT). The stream is
	// gathered in stage, a block-aligned buffer; a full one goes to the
	// stream's writer goroutine (queue), so that the reading loop and the
	// other streams go on while the device writes it; the tail goes
	// through the page cache when the stream ends (flush).
	direct     bool
	stage      []byte
	staged     int
	free       chan []byte   // empty stage buffers
	queue      chan []byte   // full ones, for the writer
	writerDone chan struct{} // closed when the writer has ended
	closeQ     sync.Once
	werr       error // the writer's first error; read after writerDone
}

// stageSize is the buffer of a stream written around the page cache (one
// write(2) each); stageBuffers of them per stream keep the device busy
// (48 MiB per large file in flight, 8 of them by default: ~400 MiB, only
// while large files stream). The size of each write decides the rate on
// this VM's disk: dd oflag=direct reached 123 MB/s with 4 MiB writes and
// 300-370 MB/s with 16 MiB ones; a push of 2 GiB of blobs took 8.5-10 s
// with 16 MiB buffers against 9.2-12 s with 4 MiB ones (alternating runs),
// with less of the helper's CPU.
const (
	stageSize    = 16 << 20
	stageBuffers = 3
)

// startDirectWriter sets up the buffers and the writer of a direct stream.
func (h *handle) startDirectWriter() {
	h.direct = true
	h.free = make(chan []byte, stageBuffers)
	h.queue = make(chan []byte, stageBuffers)
	h.writerDone = make(chan struct{})
	for range stageBuffers - 1 {
		h.free <- alignedBuffer(stageSize)
	}
	h.stage = alignedBuffer(stageSize)
	go func() {
		defer close(h.writerDone)
		for b := range h.queue {
			if h.werr == nil {
				n, err := h.f.Write(b)
				h.written += int64(n)
				h.werr = err
			}
			h.free <- b
		}
	}()
}

// stopWriter ends the writer once all queued buffers are written.
func (h *handle) stopWriter() {
	if h.queue != nil {
		h.closeQ.Do(func() { close(h.queue) })
		<-h.writerDone
	}
}

// flush writes what is left of a direct stream: the whole blocks directly,
// the rest (the file's last bytes) through the page cache.
func (h *handle) flush() error {
	if !h.direct {
		return nil
	}
	h.direct = false
	h.stopWriter()
	if h.werr != nil {
		return h.werr
	}
	whole := h.staged &^ (directAlign - 1)
	if err := h.writeStaged(0, whole); err != nil {
		return err
	}
	if err := endDirect(h.f); err != nil {
		return err
	}
	return h.writeStaged(whole, h.staged)
}

// writeStaged writes stage[from:to] at the end of the file.
func (h *handle) writeStaged(from, to int) error {
	if from == to {
		return nil
	}
	n, err := h.f.Write(h.stage[from:to])
	h.written += int64(n)
	return err
}

// writebackEvery is how much of a stream is written before the helper asks
// the kernel to start writing it to disk. Without it nothing reaches the
// disk until the file's fsync (the kernel waits for gigabytes of dirty
// data), so every large file's fsync would wait for all of it at the end.
const writebackEvery = 8 << 20

// write sends replies, flushing whenever no other reply is waiting.
func (s *server) write(bw *bufio.Writer) error {
	var err error
	for b := range s.replies {
		if err != nil {
			continue // drain: the client is gone
		}
		if _, err = bw.Write(b); err == nil && len(s.replies) == 0 {
			err = bw.Flush()
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

func (s *server) read(r io.Reader) error {
	var hdr [9]byte
	wbuf := make([]byte, chunkSize)
	for {
		f, n, err := readHeader(r, &hdr)
		if err != nil {
			return err
		}
		if f.op == opWrite {
			if err := s.writeChunk(f.id, r, n, wbuf); err != nil {
				return err
			}
			continue
		}
		if f.payload, err = readPayload(r, n, wbuf); err != nil {
			return err
		}
		if f.op == opOpen {
			d := decoder{b: f.payload}
			s.open(f.id, d.str(), d.err)
			continue
		}
		if f.op == opZstd && len(f.payload) > 0 && f.payload[0] == opWrite {
			// A stream's chunk: decompressed here, written in order.
			if err := s.writeZstd(f.id, f.payload, wbuf); err != nil {
				return err
			}
			continue
		}
		f.payload = bytes.Clone(f.payload) // the buffer is reused by the next read
		s.sem <- struct{}{}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			s.replies <- s.do(f)
		}()
	}
}

// do carries out one answered request and returns the reply frame.
func (s *server) do(f frame) []byte {
	if f.op == opZstd {
		var err error
		if f.op, f.payload, err = unzstd(f.payload); err != nil {
			return errorReply(f.id, err)
		}
	}
	d := decoder{b: f.payload}
	var err error
	var body []byte
	switch f.op {
	case opPutMany, opPutSplit:
		heads, n := &d, 0 // opPutSplit: the heads apart from the data
		if f.op == opPutSplit {
			if n, heads, err = unsplit(&d); err != nil {
				break
			}
		} else {
			n = int(d.u16())
		}
		for range n {
			flags, tag := heads.u8(), uint32(0)
			if flags&flagKeep != 0 {
				tag = heads.u32()
			}
			name, k := heads.str(), heads.u32()
			data := d.take(int(min(k, uint32(len(d.b)+1)))) // past the end: an error, not k bytes
			if heads.err != nil || d.err != nil {
				break
			}
			perr := s.put(name, data, flags&flagFsync != 0)
			if perr == nil && flags&flagKeep != 0 {
				s.keep(tag, name)
			}
			body = appendResult(body, perr)
		}
		err = cmp.Or(heads.err, d.err)
	case opFsync, opClose:
		err = s.finish(f.id, f.op == opClose)
	case opRenameMany, opRenameStat:
		n := int(d.u16())
		for range n {
			from, to := d.str(), d.str()
			if d.err != nil {
				break
			}
			if f.op == opRenameStat {
				body = s.renameStat(body, from, to)
			} else {
				body = appendResult(body, s.rename(from, to))
			}
		}
		err = d.err
	case opRemove:
		name := d.str()
		if err = d.err; err == nil {
			err = s.remove(name)
		}
	case opMkdirAll:
		name := d.str()
		if err = d.err; err == nil {
			err = s.mkdirAll(name)
		}
	case opSyncFS:
		n := int(d.u16())
		dirs := make([]string, 0, n)
		for range n {
			dirs = append(dirs, d.str())
		}
		if err = d.err; err == nil {
			err = s.syncFS(dirs)
		}
	case opList:
		dir := d.str()
		var ents []Entry
		if err = d.err; err == nil {
			err = s.list(dir, false, func(e *Entry) { ents = append(ents, *e) })
		}
		body = encodeList(ents)
	case opDigest:
		n := int(d.u16())
		for range n {
			dir := d.str()
			if d.err != nil {
				break
			}
			dg, count := newDigester(), 0
			if err := s.list(dir, true, func(e *Entry) { dg.add(e); count++ }); err != nil {
				body = appendResult(body, err)
				continue
			}
			sum := dg.sum()
			body = binary.BigEndian.AppendUint32(appendResult(body, nil), uint32(count))
			body = append(body, sum[:]...)
		}
		err = d.err
	case opPublish:
		files := d.published()
		if err = d.err; err == nil {
			err = s.publish(files)
		}
	case opPublishSteps, opPublishList:
		sync := make([]string, d.u16())
		for i := range sync {
			sync[i] = d.str()
		}
		steps := make([][]Published, d.u16())
		for i := range steps {
			steps[i] = d.published()
		}
		var list []string
		if f.op == opPublishList {
			list = make([]string, d.u16())
			for i := range list {
				list[i] = d.str()
			}
		}
		if err = d.err; err == nil {
			err = s.publishSteps(sync, steps)
		}
		if err == nil {
			body = s.listMany(list)
		}
	case opListMany:
		n := int(d.u16())
		dirs := make([]string, 0, n)
		for range n {
			if dir := d.str(); d.err == nil {
				dirs = append(dirs, dir)
			}
		}
		body, err = s.listMany(dirs), d.err
	case opStatMany:
		body, err = s.statMany(&d)
	case opRenameKept:
		tag, count, prefix := d.u32(), d.u32(), d.str()
		sync := make([]string, d.u16())
		for i := range sync {
			sync[i] = d.str()
		}
		if err = d.err; err == nil {
			body, err = s.renameKept(tag, int(count), prefix, sync)
		}
	default:
		var known bool
		if body, known, err = s.doTree(f.op, &d); !known {
			err = fmt.Errorf("unknown request %d: %w", f.op, errProtocol)
		}
	}
	if err != nil {
		return errorReply(f.id, err)
	}
	b := appendHeader(make([]byte, 0, 10+len(body)), opReply, f.id, 1+len(body))
	b = append(b, statusOK)
	return append(b, body...)
}

func errorReply(id uint32, err error) []byte {
	r := appendResult(nil, err)
	return append(appendHeader(make([]byte, 0, 9+len(r)), opReply, id, len(r)), r...)
}

// appendResult appends statusOK, or statusErr with the errno and message.
func appendResult(b []byte, err error) []byte {
	if err == nil {
		return append(b, statusOK)
	}
	var errno syscall.Errno
	errors.As(err, &errno)
	msg := err.Error()
	if len(msg) > 4096 {
		msg = msg[:4096]
	}
	b = append(b, statusErr)
	b = binary.BigEndian.AppendUint32(b, uint32(errno))
	return appendString(b, msg)
}

// withRoot calls fn with the root, opening it on first use.
func (s *server) withRoot(fn func(*os.Root) error) error {
	s.mu.Lock()
	if s.root == nil {
		r, err := os.OpenRoot(s.rootPath)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.root = r
	}
	r := s.root
	s.mu.Unlock()
	return fn(r)
}

func (s *server) mkdirAll(name string) error {
	if err := os.MkdirAll(s.rootPath, manifest.DirPerm); err != nil {
		return err
	}
	if path.Clean(name) == "." {
		return s.withRoot(func(*os.Root) error { return nil })
	}
	return s.withRoot(func(r *os.Root) error { return r.MkdirAll(name, manifest.DirPerm) })
}

func (s *server) put(name string, data []byte, fsync bool) error {
	f, err := s.create(name)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// publish writes each file durably under its temporary name, then
// renames each into place and fsyncs the directories holding them and
// their parents, so that the renames are durable when it returns. A failure before the
// renames removes the temporary files written.
func (s *server) publish(files []Published) error {
	for i, p := range files {
		if err := s.put(p.Tmp, p.Data, true); err != nil {
			for _, q := range files[:i+1] {
				_ = s.remove(q.Tmp) // not renamed: nothing under a final name
			}
			return err
		}
	}
	dirs := map[string]bool{}
	for _, p := range files {
		if err := s.rename(p.Tmp, p.Name); err != nil {
			return err
		}
		// The directory, and its own entry in its parent (a set's
		// directory is made just before its manifest is published).
		dir := path.Dir(p.Name)
		dirs[dir], dirs[path.Dir(dir)] = true, true
	}
	for dir := range dirs {
		err := s.withRoot(func(r *os.Root) error {
			d, err := r.Open(dir)
			if err != nil {
				return err
			}
			err = d.Sync()
			if cerr := d.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("fsync directory %s: %w", dir, err)
		}
	}
	return nil
}

// renameStat renames from to to and appends the rename's result and,
// where it was done, what to shows now (an lstat, as a listing has it):
// the client records that as the stamp of the file it wrote, with no
// listing after the copy. A stat that fails is reported as such; the
// rename stands.
func (s *server) renameStat(body []byte, from, to string) []byte {
	if err := s.rename(from, to); err != nil {
		return appendResult(body, err)
	}
	body = appendResult(body, nil)
	e, err := s.lstat(to)
	body = appendResult(body, err)
	if err != nil {
		return body
	}
	body = binary.BigEndian.AppendUint64(body, uint64(e.Size))
	return binary.BigEndian.AppendUint64(body, uint64(e.ModTime.UnixNano()))
}

// keep keeps name, a file just put with flagKeep, in mind under tag.
func (s *server) keep(tag uint32, name string) {
	s.keptMu.Lock()
	defer s.keptMu.Unlock()
	if s.kept == nil {
		s.kept = map[uint32][]string{}
	}
	s.kept[tag] = append(s.kept[tag], name)
}

// listMany lists each of dirs, as opListMany's reply has them: a result
// each and, after a statusOK, the listing.
func (s *server) listMany(dirs []string) []byte {
	var body []byte
	for _, dir := range dirs {
		var ents []Entry
		if err := s.list(dir, false, func(e *Entry) { ents = append(ents, *e) }); err != nil {
			body = appendResult(body, err)
			continue
		}
		body = append(appendResult(body, nil), encodeList(ents)...)
	}
	return body
}

// renameKept carries out opRenameKept: the count files kept under tag,
// in the byte order of their names, renamed each to its name with prefix
// taken off its last element once the file systems of sync are synced;
// the reply's body has opRenameStat's result for each.
func (s *server) renameKept(tag uint32, count int, prefix string, sync []string) ([]byte, error) {
	s.keptMu.Lock()
	tmps := s.kept[tag]
	delete(s.kept, tag)
	s.keptMu.Unlock()
	if len(tmps) != count {
		return nil, fmt.Errorf("rename a batch of %d files: this helper wrote %d of them", count, len(tmps))
	}
	slices.Sort(tmps)
	finals := make([]string, len(tmps))
	for i, tmp := range tmps {
		dir, base := path.Split(tmp)
		if prefix == "" || len(base) <= len(prefix) || !strings.HasPrefix(base, prefix) {
			return nil, fmt.Errorf("rename %s: its name does not begin with %q: %w", tmp, prefix, errProtocol)
		}
		finals[i] = dir + base[len(prefix):]
	}
	if len(sync) > 0 {
		if err := s.syncFS(sync); err != nil {
			return nil, err
		}
	}
	body := make([]byte, 0, 18*len(tmps))
	for i, tmp := range tmps {
		body = s.renameStat(body, tmp, finals[i])
	}
	return body, nil
}

// published reads a list of files as opPublish's payload has them.
func (d *decoder) published() []Published {
	n := int(d.u16())
	files := make([]Published, 0, n)
	for range n {
		if d.err != nil {
			break
		}
		p := Published{Tmp: d.str(), Name: d.str()}
		p.Data = d.take(int(d.u32()))
		files = append(files, p)
	}
	return files
}

// publishSteps makes what was written to the file systems holding sync
// durable, then publishes each step's files (publish), the directories
// holding them made first, each step only once the one before is
// durable; it stops at the first failure.
func (s *server) publishSteps(sync []string, steps [][]Published) error {
	if len(sync) > 0 {
		if err := s.syncFS(sync); err != nil {
			return err
		}
	}
	for _, files := range steps {
		dirs := map[string]bool{}
		for _, p := range files {
			dirs[path.Dir(p.Name)] = true
		}
		for dir := range dirs {
			if err := s.mkdirAll(dir); err != nil {
				return err
			}
		}
		if err := s.publish(files); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) open(id uint32, name string, err error) {
	h := &handle{name: name, err: err}
	if err == nil {
		h.f, h.err = s.create(name)
	}
	if h.err == nil && startDirect(h.f) {
		h.startDirectWriter()
	}
	s.mu.Lock()
	s.handles[id] = h
	s.mu.Unlock()
}

func (s *server) handle(id uint32) *handle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handles[id]
}

// writeChunk reads an opWrite's payload of n bytes from r and writes it to
// the stream: a direct stream's straight into its stage buffer, others'
// through buf. Only an error reading r is returned; an error writing is
// the stream's, reported by its fsync or close.
func (s *server) writeChunk(id uint32, r io.Reader, n int, buf []byte) error {
	h := s.handle(id)
	if h != nil && h.err == nil && h.direct {
		for n > 0 {
			k := min(n, len(h.stage)-h.staged)
			if _, err := readPayload(r, k, h.stage[h.staged:]); err != nil {
				return err
			}
			h.staged += k
			n -= k
			if h.staged == len(h.stage) {
				h.queue <- h.stage
				h.stage, h.staged = <-h.free, 0
			}
		}
		return nil
	}
	data, err := readPayload(r, n, buf)
	if err != nil || h == nil || h.err != nil {
		return err
	}
	k, err := h.f.Write(data)
	h.written += int64(k)
	if err != nil {
		h.err = err
		return nil
	}
	if h.written-h.flushed >= writebackEvery {
		startWriteback(h.f, h.flushed, h.written-h.flushed)
		h.flushed = h.written
	}
	return nil
}

// writeZstd decompresses an opZstd frame's chunk of stream id and writes
// it as writeChunk does. A chunk that does not decompress fails the
// stream: its fsync or close reports it.
func (s *server) writeZstd(id uint32, payload, buf []byte) error {
	_, raw, err := unzstd(payload)
	if err != nil {
		if h := s.handle(id); h != nil && h.err == nil {
			h.err = fmt.Errorf("write %s: %w", h.name, err)
		}
		return nil
	}
	return s.writeChunk(id, bytes.NewReader(raw), len(raw), buf)
}

// finish fsyncs (close false) or closes a stream and reports the first
// error it met.
func (s *server) finish(id uint32, close bool) error {
	h := s.handle(id)
	if h == nil {
		return fmt.Errorf("no open file %d: %w", id, errProtocol)
	}
	err := h.err
	if err == nil && h.f != nil {
		err = h.flush()
	}
	if !close {
		if err == nil {
			err = h.f.Sync()
		}
		return err
	}
	s.mu.Lock()
	delete(s.handles, id)
	s.mu.Unlock()
	h.stopWriter() // a stream that failed before flush
	if h.f != nil {
		if cerr := h.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// list calls fn with each entry of dir (in name order if sorted), stat'ed
// with fstatat without following symlinks. e is valid only during the
// call.
func (s *server) list(dir string, sorted bool, fn func(e *Entry)) error {
	return s.withRoot(func(r *os.Root) error {
		d, err := r.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		names, err := readNames(d)
		if err != nil {
			return err
		}
		if sorted {
			slices.Sort(names)
		}
		var e Entry
		fd := int(d.Fd())
		for _, name := range names {
			e.Name = name
			if err := statAt(fd, &e); err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed since it was listed
				}
				return fmt.Errorf("stat %s: %w", path.Join(dir, name), err)
			}
			fn(&e)
		}
		return nil
	})
}

// encodeList encodes a listing: count u32, then name, size u64, mtime (ns)
// u64 and a kind byte (1 directory) for each.
func encodeList(ents []Entry) []byte {
	body := make([]byte, 4, 4+len(ents)*96)
	binary.BigEndian.PutUint32(body, uint32(len(ents)))
	for _, e := range ents {
		body = appendString(body, e.Name)
		body = binary.BigEndian.AppendUint64(body, uint64(e.Size))
		body = binary.BigEndian.AppendUint64(body, uint64(e.ModTime.UnixNano()))
		kind := byte(0)
		if e.Dir {
			kind = 1
		}
		body = append(body, kind)
	}
	return body
}
