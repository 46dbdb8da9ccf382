package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// Benchmarks against `rsync -a` over the same loopback sshd, side by side in
// one run (bench/transfer.sh runs them; see README there). Each reports both
// programs' figures and the ratio. BCP_BENCH_SCALE (default 1) scales the
// data: 0.05 for a quick look.

func benchScale(b *testing.B) float64 {
	if s := os.Getenv("BCP_BENCH_SCALE"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			b.Fatalf("BCP_BENCH_SCALE=%q: want a positive number", s)
		}
		return f
	}
	return 1
}

type benchWorld struct {
	sshd    *testenv.SSHServer
	src     string
	allowed string
	files   int64
	bytes   int64
}

func newBenchWorld(b *testing.B, bulk movertest.Bulk) *benchWorld {
	b.Helper()
	if _, err := exec.LookPath("rsync"); err != nil {
		testenv.RequireCI(b, "rsync", "apt-get install rsync")
	}
	src := b.TempDir()
	c := movertest.New(b, src)
	c.PublishBulk(bulk)
	w := &benchWorld{sshd: testenv.SSHD(b), src: src, allowed: c.Allowed}
	w.files = int64(bulk.Files + bulk.Blobs)
	w.bytes = int64(bulk.Files*bulk.FileSize) + int64(bulk.Blobs)*bulk.BlobSize
	return w
}

// rsync runs `rsync -a` with the extra flags (e.g. -z) from the source to
// dst on the server.
func (w *benchWorld) rsync(b *testing.B, dst string, extra ...string) time.Duration {
	b.Helper()
	settle(b)
	start := time.Now()
	if out, err := w.rsyncCmd(dst, extra...).CombinedOutput(); err != nil {
		b.Fatalf("rsync: %v\n%s", err, out)
	}
	return time.Since(start)
}

// rsyncCmd is the command rsync runs.
func (w *benchWorld) rsyncCmd(dst string, extra ...string) *exec.Cmd {
	s := w.sshd
	rsh := fmt.Sprintf("ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes -p %d", s.KeyFile, s.KnownHosts, s.Port)
	args := append(append([]string{"-a"}, extra...), "-e", rsh, w.src+"/", fmt.Sprintf("%s@%s:%s/", s.User, s.Host, dst))
	return exec.Command("rsync", args...)
}

func (w *benchWorld) push(b *testing.B, cache, dst string) time.Duration {
	b.Helper()
	return w.pushWith(b, cache, dst, helper())
}

// pushWith pushes with --remote-transfer remote ("none": SFTP only) and
// the extra flags.
func (w *benchWorld) pushWith(b *testing.B, cache, dst, remote string, extra ...string) time.Duration {
	b.Helper()
	settle(b)
	start := time.Now()
	if out, err := w.pushCmd(cache, dst, remote, extra...).CombinedOutput(); err != nil {
		b.Fatalf("transfer push: %v\n%s", err, out)
	}
	return time.Since(start)
}

// pushCmd is the command pushWith runs.
func (w *benchWorld) pushCmd(cache, dst, remote string, extra ...string) *exec.Cmd {
	args := append([]string{"push", "--allowed-signers", w.allowed, "--ssh-key", w.sshd.KeyFile, "--ssh-known-hosts", w.sshd.KnownHosts,
		"--remote-transfer", remote, "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, append(args, w.src, sftpURL(w.sshd, dst))...)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cache)
	return cmd
}

// helper is what push starts on the server: this build (the server is
// this machine), or BCP_BENCH_REMOTE ("none" measures SFTP alone).
func helper() string {
	if h := os.Getenv("BCP_BENCH_REMOTE"); h != "" {
		return h
	}
	return bin
}

// settle writes back what the previous run left dirty, so that neither
// program pays for the other's write-back (rsync leaves its files in the
// page cache; push makes its own durable before it finishes).
func settle(b *testing.B) {
	b.Helper()
	if out, err := exec.Command("sync").CombinedOutput(); err != nil {
		b.Fatalf("sync: %v: %s", err, out)
	}
}

func fresh(b *testing.B, parent, name string) string {
	b.Helper()
	d := filepath.Join(parent, name)
	if err := os.RemoveAll(d); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o750); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkLargeBlobs: 2 GiB of 128 MiB blobs, first copy. Target: transfer
// at least 1.3 times rsync's MB/s.
func BenchmarkLargeBlobs(b *testing.B) {
	sc := benchScale(b)
	w := newBenchWorld(b, movertest.Bulk{Seed: "large", Blobs: max(1, int(16*sc)), BlobSize: 128 << 20})
	work, cache := b.TempDir(), b.TempDir()
	b.ResetTimer()
	for range b.N {
		dr := w.rsync(b, fresh(b, work, "rsync"))
		dt := w.push(b, cache, fresh(b, work, "transfer"))
		mb := float64(w.bytes) / 1e6
		b.ReportMetric(mb/dr.Seconds(), "rsync-MB/s")
		b.ReportMetric(mb/dt.Seconds(), "transfer-MB/s")
		b.ReportMetric(dr.Seconds()/dt.Seconds(), "x-rsync")
	}
}

// BenchmarkSmallFiles: 100k files of 4 KiB, first copy, then again with
// nothing to do. Targets: first copy at least rsync's files/s; nothing to do
// in at most half rsync's time.
func BenchmarkSmallFiles(b *testing.B) {
	sc := benchScale(b)
	w := newBenchWorld(b, movertest.Bulk{Seed: "small", Files: max(100, int(100000*sc)), FileSize: 4096})
	work, cache := b.TempDir(), b.TempDir()
	b.ResetTimer()
	for range b.N {
		rdst, tdst := fresh(b, work, "rsync"), fresh(b, work, "transfer")
		dr := w.rsync(b, rdst)
		dt := w.push(b, cache, tdst)
		nr := w.rsync(b, rdst)
		nt := w.push(b, cache, tdst)
		n := float64(w.files)
		b.ReportMetric(n/dr.Seconds(), "rsync-files/s")
		b.ReportMetric(n/dt.Seconds(), "transfer-files/s")
		b.ReportMetric(dr.Seconds()/dt.Seconds(), "x-rsync")
		b.ReportMetric(nr.Seconds(), "noop-rsync-s")
		b.ReportMetric(nt.Seconds(), "noop-transfer-s")
		b.ReportMetric(nt.Seconds()/nr.Seconds(), "noop-time-ratio")
	}
}

// BenchmarkNoop: 100k files of 4 KiB already at both destinations; each
// iteration times rsync and push with nothing to do, five times each,
// alternately, and reports the medians (one run moves with the VM's noise).
// Target: push in at most half rsync's time.
func BenchmarkNoop(b *testing.B) {
	sc := benchScale(b)
	w := newBenchWorld(b, movertest.Bulk{Seed: "small", Files: max(100, int(100000*sc)), FileSize: 4096})
	work, cache := b.TempDir(), b.TempDir()
	rdst, tdst := fresh(b, work, "rsync"), fresh(b, work, "transfer")
	w.rsync(b, rdst)
	w.push(b, cache, tdst)
	var nr, nt []time.Duration
	b.ResetTimer()
	for range b.N * 5 {
		nr = append(nr, w.rsync(b, rdst))
		nt = append(nt, w.push(b, cache, tdst))
	}
	r, t := median(nr), median(nt)
	b.ReportMetric(r.Seconds(), "noop-rsync-s")
	b.ReportMetric(t.Seconds(), "noop-transfer-s")
	b.ReportMetric(t.Seconds()/r.Seconds(), "noop-time-ratio")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
