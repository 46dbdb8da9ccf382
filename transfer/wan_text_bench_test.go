package main

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// benchText is BenchmarkWAN's "text" case: data that compresses - 40k
// JSON documents of 2-14 KiB (about 8 KiB, 320 MB) and 8 Elasticsearch
// segments of 16 MiB holding the same kind of text, at BCP_BENCH_SCALE=1 -
// first copy by `rsync -a`, `rsync -az`, push through the helper (zstd
// where it gains, the default) and push with --compress=false, each to a
// fresh destination across link. Reported: each one's time and the bytes
// the link carried to the server, and push's ratio to both rsyncs.
func benchText(b *testing.B, sc float64, link testenv.Link) {
	spec := textSpec(max(100, int(40000*sc)), max(1, int(8*sc)))
	src := b.TempDir()
	c := movertest.New(b, src)
	c.Publish(spec)
	w := &benchWorld{sshd: testenv.SSHD(b), src: src, allowed: c.Allowed}
	for _, f := range spec.Tree {
		w.files, w.bytes = w.files+1, w.bytes+int64(len(f))
	}
	for _, f := range spec.ES {
		w.files, w.bytes = w.files+1, w.bytes+int64(len(f))
	}
	var wan *testenv.WAN
	w.sshd, wan = w.sshd.OverWAN(b, link)
	work := b.TempDir()
	mb := float64(w.bytes) / 1e6
	b.ResetTimer()
	for range b.N {
		measure := func(name string, run func(dst string) float64) float64 {
			sent := wan.Sent()
			d := run(fresh(b, work, name))
			b.ReportMetric(d, name+"-s")
			b.ReportMetric(float64(wan.Sent()-sent)/1e6, name+"-wire-MB")
			return d
		}
		// rsync, rsync -z, transfer, transfer raw; the next iteration
		// would start where this one left off, so order is kept fixed.
		dr := measure("rsync", func(dst string) float64 { return w.rsync(b, dst).Seconds() })
		dz := measure("rsync-z", func(dst string) float64 { return w.rsync(b, dst, "-z").Seconds() })
		dt := measure("transfer", func(dst string) float64 { return w.pushWith(b, b.TempDir(), dst, bin).Seconds() })
		du := measure("transfer-raw", func(dst string) float64 {
			return w.pushWith(b, b.TempDir(), dst, bin, "--compress=false").Seconds()
		})
		b.ReportMetric(mb, "data-MB")
		b.ReportMetric(dr/dt, "x-rsync")
		b.ReportMetric(dz/dt, "x-rsync-z")
		b.ReportMetric(du/dt, "x-raw")
	}
}

// textSpec is files JSON documents of 2-14 KiB and segs text segments of
// 16 MiB, made of words and numbers the way search documents are: zstd's
// fastest level and rsync -z take them to about a quarter.
func textSpec(files, segs int) movertest.Spec {
	rng := rand.New(rand.NewPCG(18, 50))
	words := []string{"squirro", "customer", "revenue", "quarter", "report", "contract", "signal", "insight", "market", "risk",
		"the", "of", "and", "in", "for", "with", "on", "by", "growth", "account", "meeting", "email", "priority", "product"}
	doc := func(n int) []byte {
		b := make([]byte, 0, n+256)
		for len(b) < n {
			b = fmt.Appendf(b, `{"id":"%016x","title":"%s %s %s","language":"en","created_at":"2026-%02d-%02dT%02d:%02d:00Z","score":%d.%03d,"body":"`,
				rng.Uint64(), words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))],
				1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(100), rng.IntN(1000))
			for range 20 + rng.IntN(40) {
				b = append(append(b, words[rng.IntN(len(words))]...), ' ')
			}
			b = append(b, "\"}\n"...)
		}
		return b[:n]
	}
	s := movertest.Spec{Tree: map[string][]byte{}, ES: map[string][]byte{}}
	for i := range files {
		s.Tree[fmt.Sprintf("docs/%03d/%07d.json", i%1000, i)] = doc(2<<10 + rng.IntN(12<<10))
	}
	for i := range segs {
		s.ES[fmt.Sprintf("indices/text/0/__seg%03d", i)] = doc(16 << 20)
	}
	return s
}
