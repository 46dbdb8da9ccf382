package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// BenchmarkWAN: push through the helper, push over SFTP alone
// (--remote-transfer none) and `rsync -a`, in one run, over the same
// toxiproxy link in front of the same sshd (testenv.WAN), at 50 ms RTT /
// 100 Mbit/s (far) and 10 ms / 1 Gbit/s (near): 2 GiB of 128 MiB blobs,
// 100k files of 4 KiB and then nothing to do with the 100k present, and
// a 1% change of a 1M-file storage set (benchChange).
// bench/wan.sh runs it; figures in bench/wan.md. BCP_BENCH_SCALE scales
// the data. Targets (issue 18, far link): blobs at >= 0.9x the link,
// helper >= 1.0x rsync and SFTP >= 0.8x rsync on every case.
//
// BCP_BENCH_BIN, where set, is the transfer program to push with (and to
// start on the server) instead of this build: an older build beside a
// newer one, alternating runs.
func BenchmarkWAN(b *testing.B) {
	sc := benchScale(b)
	if p := os.Getenv("BCP_BENCH_BIN"); p != "" {
		bin = p
	}
	for _, l := range []struct {
		name string
		link testenv.Link
	}{{"far", testenv.FarLink}, {"near", testenv.NearLink}} {
		b.Run(l.name+"/blobs", func(b *testing.B) {
			w := newBenchWorld(b, movertest.Bulk{Seed: "large", Blobs: max(1, int(16*sc)), BlobSize: 128 << 20})
			w.sshd, _ = w.sshd.OverWAN(b, l.link)
			work, cache := b.TempDir(), b.TempDir()
			mb := float64(w.bytes) / 1e6
			link := float64(l.link.Bandwidth) / 1e6
			b.ResetTimer()
			for range b.N {
				dc := w.sshCat(b)
				dr := w.rsync(b, fresh(b, work, "rsync"))
				dt := w.pushWith(b, cache, fresh(b, work, "transfer"), bin)
				ds := w.pushWith(b, b.TempDir(), fresh(b, work, "sftp"), "none")
				b.ReportMetric(link, "link-MB/s")
				b.ReportMetric(mb/dc.Seconds(), "ssh-cat-MB/s")
				b.ReportMetric(mb/dr.Seconds(), "rsync-MB/s")
				b.ReportMetric(mb/dt.Seconds(), "transfer-MB/s")
				b.ReportMetric(mb/ds.Seconds(), "sftp-MB/s")
				b.ReportMetric(mb/dt.Seconds()/link, "x-link")
				b.ReportMetric(dr.Seconds()/dt.Seconds(), "x-rsync")
				b.ReportMetric(dr.Seconds()/ds.Seconds(), "sftp-x-rsync")
			}
		})
		b.Run(l.name+"/bwlimit", func(b *testing.B) {
			// --bwlimit 4M for a minute of data (at scale 1): the whole
			// run's rate (setup and the final fsyncs included) and the
			// steady rate on the wire, from 10% to 90% of the bytes the
			// link carried (SSH's framing included), against the limit.
			const limit = 4 << 20
			size := max(8<<20, int64(60*limit*sc)) &^ (1<<20 - 1)
			w := newBenchWorld(b, movertest.Bulk{Seed: "bwlimit", Blobs: 1, BlobSize: size})
			var wan *testenv.WAN
			w.sshd, wan = w.sshd.OverWAN(b, l.link)
			work := b.TempDir()
			b.ResetTimer()
			for range b.N {
				dt, steady := w.pushSampled(b, wan, b.TempDir(), fresh(b, work, "transfer"), bin, "--bwlimit", "4M")
				b.ReportMetric(float64(size)/dt.Seconds()/1e6, "transfer-MB/s")
				b.ReportMetric(float64(limit)/1e6, "bwlimit-MB/s")
				b.ReportMetric(float64(size)/dt.Seconds()/limit, "x-bwlimit")
				b.ReportMetric(steady/1e6, "steady-MB/s")
				b.ReportMetric(steady/limit, "steady-x-bwlimit")
			}
		})
		b.Run(l.name+"/change", func(b *testing.B) { benchChange(b, sc, l.link) })
		b.Run(l.name+"/text", func(b *testing.B) { benchText(b, sc, l.link) })
		b.Run(l.name+"/small", func(b *testing.B) {
			w := newBenchWorld(b, movertest.Bulk{Seed: "small", Files: max(100, int(100000*sc)), FileSize: 4096})
			var wan *testenv.WAN
			w.sshd, wan = w.sshd.OverWAN(b, l.link)
			work := b.TempDir()
			n := float64(w.files)
			// wire runs copy and reports the megabytes the link carried
			// to the server meanwhile (SSH's framing included) as
			// name-wire-MB: what each program sends per file beside the
			// files' own bytes.
			wire := func(name string, copy func() time.Duration) time.Duration {
				sent := wan.Sent()
				d := copy()
				b.ReportMetric(float64(wan.Sent()-sent)/1e6, name+"-wire-MB")
				return d
			}
			b.ResetTimer()
			for range b.N {
				tcache, scache := b.TempDir(), b.TempDir()
				rdst, tdst, sdst := fresh(b, work, "rsync"), fresh(b, work, "transfer"), fresh(b, work, "sftp")
				dr := wire("rsync", func() time.Duration { return w.rsync(b, rdst) })
				dt := wire("transfer", func() time.Duration { return w.pushWith(b, tcache, tdst, bin) })
				ds := wire("sftp", func() time.Duration { return w.pushWith(b, scache, sdst, "none") })
				b.ReportMetric(float64(w.bytes)/1e6, "data-MB")
				var nr, nt, ns []time.Duration
				for range 3 {
					nr = append(nr, w.rsync(b, rdst))
					nt = append(nt, w.pushWith(b, tcache, tdst, bin))
					ns = append(ns, w.pushWith(b, scache, sdst, "none"))
				}
				b.ReportMetric(n/dr.Seconds(), "rsync-files/s")
				b.ReportMetric(n/dt.Seconds(), "transfer-files/s")
				b.ReportMetric(n/ds.Seconds(), "sftp-files/s")
				b.ReportMetric(dr.Seconds()/dt.Seconds(), "x-rsync")
				b.ReportMetric(dr.Seconds()/ds.Seconds(), "sftp-x-rsync")
				r, t, s := median(nr), median(nt), median(ns)
				b.ReportMetric(r.Seconds(), "noop-rsync-s")
				b.ReportMetric(t.Seconds(), "noop-transfer-s")
				b.ReportMetric(s.Seconds(), "noop-sftp-s")
				b.ReportMetric(r.Seconds()/t.Seconds(), "noop-x-rsync")
				b.ReportMetric(r.Seconds()/s.Seconds(), "noop-sftp-x-rsync")
			}
		})
	}
}

// pushSampled is pushWith that also samples the bytes wan carries to the
// server every 50 ms and returns, beside the run's time, the steady rate:
// bytes per second between the samples at 10% and at 90% of what the run
// sent (the connection's start and the final phases left out). It reports
// when 10% had passed (head-s) and how long the run went on after 90%
// (tail-s).
func (w *benchWorld) pushSampled(b *testing.B, wan *testenv.WAN, cache, dst, remote string, extra ...string) (time.Duration, float64) {
	b.Helper()
	settle(b)
	type sample struct {
		at    time.Duration
		bytes int64
	}
	var samples []sample
	base := wan.Sent()
	start := time.Now()
	cmd := w.pushCmd(cache, dst, remote, extra...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				b.Fatalf("transfer push: %v\n%s", err, out.String())
			}
			running = false
		case <-tick.C:
		}
		samples = append(samples, sample{time.Since(start), wan.Sent() - base})
	}
	dt := time.Since(start)
	total := samples[len(samples)-1].bytes
	var lo, hi *sample
	for i := range samples {
		if lo == nil && samples[i].bytes >= total/10 {
			lo = &samples[i]
		}
		if samples[i].bytes <= total*9/10 {
			hi = &samples[i]
		}
	}
	if lo == nil || hi == nil || hi.at <= lo.at {
		b.Fatalf("too few samples of the link (%d) for a steady rate", len(samples))
	}
	b.ReportMetric(lo.at.Seconds(), "head-s")
	b.ReportMetric((dt - hi.at).Seconds(), "tail-s")
	return dt, float64(hi.bytes-lo.bytes) / (hi.at - lo.at).Seconds()
}

// sshCat times the source's blobs through one plain OpenSSH session into
// cat > /dev/null at the far end: what this link, ssh's cipher and this
// machine's CPU carry at most, no files written.
func (w *benchWorld) sshCat(b *testing.B) time.Duration {
	b.Helper()
	s := w.sshd
	blobs, err := filepath.Glob(filepath.Join(w.src, "es", "indices", "*", "*", "__blob*"))
	if err != nil || len(blobs) == 0 {
		b.Fatalf("no blobs to send: %v", err)
	}
	start := time.Now()
	for _, p := range blobs {
		f, err := os.Open(p)
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command("ssh", "-i", s.KeyFile, "-o", "UserKnownHostsFile="+s.KnownHosts, "-o", "StrictHostKeyChecking=yes",
			"-o", "BatchMode=yes", "-p", fmt.Sprint(s.Port), s.User+"@"+s.Host, "cat > /dev/null")
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		_ = f.Close() // only read
		if err != nil {
			b.Fatalf("ssh cat: %v\n%s", err, out)
		}
	}
	return time.Since(start)
}
