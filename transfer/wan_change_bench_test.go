package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// benchChange is BenchmarkWAN's "change" case: a 1% change of a large
// storage set - 1,000,000 files of about 900 bytes at BCP_BENCH_SCALE=1,
// 1000 to a directory, made and captured as bench/scale.sh does
// (internal/cmd/scalebench) - brought to a destination that holds the
// previous set, across link, beside `rsync -a` of the channel over the
// same link. Every destination is filled first through the same proxy
// without delay or limit (the same address, so the same host key entry
// and the same push cache); then 1% of the files change (the first ones:
// new documents arrive together), a new set is captured, the link takes
// its shape, and rsync, push through the helper and push over SFTP alone
// each bring their destination up to date. The SFTP destination is filled
// by the helper too (what it already holds, not how it got there, is
// what this case is about).
func benchChange(b *testing.B, sc float64, link testenv.Link) {
	n := max(5000, int(1e6*sc))
	dir := b.TempDir()
	sb := filepath.Join(dir, "scalebench")
	run := func(name string, args ...string) {
		b.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "build", "-o", sb, "github.com/squirro-bcp/bcp/internal/cmd/scalebench")
	key, signer := testkit.SigningKey(b, dir, "bench")
	allowed := testkit.WriteAllowedSigners(b, filepath.Join(dir, "allowed_signers"), testkit.AllowedLine("bench", signer.PublicKey()))
	tree, ch, capCache := filepath.Join(dir, "tree"), filepath.Join(dir, "ch"), filepath.Join(dir, "capture-cache")
	run(sb, "gen", tree, fmt.Sprint(n))
	run(sb, "capture", ch, tree, capCache, key)

	sshd, wan := testenv.SSHD(b).OverWAN(b, testenv.Link{})
	w := &benchWorld{sshd: sshd, src: ch, allowed: allowed}
	work := b.TempDir()
	tcache, scache := b.TempDir(), b.TempDir()
	rdst, tdst, sdst := fresh(b, work, "rsync"), fresh(b, work, "transfer"), fresh(b, work, "sftp")
	w.rsync(b, rdst)
	w.pushWith(b, tcache, tdst, bin)
	w.pushWith(b, scache, sdst, bin)

	run(sb, "change", tree, "100")
	run(sb, "capture", ch, tree, capCache, key)
	if err := wan.Reshape(link); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		dr := w.rsync(b, rdst)
		dt := w.pushWith(b, tcache, tdst, bin)
		ds := w.pushWith(b, scache, sdst, "none")
		b.ReportMetric(float64(n), "files")
		b.ReportMetric(dr.Seconds(), "rsync-s")
		b.ReportMetric(dt.Seconds(), "transfer-s")
		b.ReportMetric(ds.Seconds(), "sftp-s")
		b.ReportMetric(dr.Seconds()/dt.Seconds(), "x-rsync")
		b.ReportMetric(dr.Seconds()/ds.Seconds(), "sftp-x-rsync")
	}
	b.StopTimer()
	// Every destination now holds the new set.
	sets, err := os.ReadDir(filepath.Join(ch, "sets"))
	if err != nil || len(sets) == 0 {
		b.Fatalf("no sets in the channel: %v", err)
	}
	newest := sets[len(sets)-1].Name()
	for _, d := range []string{rdst, tdst, sdst} {
		if _, err := os.Stat(filepath.Join(d, "sets", newest, "manifest.json")); err != nil {
			b.Fatalf("%s lacks the new set: %v", d, err)
		}
	}
}
