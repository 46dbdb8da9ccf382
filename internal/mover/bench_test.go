package mover

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
)

// In-process push benchmarks for profiling (go test -bench Push
// -cpuprofile); transfer/bench_test.go compares the program with rsync.
// BCP_BENCH_SCALE scales the data (default 0.25).

func benchPush(b *testing.B, bulk movertest.Bulk) {
	src := b.TempDir()
	c := movertest.New(b, src)
	c.PublishBulk(bulk)
	s := testenv.SSHD(b)
	conns, _ := strconv.Atoi(os.Getenv("BCP_BENCH_CONNS"))
	sessions, _ := strconv.Atoi(os.Getenv("BCP_BENCH_SESSIONS"))
	dst, err := DialSFTP(context.Background(), s.Config(), b.TempDir(), SFTPOptions{Conns: max(conns, 4), Sessions: max(sessions, 8), Helper: os.Getenv("BCP_BENCH_HELPER")})
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Close()
	work := b.TempDir()
	b.SetBytes(int64(bulk.Files*bulk.FileSize) + int64(bulk.Blobs)*bulk.BlobSize)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		root := filepath.Join(work, strconv.Itoa(i))
		if err := os.MkdirAll(root, 0o750); err != nil {
			b.Fatal(err)
		}
		d, err := DialSFTP(context.Background(), s.Config(), root, SFTPOptions{Conns: max(conns, 4), Sessions: max(sessions, 8), Helper: os.Getenv("BCP_BENCH_HELPER")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		workers, _ := strconv.Atoi(os.Getenv("BCP_BENCH_WORKERS"))
		if _, err := Run(context.Background(), Options{Src: NewLocal(src), Dst: d, Workers: workers, VerifySignature: SignatureVerifier(c.AllowedSigners())}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func scale(b *testing.B) float64 {
	if f, err := strconv.ParseFloat(os.Getenv("BCP_BENCH_SCALE"), 64); err == nil && f > 0 {
		return f
	}
	return 0.25
}

func BenchmarkPushLarge(b *testing.B) {
	benchPush(b, movertest.Bulk{Seed: "large", Blobs: max(1, int(16*scale(b))), BlobSize: 128 << 20})
}

func BenchmarkPushSmall(b *testing.B) {
	benchPush(b, movertest.Bulk{Seed: "small", Files: max(100, int(100000*scale(b))), FileSize: 4096})
}

// BenchmarkNoopSmall: the destination already has everything.
func BenchmarkNoopSmall(b *testing.B) {
	src := b.TempDir()
	c := movertest.New(b, src)
	c.PublishBulk(movertest.Bulk{Seed: "small", Files: max(100, int(100000*scale(b))), FileSize: 4096})
	s := testenv.SSHD(b)
	root := b.TempDir()
	cache := filepath.Join(b.TempDir(), "checked")
	run := func() {
		d, err := DialSFTP(context.Background(), s.Config(), root, SFTPOptions{Conns: 4, Sessions: 8, Helper: os.Getenv("BCP_BENCH_HELPER")})
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		checked, _ := OpenChecked(cache)
		t0 := time.Now()
		res, err := Run(context.Background(), Options{Src: NewLocal(src), Dst: d, Checked: checked, VerifySignature: SignatureVerifier(c.AllowedSigners())})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("run: %v copied %d present %d", time.Since(t0), res.Copied, res.Present)
		if err := checked.Save(); err != nil {
			b.Fatal(err)
		}
	}
	run()
	b.ResetTimer()
	for range b.N {
		run()
	}
}
