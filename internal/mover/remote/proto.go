// Package remote is the far end of a push over SSH: `transfer serve DIR`
// runs Serve on the destination, reading requests from its standard input
// and answering on its standard output, and the mover drives it with a
// Client over an SSH session. It exists because SFTP costs a round trip and
// a server-side request per operation and internal-sftp is expensive per
// byte (measured: bench/transfer.md); the helper streams files, lists
// directories with fstatat(2) next to the data (or returns only a digest of
// a listing, to tell whether anything in a directory changed), and makes a
// batch durable with one syncfs(2), the way `rsync --server` does for rsync.
//
// The helper only ever touches paths below its root (directories opened
// through an os.Root, names below them one component), and only
// does what the mover could do over SFTP with the same account: create,
// write, fsync, rename and remove files, make directories, list them, and
// sync the file system. Reading stays on SFTP.
//
// Wire format (version 3; 3 added the tree requests of tree.go): after the helper's greeting line (Hello and a
// newline; anything the account's login shell prints before it is
// skipped, but for the line announcing optional requests, opsLine), both
// directions are frames:
//
//	op uint8 | id uint32 | n uint32 | payload [n]byte   (big endian)
//
// Strings in payloads are uint16 length + bytes. Every request except
// opOpen and opWrite gets exactly one reply (opReply, same id): a status
// byte (statusOK, statusErr) and, for an error, the errno (0 if none) and
// the message; for opList, the entries. opOpen and opWrite are not answered:
// a failed open or write is remembered with the handle (the id of the
// opOpen) and reported by its opFsync or opClose.
package remote

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"
)

// Entry is one directory entry: what a listing shows of it.
type Entry struct {
	Name    string
	Size    int64
	ModTime time.Time
	Dir     bool
}

// Digest fingerprints a directory listing: SHA-256 over its entries in
// name order, each as its name (u16 length + bytes), size (u64), time in
// nanoseconds (u64) and kind (1 directory, else 0). Two listings have the
// same digest exactly when they show the same names with the same sizes,
// times and kinds; the order they were read in does not matter. The helper
// computes it next to the data (opDigest), so a caller that kept the digest
// of a directory it verified can tell with 36 bytes instead of the listing
// whether anything in it changed.
func Digest(ents []Entry) [32]byte {
	order := make([]int, len(ents))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ents[a].Name, ents[b].Name) })
	d := newDigester()
	for _, i := range order {
		d.add(&ents[i])
	}
	return d.sum()
}

// digester computes a Digest from entries given in name order.
type digester struct {
	h hash.Hash
	b []byte
}

func newDigester() *digester { return &digester{h: sha256.New(), b: make([]byte, 0, 512)} }

func (d *digester) add(e *Entry) {
	b := appendString(d.b[:0], e.Name)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(e.ModTime.UnixNano()))
	if e.Dir {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	d.h.Write(b)
	d.b = b
}

func (d *digester) sum() (sum [32]byte) {
	d.h.Sum(sum[:0])
	return sum
}

// Hello is the line the helper prints when it is ready. The number is the
// protocol version; a client that does not see its own version does not
// use the helper.
const Hello = "bcp-transfer-serve 3"

// opsLine begins the line the helper prints just before Hello to announce
// the optional requests it carries out beyond version 3's (their op
// numbers, space-separated). A client of an older version skips it like
// anything a login shell prints; a newer client uses an optional request
// only where the helper announced it, and otherwise does what version 3
// does with the requests every helper has.
const opsLine = "bcp-transfer-ops"

// optionalOps are the requests announced in opsLine.
var optionalOps = []byte{opPublish, opListMany, opZstd, opStatMany, opRenameStat, opPublishSteps, opPutSplit, opRenameKept, opPublishList}

const (
	opPutMany    = 1  // count u16, then per file: flags u8 (fsync, keep), tag u32 if keep, name, size u32, data: create, write, (fsync), close
	opOpen       = 2  // name: create for streaming; id is the handle
	opWrite      = 3  // id = handle, payload = data
	opFsync      = 4  // id = handle
	opClose      = 5  // id = handle
	opRenameMany = 6  // count u16, then per pair: from, to (each replaces to atomically)
	opRemove     = 7  // name
	opMkdirAll   = 8  // name
	opSyncFS     = 9  // count u16, dirs
	opList       = 10 // dir
	opDigest     = 11 // count u16, dirs
	opReply      = 0x80

	// Optional (opsLine); 12-21 are tree.go's.
	opPublish      = 22 // count u16, then per file: temporary name, final name, size u32, data
	opListMany     = 23 // count u16, dirs
	opZstd         = 24 // inner op u8, size u32, zstd frame of the inner request's payload (zstd.go)
	opStatMany     = 25 // count u16, then per directory: dir, count u16, names (statmany.go)
	opRenameStat   = 26 // as opRenameMany; the reply also says what each renamed file shows (RenameStampLater)
	opPublishSteps = 27 // count u16, dirs to syncfs; count u16 of steps, each as opPublish's payload (PublishSteps)
	opPutSplit     = 28 // as opPutMany, the files' heads apart and compressed: count u16, heads' size u32, zstd size u32, zstd frame of the heads (per file flags u8, tag u32 if keep, name, size u32), then each file's data (zstd.go)
	opRenameKept   = 29 // tag u32, count u32, prefix, count u16 dirs to syncfs: the files kept under tag renamed by reference (Later.RenameKept)
	opPublishList  = 30 // as opPublishSteps, then count u16 dirs listed once the steps are done (PublishSteps with a list)
)

// A reply to opPutMany, opRenameMany or opDigest carries, after statusOK,
// one result per item: a status byte and, for statusErr, errno u32 and
// message; for opDigest, after each statusOK, the directory's entry count
// (u32) and Digest (32 bytes). The items of one opDigest are done one after
// the other: the client sends a few requests at once, as many as it wants
// directories digested in parallel. A reply to opListMany carries, after
// statusOK, one result per directory and, after each statusOK, its
// listing as opList's reply has it. opPublish writes, fsyncs and closes
// every file under its temporary name, then renames each over its final
// name and fsyncs the directories holding them and their parents: one
// status for all (the first error; a file not written is not renamed).
// opPublishSteps syncs the file systems of its dirs, then carries out
// each step as opPublish (the directories holding a step's files made
// first), the next only once the one before is durable: one status for
// all (the first error; the steps after it are not begun).
// opPublishList does what opPublishSteps does and then lists its dirs: its
// reply carries, after statusOK, one result per directory as opListMany's
// (the end of a copy: what the verified-file cache and the set's record
// need of the directories just written, with no round trip of their own).
// A reply to opRenameStat carries, after statusOK, per pair the rename's
// result and, after its statusOK, the result of an lstat of the new name
// and, after that one's statusOK, its size (u64) and modification time
// (ns, u64), as a listing shows them.
//
// A file put with flagKeep (a helper that announced opRenameKept) is
// also kept in mind, once written, under the put's tag: its temporary
// name, so that it can be renamed without its names crossing the link
// again (36 bytes a file, compressed, for names that are SHA-256 sums).
// opRenameKept takes the names kept under its tag - exactly count of
// them, else it fails and renames nothing -, syncs the file systems of
// its dirs, then renames each, in the byte order of the temporary names,
// to the same name with prefix taken off its last element (a name
// without it fails the request before anything is renamed). Its reply
// carries, after statusOK, count results in that order, each as
// opRenameStat's. A tag is used for one request: the names are
// forgotten once taken.

const (
	statusOK  = 0
	statusErr = 1
)

const (
	flagFsync = 1
	flagKeep  = 2 // the put's temporary name kept for opRenameKept (a tag u32 follows the flags)
)

// chunkSize is the most data one opWrite carries; maxFrame bounds any
// payload (a listing reply of ~700k entries), so a corrupt length never
// makes either side allocate without limit.
const (
	chunkSize = 256 << 10
	maxFrame  = 64 << 20
)

type frame struct {
	op      byte
	id      uint32
	payload []byte
}

func readFrame(r io.Reader, hdr *[9]byte, buf []byte) (frame, error) {
	f, n, err := readHeader(r, hdr)
	if err == nil {
		f.payload, err = readPayload(r, n, buf)
	}
	return f, err
}

// readHeader reads a frame's header and returns the frame without its
// payload and the payload's length, which the caller reads next.
func readHeader(r io.Reader, hdr *[9]byte) (frame, int, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return frame{}, 0, err
	}
	n := binary.BigEndian.Uint32(hdr[5:9])
	if n > maxFrame {
		return frame{}, 0, fmt.Errorf("frame of %d bytes: %w", n, errProtocol)
	}
	return frame{op: hdr[0], id: binary.BigEndian.Uint32(hdr[1:5])}, int(n), nil
}

// readPayload reads a payload of n bytes into buf (a new buffer if buf is
// too small); its end missing is ErrUnexpectedEOF.
func readPayload(r io.Reader, n int, buf []byte) ([]byte, error) {
	if n > cap(buf) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

func appendHeader(b []byte, op byte, id uint32, n int) []byte {
	b = append(b, op)
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

var errProtocol = errors.New("transfer helper protocol error")

// decoder reads fields from a payload; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int) bool {
	if d.err == nil && len(d.b) < n {
		d.err = fmt.Errorf("short payload: %w", errProtocol)
	}
	return d.err == nil
}

// take returns the next n bytes; past the end it records the error and
// returns n zero bytes, so fixed-width reads need no check of their own.
func (d *decoder) take(n int) []byte {
	if !d.need(n) {
		return make([]byte, n)
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) u8() byte    { return d.take(1)[0] }
func (d *decoder) u16() uint16 { return binary.BigEndian.Uint16(d.take(2)) }
func (d *decoder) u32() uint32 { return binary.BigEndian.Uint32(d.take(4)) }
func (d *decoder) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }

func (d *decoder) str() string {
	b := d.take(int(d.u16()))
	if d.err != nil {
		return ""
	}
	return string(b)
}
