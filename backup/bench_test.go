package main

// Benchmarks (not tests): run with
//
//	cd backup && go test -run '^$' -bench . -benchtime 1x -timeout 60m
//
// Each benchmark sets up once and then times `rounds` alternating runs of
// backup and the reference tool per b.N (so -benchtime 1x is enough).
//
// BenchmarkFilesSecondRun: the files stage of a second run with nothing
// changed on a 100k-file tree, next to `rsync -a` with nothing to do on the
// same tree. BenchmarkMySQLStage: the MySQL stage next to
// `mysqldump | gzip > file` on the same database.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
	"github.com/squirro-bcp/bcp/manifest/objects"
)

// hashOnly is the first run's putter in the benchmark set-up: it names the
// content without storing it (the second run never opens these objects).
type hashOnly struct{}

func (hashOnly) Put(ctx context.Context, r io.Reader) (manifest.Ref, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return manifest.Ref{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, err
}

// rounds is how many timed runs of each side one iteration makes.
const rounds = 3

func makeManyFiles(b *testing.B, dir string, n int) {
	b.Helper()
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d.bin", i))
		if i%100 == 0 {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, []byte(fmt.Sprintf("file %d %s", i, time.Now())), 0o640); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilesSecondRun(b *testing.B) {
	const n = 100_000
	if _, err := exec.LookPath("rsync"); err != nil {
		testenv.RequireCI(b, "rsync", "apt-get install rsync")
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "storage")
	src0 := src
	makeManyFiles(b, src, n)
	ctx := context.Background()
	// First run (not timed): make the capture cache as a published set
	// would have left it; its objects are only named (hashOnly), since the
	// second run never opens them.
	first, cache, _, err := filetree.Capture(ctx, filetree.CaptureOptions{Name: "storage", Source: &filetree.LocalSource{Dir: src}, Store: hashOnly{}})
	if err != nil || first.Files != n {
		b.Fatal(first, err)
	}
	cfg := &config{StorageRoot: src, StateDir: filepath.Join(dir, "state"), Workers: 4}
	const setID = "0000000001-20260101T000000Z"
	cache.SetID = setID
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		b.Fatal(err)
	}
	if err := cache.Save(filepath.Join(cfg.StateDir, cacheFile("bench", "storage"))); err != nil {
		b.Fatal(err)
	}
	sets := []manifest.SetInfo{{ID: setID, Sequence: 1, HasManifest: true, HasSignature: true}}
	store := objects.New(filepath.Join(dir, "objects"))
	dst := filepath.Join(dir, "rsync-copy")
	if out, err := exec.Command("rsync", "-a", src+"/", dst+"/").CombinedOutput(); err != nil {
		b.Fatalf("rsync: %v %s", err, out)
	}
	opens, _ := countReads(b)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The two are timed alternately in one loop, so that load from other
	// processes on the machine hits both alike.
	var backupT, rsyncT time.Duration
	runs := b.N * rounds
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		trees, _, read, err := captureFiles(ctx, cfg, "bench", sets, store, manifest.NoProgress{}, log)
		if err != nil || read != 0 || trees[0].Files != n {
			b.Fatal(trees, read, err)
		}
		backupT += time.Since(t0)
		t0 = time.Now()
		if out, err := exec.Command("rsync", "-a", src0+"/", dst+"/").CombinedOutput(); err != nil {
			b.Fatalf("rsync: %v %s", err, out)
		}
		rsyncT += time.Since(t0)
	}
	if opens.Load() != 0 {
		b.Fatalf("second run opened %d files", opens.Load())
	}
	b.ReportMetric(backupT.Seconds()/float64(runs), "backup-files-s/run")
	b.ReportMetric(rsyncT.Seconds()/float64(runs), "rsync-a-noop-s/run")
	b.ReportMetric(float64(n), "files")
}

func BenchmarkMySQLStage(b *testing.B) {
	m := testenv.MariaDB(b)
	db := m.DB(b)
	for _, q := range []string{
		"CREATE DATABASE squirro",
		"CREATE TABLE squirro.items (id INT AUTO_INCREMENT PRIMARY KEY, project INT, title VARCHAR(200), body TEXT, created DATETIME)",
		"INSERT INTO squirro.items (project, title, body, created) VALUES (1, 'seed', REPEAT('lorem ipsum dolor sit amet ', 20), NOW())",
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(q, err)
		}
	}
	for i := 0; i < 18; i++ { // 2^18 = 262144 rows, about 150 MB of SQL
		if _, err := db.Exec("INSERT INTO squirro.items (project, title, body, created) SELECT project+1, CONCAT(title, id), CONCAT(body, id), NOW() FROM squirro.items"); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(m.Password), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg := &config{Stages: []string{stageMySQL}}
	cfg.MySQL.Host, cfg.MySQL.Port, cfg.MySQL.User, cfg.MySQL.PasswordFile = m.Host, m.Port, m.User, pw
	store := objects.New(filepath.Join(dir, "objects"))
	defaults := m.Defaults(b)
	out := filepath.Join(dir, "dump.sql.gz")
	sh := fmt.Sprintf("mysqldump --defaults-extra-file=%s --single-transaction --routines --triggers --events --databases squirro | gzip > %s", defaults, out)
	var backupT, gzipT time.Duration
	var size int64
	runs := b.N * rounds
	for i := 0; i < runs; i++ {
		t0 := time.Now()
		d, err := dumpMySQL(context.Background(), cfg, []string{"squirro"}, store, manifest.NoProgress{})
		if err != nil {
			b.Fatal(err)
		}
		size = d.Object.Size
		backupT += time.Since(t0)
		t0 = time.Now()
		if o, err := exec.Command("bash", "-o", "pipefail", "-c", sh).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, o)
		}
		gzipT += time.Since(t0)
	}
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(backupT.Seconds()/float64(runs), "backup-mysql-s/run")
	b.ReportMetric(gzipT.Seconds()/float64(runs), "mysqldump-gzip-s/run")
	b.ReportMetric(float64(size), "zstd-bytes")
	b.ReportMetric(float64(fi.Size()), "gzip-bytes")
}
