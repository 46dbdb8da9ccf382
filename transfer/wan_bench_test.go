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
				r := sampled(b, wan, w.pushCmd(b.TempDir(), fresh(b, work, "transfer"), bin, "--bwlimit", "4M"))
				head, tail, steady := r.between(b, 0.1, 0.9)
				dt := r.dt
				b.ReportMetric(head.Seconds(), "head-s")
				b.ReportMetric(tail.Seconds(), "tail-s")
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
				// rsync and the push through the helper sampled: the
				// time before 1% of the bytes had passed, after 99%, and
				// the rate between (start-s, end-s, flow-MB/s).
				flow := func(name string, cmd *exec.Cmd) time.Duration {
					var r linkRun
					wire(name, func() time.Duration { r = sampled(b, wan, cmd); return r.dt })
					r.keep(b, name)
					head, tail, rate := r.between(b, 0.01, 0.99)
					b.ReportMetric(head.Seconds(), name+"-start-s")
					b.ReportMetric(tail.Seconds(), name+"-end-s")
					b.ReportMetric(rate/1e6, name+"-flow-MB/s")
					return r.dt
				}
				dr := flow("rsync", w.rsyncCmd(rdst))
				dt := flow("transfer", w.pushCmd(tcache, tdst, bin))
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

// linkRun is a run of a program over wan: its time and the bytes the link
// had carried to the server at each sample (every 50 ms).
type linkRun struct {
	dt      time.Duration
	samples []linkSample
}

type linkSample struct {
	at    time.Duration
	bytes int64
}

// sampled runs cmd as pushWith and rsync do (after settle), sampling the
// bytes wan carries to the server every 50 ms.
func sampled(b *testing.B, wan *testenv.WAN, cmd *exec.Cmd) linkRun {
	b.Helper()
	settle(b)
	var r linkRun
	base := wan.Sent()
	start := time.Now()
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
				b.Fatalf("%s: %v\n%s", filepath.Base(cmd.Path), err, out.String())
			}
			running = false
		case <-tick.C:
		}
		r.samples = append(r.samples, linkSample{time.Since(start), wan.Sent() - base})
	}
	r.dt = time.Since(start)
	return r
}

// keep writes r's samples (seconds, bytes) to name.txt in
// $BCP_BENCH_SAMPLES, if set, to look at where a run's flow stalled.
func (r linkRun) keep(b *testing.B, name string) {
	dir := os.Getenv("BCP_BENCH_SAMPLES")
	if dir == "" {
		return
	}
	var out bytes.Buffer
	for _, s := range r.samples {
		fmt.Fprintf(&out, "%.3f %d\n", s.at.Seconds(), s.bytes)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".txt"), out.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
}

// between returns when the link had carried the fraction lo of the run's
// bytes (head), how long the run went on after the fraction hi (tail), and
// the rate between the two samples: what the run spent before its data
// flowed, after it had flowed, and the rate it flowed at.
func (r linkRun) between(b *testing.B, lo, hi float64) (head, tail time.Duration, rate float64) {
	b.Helper()
	total := float64(r.samples[len(r.samples)-1].bytes)
	var l, h *linkSample
	for i := range r.samples {
		if l == nil && float64(r.samples[i].bytes) >= total*lo {
			l = &r.samples[i]
		}
		if float64(r.samples[i].bytes) <= total*hi {
			h = &r.samples[i]
		}
	}
	if l == nil || h == nil || h.at <= l.at {
		b.Fatalf("too few samples of the link (%d) for a steady rate", len(r.samples))
	}
	return l.at, r.dt - h.at, float64(h.bytes-l.bytes) / (h.at - l.at).Seconds()
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
