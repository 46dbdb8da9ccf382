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

// A batch of files whose data does not compress (opPutMany) still
// carries a head per file - flags, its temporary name, its size: about
// 100 bytes, a fortieth of a 4 KiB file - that compresses to about a
// third (the names share their directories and are hex). To a helper that
// takes it, such a batch goes as opPutSplit: the heads apart, compressed,
// then the data as it is (100k files of 4 KiB: about 6.5 MB less on the
// link, half a second at 100 Mbit/s).

// splitMin is the fewest files a batch needs to go as opPutSplit.
const splitMin = 8

// minCompress is the smallest payload worth an attempt.
const minCompress = 1 << 10

// compressed reports whether a payload of n bytes compressed to k is worth
// sending that way: at least an eighth smaller.
func compressed(n, k int) bool { return k <= n-n/8 }

// compressible reports whether op's payload is file data or names worth
// compressing.
func compressible(op byte) bool {
	return op == opPutMany || op == opWrite || op == opPublish || op == opRenameMany || op == opRenameStat || op == opPublishSteps || op == opPublishList
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
		return c.asIs(op, n, parts)
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
		return c.asIs(op, n, parts)
	}
	c.zsent.Add(int64(len(z)))
	return opZstd, [][]byte{z}
}

// asIs returns the frame for a payload that is not compressed as a whole:
// a batch of files (opPutMany) as opPutSplit where compression is on, the
// helper takes it and the heads gain; anything else as it is.
func (c *Client) asIs(op byte, n int, parts [][]byte) (byte, [][]byte) {
	if op == opPutMany && len(parts) > splitMin && !c.zoff.Load() && c.ops[opPutSplit] {
		if split, k, ok := splitPuts(parts); ok {
			c.zsent.Add(int64(k))
			return opPutSplit, split
		}
	}
	c.zsent.Add(int64(n))
	return op, parts
}

// splitPuts returns opPutMany's payload parts (the count, then one part
// per file as encodePut has it) as opPutSplit's, and their size; ok false
// if they are not such parts or the heads do not gain.
func splitPuts(parts [][]byte) (split [][]byte, size int, ok bool) {
	if len(parts[0]) != 2 || int(binary.BigEndian.Uint16(parts[0])) != len(parts)-1 {
		return nil, 0, false
	}
	var heads []byte
	data := make([][]byte, 0, len(parts)-1)
	for _, p := range parts[1:] {
		d := decoder{b: p}
		if d.u8()&flagKeep != 0 {
			d.u32()
		}
		d.str()
		k := int(d.u32())
		if d.err != nil || len(d.b) != k {
			return nil, 0, false
		}
		heads = append(heads, p[:len(p)-k]...)
		data = append(data, d.b)
		size += k
	}
	if len(heads) > maxFrame {
		return nil, 0, false
	}
	z := append(parts[0][:2:2], make([]byte, 8)...)
	binary.BigEndian.PutUint32(z[2:], uint32(len(heads)))
	z = zencoder().EncodeAll(heads, z)
	binary.BigEndian.PutUint32(z[6:], uint32(len(z)-10))
	if !compressed(len(heads), len(z)-10) {
		return nil, 0, false
	}
	return append([][]byte{z}, data...), size + len(z), true
}

// unsplit reads opPutSplit's heads: the count and the decompressed heads,
// d left at the first file's data.
func unsplit(d *decoder) (int, *decoder, error) {
	n, size, zlen := int(d.u16()), d.u32(), d.u32()
	z := d.take(int(min(zlen, uint32(len(d.b)))))
	if d.err != nil || uint64(zlen) != uint64(len(z)) || size > maxFrame {
		return 0, nil, fmt.Errorf("split batch of files: %w", errProtocol)
	}
	heads, err := zdecoder().DecodeAll(z, make([]byte, 0, size))
	if err != nil {
		return 0, nil, fmt.Errorf("split batch of files: corrupt heads (zstd: %w): %w", err, errProtocol)
	}
	if len(heads) != int(size) {
		return 0, nil, fmt.Errorf("split batch of files: heads of %d bytes, want %d: %w", len(heads), size, errProtocol)
	}
	return n, &decoder{b: heads}, nil
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
