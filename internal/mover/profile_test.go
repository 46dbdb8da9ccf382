package mover

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/manifest/sshsig"
)

// BenchmarkPushChannel pushes an existing channel directory
// (BCP_PUSH_CHANNEL, signed with the keys in BCP_PUSH_SIGNERS) to a new
// local directory, for profiling a large push in process (go test -bench
// PushChannel -benchtime 1x -cpuprofile, -memprofile); bench/scale.sh
// measures the program itself.
func BenchmarkPushChannel(b *testing.B) {
	src, signers := os.Getenv("BCP_PUSH_CHANNEL"), os.Getenv("BCP_PUSH_SIGNERS")
	if src == "" || signers == "" {
		b.Skip("BCP_PUSH_CHANNEL and BCP_PUSH_SIGNERS name a channel and its allowed_signers file")
	}
	allowed, err := sshsig.LoadAllowedSigners(signers)
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		b.StopTimer()
		dst := filepath.Join(b.TempDir(), "dst")
		checked, err := OpenChecked(filepath.Join(b.TempDir(), "checked"))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if at, err := time.ParseDuration(os.Getenv("BCP_PUSH_HEAP_AT")); err == nil {
			// A heap profile in the middle of the run (-memprofile is taken at its end).
			time.AfterFunc(at, func() {
				f, err := os.Create(os.Getenv("BCP_PUSH_HEAP_FILE"))
				if err == nil {
					err = pprof.Lookup("heap").WriteTo(f, 0)
					if cerr := f.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					b.Errorf("heap profile: %v", err)
				}
			})
		}
		res, err := Run(context.Background(), Options{Src: NewLocal(src), Dst: NewLocal(dst), Checked: checked, VerifySignature: SignatureVerifier(allowed)})
		if err != nil {
			b.Fatal(err)
		}
		if err := checked.Save(); err != nil {
			b.Fatal(err)
		}
		b.Logf("run %d: copied %d of %d files", i, res.Copied, res.Files)
	}
}
