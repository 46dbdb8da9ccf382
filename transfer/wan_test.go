package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/manifest"
)

// testLink is a slow link for the fault tests: slow enough that a push of
// a few MiB is still running when the test breaks the link, fast enough
// that the tests take seconds.
var testLink = testenv.Link{RTT: 10 * time.Millisecond, Bandwidth: 4 << 20}

// TestPushLinkFaults breaks the link between push and the destination's
// sshd while a file is on its way (one large file streamed; a batch of
// small ones), through the helper and over SFTP: reset (every connection
// gets a TCP RST) and stall (no byte passes any more, the connections stay
// open). Push must fail (exit 1) within seconds - a stall noticed by the
// keep-alive with an error that says so, not a hang - leave nothing under
// a final name that is not whole, show no set, and the next run over a
// healed link must complete the set.
func TestPushLinkFaults(t *testing.T) {
	s := testenv.SSHD(t)
	for _, data := range []struct {
		name  string
		bulk  movertest.Bulk
		under string // where the test waits for the first file to arrive
	}{
		{"mid-file", movertest.Bulk{Seed: "wanfile", Blobs: 1, BlobSize: 24 << 20}, manifest.ESDirName},
		{"mid-batch", movertest.Bulk{Seed: "wanbatch", Files: 3000, FileSize: 4096}, manifest.ObjectsDirName},
	} {
		srcDir := t.TempDir()
		c := movertest.New(t, srcDir)
		id := c.PublishBulk(data.bulk)
		for _, helper := range []string{bin, "none"} {
			for _, fault := range []string{"reset", "stall"} {
				name := data.name + "/" + fault + "/helper"
				if helper == "none" {
					name = data.name + "/" + fault + "/sftp"
				}
				t.Run(name, func(t *testing.T) {
					far, wan := s.OverWAN(t, testLink)
					dstDir := t.TempDir()
					args := append([]string{"push", "--allowed-signers", c.Allowed, "--remote-transfer", helper, "--log-level", "warn"}, sshArgs(far)...)
					args = append(args, srcDir, sftpURL(far, dstDir))

					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					// A short keep-alive for the broken run only: the rerun
					// keeps the default, so a busy machine cannot fail it.
					cmd := exec.CommandContext(ctx, bin, append([]string{"push", "--keepalive", "300ms"}, args[1:]...)...)
					cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir(t))
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					waitForFile(t, filepath.Join(dstDir, data.under), 30*time.Second)
					broke := time.Now()
					var err error
					if fault == "reset" {
						err = wan.Reset()
					} else {
						err = wan.Stall()
					}
					if err != nil {
						t.Fatal(err)
					}
					err = cmd.Wait()
					took := time.Since(broke)
					if ctx.Err() != nil {
						t.Fatalf("push did not end within 60s of the link breaking (%s): it hangs\nstderr: %s", fault, stderr.String())
					}
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() != 1 {
						t.Fatalf("push over a broken link (%s): %v, want exit 1\nstderr: %s", fault, err, stderr.String())
					}
					t.Logf("push ended %v after the %s: %s", took.Round(time.Millisecond), fault, lastLine(stderr.String()))
					if fault == "stall" && !strings.Contains(lastLine(stderr.String()), "link stalled") {
						t.Fatalf("push over a stalled link: its error does not say the link stalled:\n%s", stderr.String())
					}
					checkNothingPartial(t, srcDir, dstDir)
					if _, err := os.Stat(filepath.Join(dstDir, manifest.SetsDirName, id, manifest.SignatureFileName)); err == nil {
						t.Fatalf("set %s shows at the destination after a broken push", id)
					}

					if err := wan.Heal(); err != nil {
						t.Fatal(err)
					}
					out, errs, code := transfer(t, nil, args...)
					want(t, "push after the link healed", code, 0, out, errs)
					out, errs, code = transfer(t, nil, "verify", "--allowed-signers", c.Allowed, dstDir)
					want(t, "verify", code, 0, out, errs)
					if !strings.Contains(out, id) {
						t.Fatalf("verify after the rerun does not show %s: %s", id, out)
					}
				})
			}
		}
	}
}

// waitForFile waits until a regular file (any name, temporary ones
// included) exists below dir.
func waitForFile(t *testing.T, dir string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		found := false
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				found = true
				return filepath.SkipAll
			}
			return nil
		})
		if found {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no file arrived below %s within %v", dir, timeout)
}

// checkNothingPartial fails if any file at dst under a final name (not a
// temporary .tmp-*) differs from the source's file of the same path.
func checkNothingPartial(t *testing.T, src, dst string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.HasPrefix(d.Name(), manifest.TempPrefix) {
			return filepath.SkipDir // a temporary directory (SFTP alone's staging): no final names
		}
		if err != nil || !d.Type().IsRegular() || strings.HasPrefix(d.Name(), manifest.TempPrefix) {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		if rel == manifest.ChannelFileName || strings.HasPrefix(rel, manifest.ESDirName+"/index") {
			return nil
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		wantb, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, wantb) {
			t.Errorf("%s at the destination is not the source's file (%d of %d bytes): a partial file under its final name", rel, len(got), len(wantb))
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d whole files at the destination after the break", n)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// TestPullSlowLinkNotStalled: a pull over a slow link keeps the link busy
// from the server's side, and the answers to keep-alives queue behind
// the data; the link is slow, not stalled, and the pull must complete
// with a keep-alive far shorter than the time a keep-alive's answer waits.
func TestPullSlowLinkNotStalled(t *testing.T) {
	s := testenv.SSHD(t)
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.PublishBulk(movertest.Bulk{Seed: "wanpull", Blobs: 1, BlobSize: 6 << 20})
	far, _ := s.OverWAN(t, testenv.Link{RTT: 10 * time.Millisecond, Bandwidth: 1 << 20})
	args := append([]string{"pull", "--allowed-signers", c.Allowed, "--keepalive", "200ms"}, sshArgs(far)...)
	out, errs, code := transfer(t, nil, append(args, sftpURL(far, srcDir), dstDir)...)
	want(t, "pull over a slow link", code, 0, out, errs)
	out, errs, code = transfer(t, nil, "verify", "--allowed-signers", c.Allowed, dstDir)
	want(t, "verify", code, 0, out, errs)
	if !strings.Contains(out, id) {
		t.Fatalf("verify after the pull does not show %s: %s", id, out)
	}
}
