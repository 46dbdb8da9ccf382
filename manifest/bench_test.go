package manifest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// benchSet publishes one set whose tree holds n files of size bytes each
// (random content) and returns the world and the object paths.
func benchSet(b *testing.B, n int, size int64) (*world, []string) {
	b.Helper()
	k := newKey(b, "ed25519")
	root := filepath.Join(b.TempDir(), "prod-to-bcp")
	w := &world{Root: root, Layout: manifest.Layout{Root: root}, Key: k}
	if err := manifest.WriteChannel(root, testChannel); err != nil {
		b.Fatal(err)
	}
	w.Store = objects.New(w.Layout.ObjectsDir())
	ctx := context.Background()
	rng := rand.NewChaCha8([32]byte{1})
	entries := make([]manifest.Entry, 0, n)
	paths := make([]string, 0, n)
	buf := make([]byte, size)
	for i := range n {
		// Written directly, without the store's fsyncs, to keep the
		// set-up of 100k files short; the content is what Put would store.
		_, _ = rng.Read(buf) // ChaCha8 never fails
		sum := sha256.Sum256(buf)
		ref := manifest.Ref{SHA256: hex.EncodeToString(sum[:]), Size: size}
		p := w.Layout.ObjectPath(ref.SHA256)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o600); err != nil {
			b.Fatal(err)
		}
		entries = append(entries, manifest.Entry{Path: fmt.Sprintf("f%08d", i), Type: manifest.TypeFile, Mode: 0o644, MTime: created0, Size: ref.Size, Object: ref.SHA256})
		paths = append(paths, w.Layout.ObjectPath(ref.SHA256))
	}
	list, err := manifest.PutList(ctx, w.Store, func(lw *manifest.ListWriter) error {
		for _, e := range entries {
			if err := lw.WriteEntry(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	w.Manifest = &manifest.Manifest{
		Version: "1.1", Channel: testChannel, Sequence: 1, Created: created0,
		Producer: manifest.Producer{Host: "h", Program: "bench"},
		Trees:    []manifest.Tree{{Name: "storage", List: list, Files: int64(n), Bytes: int64(n) * size}},
	}
	w.Allowed = allowed(b, allowedLine(k))
	if w.SetID, err = manifest.Publish(ctx, w.Layout, w.Manifest, k.Signer); err != nil {
		b.Fatal(err)
	}
	return w, paths
}

var benchSmall = flag.Int("bench.small", 100000, "number of small files in BenchmarkVerify/small")

// BenchmarkVerify measures Verify (all CPUs, no cache) on 2 GiB of objects
// (16 x 128 MiB) and on 100k small files (1 KiB), from the page cache, and
// runs coreutils sha256sum over the same files for the ratio. Data is
// generated in a temporary directory and deleted afterwards.
//
//	go test -run '^$' -bench BenchmarkVerify -benchtime 3x ./
func BenchmarkVerify(b *testing.B) {
	for _, c := range []struct {
		name string
		n    int
		size int64
	}{
		{"large-2GiB", 16, 128 << 20},
		{"small-100k", *benchSmall, 1 << 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, paths := benchSet(b, c.n, c.size)
			total := int64(c.n) * c.size
			// Warm the page cache once.
			if _, err := manifest.Verify(context.Background(), w.opts()); err != nil {
				b.Fatal(err)
			}
			b.Run("verify", func(b *testing.B) {
				b.SetBytes(total)
				start := time.Now()
				for b.Loop() {
					rep, err := manifest.Verify(context.Background(), w.opts())
					if err != nil || rep.Hashed < int64(c.n) {
						b.Fatalf("%v %+v", err, rep)
					}
				}
				b.ReportMetric(float64(c.n)*float64(b.N)/time.Since(start).Seconds(), "files/s")
				b.ReportMetric(float64(runtime.NumCPU()), "cpus")
			})
			b.Run("sha256sum", func(b *testing.B) {
				if _, err := exec.LookPath("sha256sum"); err != nil {
					b.Skip("no sha256sum")
				}
				b.SetBytes(total)
				start := time.Now()
				for b.Loop() {
					// One process over all files (xargs batches the names).
					cmd := exec.Command("xargs", "-0", "sha256sum")
					cmd.Stdin = nulList(paths)
					var stderr strings.Builder
					cmd.Stdout, cmd.Stderr = io.Discard, &stderr
					if err := cmd.Run(); err != nil {
						b.Fatalf("sha256sum: %v %s", err, stderr.String())
					}
				}
				b.ReportMetric(float64(c.n)*float64(b.N)/time.Since(start).Seconds(), "files/s")
			})
		})
	}
}

func nulList(paths []string) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for _, p := range paths {
			if _, err := io.WriteString(pw, p+"\x00"); err != nil {
				break
			}
		}
		_ = pw.Close()
	}()
	return pr
}

// BenchmarkSHA256OneCore is the reference for BenchmarkVerify/large: the
// SHA-256 speed of one core over data in memory. Verification of large
// objects should approach twice this on two cores.
func BenchmarkSHA256OneCore(b *testing.B) {
	buf := make([]byte, 64<<20)
	_, _ = rand.NewChaCha8([32]byte{2}).Read(buf) // never fails
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		sha256.Sum256(buf)
	}
}

// BenchmarkReadEntries measures the streaming list parser (strict JSON and
// validation of every line), which Verify runs twice per list.
func BenchmarkReadEntries(b *testing.B) {
	var buf strings.Builder
	lw := manifest.NewListWriter(&buf)
	obj := strings.Repeat("9f", 32)
	for i := range 100000 {
		if err := lw.WriteEntry(manifest.Entry{Path: fmt.Sprintf("d%03d/f%08d.pdf", i/1000, i), Type: manifest.TypeFile, Mode: 0o640, UID: 999, GID: 999, MTime: created0, Size: 12345, Object: obj}); err != nil {
			b.Fatal(err)
		}
	}
	if err := lw.Flush(); err != nil {
		b.Fatal(err)
	}
	data := buf.String()
	b.SetBytes(int64(len(data)))
	start := time.Now()
	for b.Loop() {
		if err := manifest.ReadEntries(strings.NewReader(data), func(manifest.Entry) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100000*float64(b.N)/time.Since(start).Seconds(), "lines/s")
}
