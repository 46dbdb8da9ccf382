package remote

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compression of the stream (opZstd, announced in opsLine). A request that
// carries file data (opPutMany, opWrite, opPublish) or names
// (opRenameMany: a temporary name and its final one, much alike) may
// travel as an opZstd frame with the same id:
//
//	inner op u8 | size u32 | zstd frame of the inner request's payload
//
// which the helper decompresses (to exactly size bytes, at most maxFrame)
// and carries out as the inner request. The client compresses each such
// payload on its own - a chunk of a stream, a batch of small files - and
// sends it compressed only where that makes it at least an eighth smaller:
// data that does not compress (media, encrypted or already compressed
// objects, the bench's random files) goes as it is. After a payload that
// did not gain, the next ones of the same kind go as they are without an
// attempt (1, 2, 4 ... up to 64 of them), so a stream of incompressible
// data costs one attempt in 65 (gate). Compression only changes how the
// bytes travel: the helper writes the decompressed bytes, the mover hashes
// what it reads from the source and verifies what it reads back, as
// without it.
//
// zstd is github.com/klauspost/compress/zstd, already in the module
// (manifest's directory lists): pure Go, so the helper stays one static
// program, and at its fastest level it compresses text and JSON at several
// hundred MB/s per core, well above what a WAN link carries.

// minCompress is the smallest payload worth an attempt.
const minCompress = 1 << 10

// compressed reports whether a payload of n bytes compressed to k is worth
// sending that way: at least an eighth smaller.
func compressed(n, k int) bool { return k <= n-n/8 }

// compressible reports whether op's payload is file data or names worth
// compressing.
func compressible(op byte) bool {
	return op == opPutMany || op == opWrite || op == opPublish || op == opRenameMany || op == opRenameStat || op == opPublishSteps
}

var (
	zencoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
		if err != nil {
			panic(err) // only for invalid options
		}
		return e
	})
	zdecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxFrame), zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
		if err != nil {
			panic(err) // only for invalid options
		}
		return d
	})
)

// maxBackoff is the most payloads of a kind sent without an attempt after
// one that did not gain.
const maxBackoff = 64

// gate decides whether to try compressing the next payload of a kind.
type gate struct {
	mu            sync.Mutex
	skip, backoff int
}

func (g *gate) try() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.skip > 0 {
		g.skip--
		return false
	}
	return true
}

func (g *gate) result(gained bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if gained {
		g.backoff = 0
		return
	}
	g.backoff = min(max(2*g.backoff, 1), maxBackoff)
	g.skip = g.backoff
}

// SetCompress turns compression of the stream on (the default where the
// helper offers it: each payload compressed where that gains) or off.
func (c *Client) SetCompress(on bool) { c.zoff.Store(!on) }

// Compression returns the bytes of the client's compressible requests
// (file data, renames) and the bytes they took on the stream.
func (c *Client) Compression() (raw, sent int64) { return c.zraw.Load(), c.zsent.Load() }

// squeeze returns the frame to send for op's payload parts: an opZstd
// frame's payload where compression is on, offered and gains, else op and
// parts as they are. n is the payload's size.
func (c *Client) squeeze(op byte, n int, parts [][]byte) (byte, [][]byte) {
	if !compressible(op) {
		return op, parts
	}
	c.zraw.Add(int64(n))
	if n < minCompress || n > maxFrame || c.zoff.Load() || !c.ops[opZstd] || !c.gates[op].try() {
		c.zsent.Add(int64(n))
		return op, parts
	}
	raw := parts[0]
	if len(parts) > 1 {
		raw = make([]byte, 0, n)
		for _, p := range parts {
			raw = append(raw, p...)
		}
	}
	z := binary.BigEndian.AppendUint32(append(make([]byte, 0, 5+n/2), op), uint32(n))
	z = zencoder().EncodeAll(raw, z)
	gained := compressed(n, len(z))
	c.gates[op].result(gained)
	if !gained {
		c.zsent.Add(int64(n))
		return op, parts
	}
	c.zsent.Add(int64(len(z)))
	return opZstd, [][]byte{z}
}

// unzstd decodes an opZstd payload: the inner request's op and payload.
func unzstd(p []byte) (byte, []byte, error) {
	d := decoder{b: p}
	op, size := d.u8(), d.u32()
	if d.err != nil {
		return 0, nil, d.err
	}
	if !compressible(op) || size > maxFrame {
		return 0, nil, fmt.Errorf("compressed request %d of %d bytes: %w", op, size, errProtocol)
	}
	raw, err := zdecoder().DecodeAll(d.b, make([]byte, 0, size))
	if err != nil {
		return op, nil, fmt.Errorf("corrupt compressed request (zstd: %w): %w", err, errProtocol)
	}
	if len(raw) != int(size) {
		return op, nil, fmt.Errorf("compressed request: %d bytes, want %d: %w", len(raw), size, errProtocol)
	}
	return op, raw, nil
}
