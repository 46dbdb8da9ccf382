package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
	"github.com/squirro-bcp/bcp/manifest"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "transfer-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "transfer")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build transfer: %v\n%s", err, out)
		os.Exit(1)
	}
	code := testenv.Main(m)
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// transfer runs the built binary with a fresh cache directory and returns
// stdout, stderr and the exit code.
func transfer(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// The helper on the test sshd's side is this same binary (the server
	// runs as the current user on this machine).
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+cacheDir(t), "BCP_TRANSFER_REMOTE_TRANSFER="+bin)
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

var cacheDirs = map[string]string{}

// cacheDir is one cache directory per test, so that runs within a test
// share the verified-file cache and wait's state as on a real host.
func cacheDir(t *testing.T) string {
	if d, ok := cacheDirs[t.Name()]; ok {
		return d
	}
	d := t.TempDir()
	cacheDirs[t.Name()] = d
	return d
}

func want(t *testing.T, what string, code, wantCode int, stdout, stderr string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, code, wantCode, stdout, stderr)
	}
}

func sftpURL(s *testenv.SSHServer, dir string) string {
	return fmt.Sprintf("sftp://%s@%s:%d%s", s.User, s.Host, s.Port, dir)
}

func sshArgs(s *testenv.SSHServer) []string {
	return []string{"--ssh-key", s.KeyFile, "--ssh-known-hosts", s.KnownHosts}
}

func TestPushPullVerifyStatus(t *testing.T) {
	srcDir, dstDir, pulled := t.TempDir(), t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 4))
	id := c.Publish(movertest.Small("b", 4))
	s := testenv.SSHD(t)
	common := append([]string{"--allowed-signers", c.Allowed}, sshArgs(s)...)

	out, errs, code := transfer(t, nil, append(append([]string{"push"}, common...), srcDir, sftpURL(s, dstDir))...)
	want(t, "push", code, 0, out, errs)
	if !strings.Contains(out, id) {
		t.Fatalf("push output does not name set %s: %s", id, out)
	}
	out, errs, code = transfer(t, nil, append(append([]string{"push"}, common...), srcDir, sftpURL(s, dstDir))...)
	want(t, "second push", code, 0, out, errs)
	if !strings.Contains(out, "up to date") {
		t.Fatalf("second push did something: %s", out)
	}
	out, errs, code = transfer(t, nil, "verify", "--allowed-signers", c.Allowed, dstDir)
	want(t, "verify", code, 0, out, errs)
	if !strings.Contains(out, "complete") || !strings.Contains(out, id) {
		t.Fatalf("verify output: %s", out)
	}
	out, errs, code = transfer(t, nil, append(append([]string{"pull"}, common...), sftpURL(s, dstDir), pulled)...)
	want(t, "pull", code, 0, out, errs)
	out, errs, code = transfer(t, nil, "verify", "--allowed-signers", c.Allowed, "--channel", "prod-to-bcp", pulled)
	want(t, "verify pulled", code, 0, out, errs)

	out, errs, code = transfer(t, nil, append([]string{"status"}, append(sshArgs(s), srcDir, sftpURL(s, dstDir))...)...)
	want(t, "status", code, 0, out, errs)
	if !strings.Contains(out, "in step") {
		t.Fatalf("status: %s", out)
	}
	id3 := c.Publish(movertest.Small("c", 2))
	out, errs, code = transfer(t, nil, append([]string{"status", "--json"}, append(sshArgs(s), srcDir, sftpURL(s, dstDir))...)...)
	want(t, "status behind", code, 0, out, errs)
	if !strings.Contains(out, `"behind": 1`) || !strings.Contains(out, id3) {
		t.Fatalf("status --json: %s", out)
	}
}

// TestPushHelperFallback: without the helper on the server (not installed,
// or switched off) push copies over SFTP, says why when it was asked for,
// and the result is the same.
func TestPushHelperFallback(t *testing.T) {
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 40))
	s := testenv.SSHD(t)
	for _, tc := range []struct {
		helper, notice string
	}{
		{"/nonexistent/transfer", "copying over SFTP"},
		{"none", ""},
	} {
		t.Run(tc.helper, func(t *testing.T) {
			dstDir := t.TempDir()
			args := append([]string{"push", "--allowed-signers", c.Allowed, "--remote-transfer", tc.helper}, sshArgs(s)...)
			out, errs, code := transfer(t, nil, append(args, srcDir, sftpURL(s, dstDir))...)
			want(t, "push", code, 0, out, errs)
			if tc.notice != "" && (!strings.Contains(errs, tc.notice) || !strings.Contains(errs, "/nonexistent/transfer")) {
				t.Fatalf("push without a helper did not say so: %s", errs)
			}
			if tc.notice == "" && strings.Contains(errs, "copying over SFTP") {
				t.Fatalf("push with the helper switched off warned: %s", errs)
			}
			out, errs, code = transfer(t, nil, "verify", "--allowed-signers", c.Allowed, dstDir)
			want(t, "verify", code, 0, out, errs)
			if !strings.Contains(out, id) {
				t.Fatalf("verify: %s", out)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 3))
	other := movertest.New(t, t.TempDir())
	s := testenv.SSHD(t)
	wrongKH := filepath.Join(t.TempDir(), "known_hosts")
	o := testenv.SSHD(t)
	kh, err := os.ReadFile(o.KnownHosts)
	testkit.Must(t, err)
	testkit.Must(t, os.WriteFile(wrongKH, bytes.Replace(kh, []byte(fmt.Sprint(o.Port)), []byte(fmt.Sprint(s.Port)), 1), 0o600))
	// A host that is down: known, but nothing listens at its port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	testkit.Must(t, err)
	downPort := l.Addr().(*net.TCPAddr).Port
	testkit.Must(t, l.Close())
	downKH := filepath.Join(t.TempDir(), "known_hosts")
	testkit.Must(t, os.WriteFile(downKH, bytes.Replace(kh, []byte(fmt.Sprint(o.Port)), []byte(fmt.Sprint(downPort)), 1), 0o600))

	broken := func(t *testing.T, damage func(dir string)) string {
		dir := t.TempDir()
		if out, err := exec.Command("cp", "-a", srcDir+"/.", dir).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		damage(dir)
		return dir
	}
	obj := func(dir string) string {
		return filepath.Join(dir, "objects", movertest.Sum(movertest.Content("atree0", 100))[:2], movertest.Sum(movertest.Content("atree0", 100)))
	}
	for _, tc := range []struct {
		name     string
		args     func(t *testing.T) []string
		code     int
		inOutput string
	}{
		{"verify complete", func(t *testing.T) []string { return []string{"verify", "--allowed-signers", c.Allowed, srcDir} }, 0, "complete"},
		{"verify incomplete lists what is missing", func(t *testing.T) []string {
			return []string{"verify", "--allowed-signers", c.Allowed, broken(t, func(d string) { testkit.Must(t, os.Remove(obj(d))) })}
		}, 4, "missing: objects/"},
		{"verify corrupt", func(t *testing.T) []string {
			return []string{"verify", "--allowed-signers", c.Allowed, broken(t, func(d string) { testkit.Must(t, os.WriteFile(obj(d), bytes.Repeat([]byte("x"), 100), 0o640)) })}
		}, 5, "corrupt"},
		{"verify untrusted key", func(t *testing.T) []string { return []string{"verify", "--allowed-signers", other.Allowed, srcDir} }, 5, "not authentic"},
		{"verify another channel", func(t *testing.T) []string {
			return []string{"verify", "--allowed-signers", c.Allowed, "--channel", "bcp-to-prod", srcDir}
		}, 6, "channel"},
		{"verify named set", func(t *testing.T) []string {
			return []string{"verify", "--allowed-signers", c.Allowed, "--set", id, srcDir}
		}, 0, id},
		{"verify empty dir", func(t *testing.T) []string { return []string{"verify", "--allowed-signers", c.Allowed, t.TempDir()} }, 4, ""},
		{"push without allowed signers", func(t *testing.T) []string { return []string{"push", srcDir, t.TempDir()} }, 2, "allowed-signers"},
		{"push bad url", func(t *testing.T) []string {
			return []string{"push", "--allowed-signers", c.Allowed, srcDir, "sftp://host-without-user/x"}
		}, 2, "user"},
		{"push wrong host key", func(t *testing.T) []string {
			return []string{"push", "--allowed-signers", c.Allowed, "--ssh-key", s.KeyFile, "--ssh-known-hosts", wrongKH, srcDir, sftpURL(s, t.TempDir())}
		}, 6, "SHA256:"},
		{"push to a host that is down", func(t *testing.T) []string {
			return []string{"push", "--allowed-signers", c.Allowed, "--ssh-key", s.KeyFile, "--ssh-known-hosts", downKH, srcDir,
				fmt.Sprintf("sftp://%s@%s:%d%s", s.User, s.Host, downPort, t.TempDir())}
		}, 1, "connect to the destination"},
		{"push incomplete source", func(t *testing.T) []string {
			return []string{"push", "--allowed-signers", c.Allowed, broken(t, func(d string) { testkit.Must(t, os.Remove(obj(d))) }), t.TempDir()}
		}, 4, "missing"},
		{"push corrupt source", func(t *testing.T) []string {
			return []string{"push", "--allowed-signers", c.Allowed, broken(t, func(d string) { testkit.Must(t, os.WriteFile(obj(d), bytes.Repeat([]byte("x"), 100), 0o640)) }), t.TempDir()}
		}, 5, "manifest"},
		{"push into another channel", func(t *testing.T) []string {
			dir := t.TempDir()
			if err := manifest.WriteChannel(dir, manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}); err != nil {
				t.Fatal(err)
			}
			return []string{"push", "--allowed-signers", c.Allowed, srcDir, dir}
		}, 6, "refusing"},
		{"unknown flag", func(t *testing.T) []string { return []string{"verify", "--nope", srcDir} }, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errs, code := transfer(t, nil, tc.args(t)...)
			want(t, tc.name, code, tc.code, out, errs)
			if !strings.Contains(out+errs, tc.inOutput) {
				t.Fatalf("output does not mention %q:\nstdout: %s\nstderr: %s", tc.inOutput, out, errs)
			}
		})
	}
}

func TestConfigFileAndEnv(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 2))
	cfg := filepath.Join(t.TempDir(), "transfer.toml")
	testkit.Must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("allowed-signers = %q\nworkers = 2\nchannel = \"prod-to-bcp\"\n", c.Allowed)), 0o600))
	out, errs, code := transfer(t, nil, "push", "--config", cfg, srcDir, dstDir)
	want(t, "push with config", code, 0, out, errs)
	out, errs, code = transfer(t, []string{"BCP_TRANSFER_ALLOWED_SIGNERS=" + c.Allowed}, "verify", dstDir)
	want(t, "verify with env", code, 0, out, errs)
}

func TestWait(t *testing.T) {
	dir := t.TempDir()
	c := movertest.New(t, dir)
	args := []string{"wait", "--allowed-signers", c.Allowed, "--timeout", "0", dir}
	out, errs, code := transfer(t, nil, args...)
	want(t, "wait on an empty channel", code, 4, out, errs)
	id := c.Publish(movertest.Small("a", 2))
	out, errs, code = transfer(t, nil, args...)
	want(t, "wait with a new set", code, 0, out, errs)
	if strings.TrimSpace(out) != id {
		t.Fatalf("wait printed %q, want %s", out, id)
	}
	out, errs, code = transfer(t, nil, args...)
	want(t, "wait with nothing newer than the last one seen", code, 4, out, errs)
	id2 := c.Publish(movertest.Small("b", 2))
	testkit.Must(t, os.Remove(filepath.Join(dir, "es", "snap-b.dat"))) // still arriving
	out, errs, code = transfer(t, nil, args...)
	want(t, "wait while the newer set is incomplete", code, 4, out, errs)
	testkit.Must(t, os.WriteFile(filepath.Join(dir, "es", "snap-b.dat"), movertest.Small("b", 2).ES["snap-b.dat"], 0o640))
	out, errs, code = transfer(t, nil, args...)
	want(t, "wait once it arrived", code, 0, out, errs)
	if strings.TrimSpace(out) != id2 {
		t.Fatalf("wait printed %q, want %s", out, id2)
	}
	out, errs, code = transfer(t, nil, "wait", "--allowed-signers", c.Allowed, "--after", id, "--timeout", "0", dir)
	want(t, "wait --after", code, 0, out, errs)
}

// TestRenamedSettings: transfer's former names identity and known-hosts
// (now ssh-key and ssh-known-hosts, as in backup and restore) are refused
// in the config file and the environment, naming the new name, and unknown
// on the command line; the new names reach an sftp:// end from the file.
func TestRenamedSettings(t *testing.T) {
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 2))
	s := testenv.SSHD(t)
	config := func(body string) string {
		p := filepath.Join(t.TempDir(), "transfer.toml")
		if err := os.WriteFile(p, []byte(fmt.Sprintf("allowed-signers = %q\n", c.Allowed)+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		env      []string
		args     []string
		code     int
		inOutput string
	}{
		{"old key in config file", nil,
			[]string{"--config", config(fmt.Sprintf("identity = %q\nssh-known-hosts = %q\n", s.KeyFile, s.KnownHosts))},
			2, `"identity" is now "ssh-key"`},
		{"old known-hosts key in config file", nil,
			[]string{"--config", config(fmt.Sprintf("ssh-key = %q\nknown-hosts = %q\n", s.KeyFile, s.KnownHosts))},
			2, `"known-hosts" is now "ssh-known-hosts"`},
		{"old env var", []string{"BCP_TRANSFER_KNOWN_HOSTS=" + s.KnownHosts},
			[]string{"--config", config(fmt.Sprintf("ssh-key = %q\n", s.KeyFile))},
			2, "BCP_TRANSFER_KNOWN_HOSTS is now BCP_TRANSFER_SSH_KNOWN_HOSTS"},
		{"old flag", nil,
			[]string{"--allowed-signers", c.Allowed, "--identity", s.KeyFile, "--ssh-known-hosts", s.KnownHosts},
			2, "identity"},
		{"missing known_hosts names the file", nil,
			[]string{"--config", config(fmt.Sprintf("ssh-key = %q\nssh-known-hosts = %q\n", s.KeyFile, filepath.Join(t.TempDir(), "no_known_hosts")))},
			1, "no_known_hosts"},
		{"new names in config file", nil,
			[]string{"--config", config(fmt.Sprintf("ssh-key = %q\nssh-known-hosts = %q\n", s.KeyFile, s.KnownHosts))},
			0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"push"}, tc.args...), srcDir, sftpURL(s, t.TempDir()))
			out, errs, code := transfer(t, tc.env, args...)
			want(t, tc.name, code, tc.code, out, errs)
			if !strings.Contains(errs, tc.inOutput) {
				t.Fatalf("stderr does not mention %q:\nstdout: %s\nstderr: %s", tc.inOutput, out, errs)
			}
		})
	}
}

// TestPushNoCompleteSetExitCodes: when push can forward no set, its exit
// code says why the newest could not be, as verify's does for the same
// directory: not signed yet 4, signed by a key not in allowed_signers 5,
// meant for another channel 6.
func TestPushNoCompleteSetExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		make   func(t *testing.T, c *movertest.Channel) (allowed string)
		code   int
		reason string
	}{
		{"unsigned", func(t *testing.T, c *movertest.Channel) string {
			id := c.Publish(movertest.Small("a", 2))
			testkit.Must(t, os.Remove(manifest.Layout{Root: c.Root}.SignaturePath(id)))
			return c.Allowed
		}, 4, "no signature yet"},
		{"untrusted key", func(t *testing.T, c *movertest.Channel) string {
			c.Publish(movertest.Small("a", 2))
			c.Publish(movertest.Small("b", 2))
			return movertest.New(t, t.TempDir()).Allowed
		}, 5, "not in allowed_signers"},
		{"another channel", func(t *testing.T, c *movertest.Channel) string {
			c.PublishFor(manifest.Channel{Name: "bcp-to-prod", Source: "bcp", Target: "prod"}, movertest.Small("a", 2))
			return c.Allowed
		}, 6, "bcp-to-prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srcDir := t.TempDir()
			allowed := tc.make(t, movertest.New(t, srcDir))
			out, errs, code := transfer(t, nil, "push", "--allowed-signers", allowed, srcDir, t.TempDir())
			want(t, "push", code, tc.code, out, errs)
			if !strings.Contains(errs, tc.reason) {
				t.Fatalf("push does not say why (%q): %s", tc.reason, errs)
			}
			out, errs, code = transfer(t, nil, "verify", "--allowed-signers", allowed, srcDir)
			want(t, "verify", code, tc.code, out, errs)
		})
	}
}

// TestVerifyKeepsPushCache: push and verify read one config file, whose
// cache names push's verified-file cache; verify keeps its own cache
// beside it and leaves push's alone, so the next push need not hash
// everything at the destination again.
func TestVerifyKeepsPushCache(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 3))
	cache := filepath.Join(t.TempDir(), "transfer-cache")
	cfg := filepath.Join(t.TempDir(), "transfer.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("allowed-signers = %q\ncache = %q\n", c.Allowed, cache)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := transfer(t, nil, "push", "--config", cfg, srcDir, dstDir)
	want(t, "push", code, 0, out, errs)
	pushed, err := os.ReadFile(cache)
	if err != nil {
		t.Fatalf("push left no cache: %v", err)
	}
	for _, cmd := range []string{"verify", "wait"} {
		out, errs, code = transfer(t, nil, cmd, "--config", cfg, dstDir)
		want(t, cmd, code, 0, out, errs)
		if got, err := os.ReadFile(cache); err != nil || !bytes.Equal(got, pushed) {
			t.Fatalf("%s changed push's cache %s (err %v)", cmd, cache, err)
		}
	}
	if _, err := os.Stat(cache + ".verified"); err != nil {
		t.Fatalf("verify kept no cache of its own: %v", err)
	}
	out, errs, code = transfer(t, nil, "push", "--config", cfg, srcDir, dstDir)
	want(t, "second push", code, 0, out, errs)
	if !strings.Contains(out, "up to date") {
		t.Fatalf("second push: %s", out)
	}
}

// TestPushNewSetReportsNoDamage: Elasticsearch rewrites es/index.latest
// with every snapshot, so each new set brings a new version of it; push
// reports that as an update, not as a damaged file replaced. A file damaged
// at the destination is still reported.
func TestPushNewSetReportsNoDamage(t *testing.T) {
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 3))
	s := testenv.SSHD(t)
	args := append(append([]string{"push", "--allowed-signers", c.Allowed}, sshArgs(s)...), srcDir, sftpURL(s, dstDir))
	out, errs, code := transfer(t, nil, args...)
	want(t, "push", code, 0, out, errs)
	c.Publish(movertest.Small("b", 3))
	out, errs, code = transfer(t, nil, args...)
	want(t, "push of a new set", code, 0, out, errs)
	if strings.Contains(out, "damaged") {
		t.Fatalf("push of a new set reports damage: %s", out)
	}
	obj := filepath.Join(dstDir, manifest.ObjectRel(movertest.Sum(movertest.Content("btree0", 100))))
	b, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(obj, b, 0o640); err != nil {
		t.Fatal(err)
	}
	testkit.Must(t, os.Chtimes(obj, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)))
	out, errs, code = transfer(t, nil, args...)
	want(t, "push after damage", code, 0, out, errs)
	if !strings.Contains(out, "1 damaged") {
		t.Fatalf("push after damage does not report it: %s", out)
	}
}

// TestPushAbortNoHelperWarning: a push that ends early (here: nothing
// complete at the source) while the helper on the server is still
// starting does not claim the helper is missing.
func TestPushAbortNoHelperWarning(t *testing.T) {
	srcDir := t.TempDir()
	c := movertest.New(t, srcDir)
	id := c.Publish(movertest.Small("a", 2))
	testkit.Must(t, os.Remove(manifest.Layout{Root: srcDir}.SignaturePath(id)))
	s := testenv.SSHD(t)
	for range 3 { // it was a race: try a few times
		args := append(append([]string{"push", "--allowed-signers", c.Allowed}, sshArgs(s)...), srcDir, sftpURL(s, t.TempDir()))
		out, errs, code := transfer(t, nil, args...)
		want(t, "push", code, 4, out, errs)
		if strings.Contains(errs, "copying over SFTP") {
			t.Fatalf("push that ended early warns of a missing helper: %s", errs)
		}
	}
}

// TestExitCodeDocs: a set whose signature is not there yet is incomplete
// (4: a mover may still be copying), not an integrity failure (5); the
// README's exit table and every --help that lists codes say so, as
// manifest/DESIGN.md does.
func TestExitCodeDocs(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := func(code string) string {
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.HasPrefix(l, "| "+code+" |") {
				return l
			}
		}
		t.Fatalf("README has no exit table row for %s", code)
		return ""
	}
	if r4, r5 := row("4"), row("5"); !strings.Contains(r4, "signature") || strings.Contains(r5, "missing") {
		t.Errorf("README's exit table puts a missing signature under 5:\n%s\n%s", r4, r5)
	}
	for _, cmd := range []string{"push", "pull", "verify", "wait"} {
		out, errs, code := transfer(t, nil, cmd, "--help")
		want(t, cmd+" --help", code, 0, out, errs)
		help := strings.Join(strings.Fields(out), " ")
		if !strings.Contains(help, "4 no complete set yet or incomplete, a signature not there yet included") || strings.Contains(help, "unsigned") {
			t.Errorf("%s --help does not say a missing signature is 4:\n%s", cmd, out)
		}
	}
}
