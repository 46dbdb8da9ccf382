package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/squirro-bcp/bcp/internal/mover/movertest"
	"github.com/squirro-bcp/bcp/internal/testenv"
	"github.com/squirro-bcp/bcp/internal/testkit"
)

// script runs an example script with the built transfer program and
// returns stdout, stderr and the exit code.
func script(t *testing.T, env []string, path string, args ...string) (string, string, int) {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", append([]string{abs}, args...)...)
	cmd.Env = append(os.Environ(), "TRANSFER="+bin, "XDG_CACHE_HOME="+cacheDir(t))
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		testenv.RequireCI(t, name, "apt-get install "+name)
	}
}

// TestRsyncExample runs examples/rsync/rsync-channel.sh for real: rsync
// over the test sshd, data first and sets/ last, then transfer verify.
func TestRsyncExample(t *testing.T) {
	requireTool(t, "rsync")
	srcDir, dstDir := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	c.Publish(movertest.Small("a", 3))
	// What must never travel.
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "locks", "backup.lock"), []byte("host 1"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "pins", "0000000001-20261125T120001Z"), []byte("{}"), 0o640))
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "es", "pending-index-9-abc"), []byte("x"), 0o640))
	testkit.Must(t, os.MkdirAll(filepath.Join(srcDir, "es", "tests-abc"), 0o750))
	testkit.Must(t, os.WriteFile(filepath.Join(srcDir, "objects", ".tmp-half"), []byte("x"), 0o640))
	s := testenv.SSHD(t)
	env := []string{
		"RSYNC_RSH=ssh -i " + s.KeyFile + " -o UserKnownHostsFile=" + s.KnownHosts + " -o StrictHostKeyChecking=yes -o BatchMode=yes -p " + fmt.Sprint(s.Port),
		"BCP_TRANSFER_ALLOWED_SIGNERS=" + c.Allowed,
	}
	src := fmt.Sprintf("%s@%s:%s", s.User, s.Host, srcDir)
	const rsyncScript = "../examples/rsync/rsync-channel.sh"
	out, errs, code := script(t, env, rsyncScript, src, dstDir)
	want(t, "rsync example", code, 0, out, errs)
	if !strings.Contains(out, "complete") {
		t.Fatalf("no verify report: %s", out)
	}
	for _, p := range []string{"locks/backup.lock", "pins", "es/pending-index-9-abc", "es/tests-abc", "objects/.tmp-half"} {
		if _, err := os.Stat(filepath.Join(dstDir, p)); err == nil {
			t.Errorf("%s was copied", p)
		}
	}
	// A newer set whose data has not all reached the source yet: the hook
	// says incomplete (4) and names what is missing.
	c.Publish(movertest.Small("b", 3))
	testkit.Must(t, os.Remove(filepath.Join(srcDir, "es", "snap-b.dat")))
	out, errs, code = script(t, env, rsyncScript, src, dstDir)
	want(t, "rsync example, incomplete", code, 4, out, errs)
	if !strings.Contains(out, "snap-b.dat") {
		t.Fatalf("the missing file is not named: %s", out)
	}
}

// TestSnapMirrorExample runs examples/snapmirror/snapmirror-wait.sh on a
// mirror that behaves as SnapMirror documents: the destination changes all
// at once (here: a new copy swapped in with one rename).
func TestSnapMirrorExample(t *testing.T) {
	srcDir, mirror := t.TempDir(), t.TempDir()
	c := movertest.New(t, srcDir)
	id1 := c.Publish(movertest.Small("a", 3))
	current := filepath.Join(mirror, "current")
	update := func(n int) {
		t.Helper()
		snap := filepath.Join(mirror, fmt.Sprintf("snap.%d", n))
		if out, err := exec.Command("cp", "-a", srcDir, snap).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		tmp := filepath.Join(mirror, ".tmp-link")
		if err := os.Symlink(filepath.Base(snap), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, current); err != nil { // the switch is atomic
			t.Fatal(err)
		}
	}
	update(1)
	env := []string{"BCP_TRANSFER_ALLOWED_SIGNERS=" + c.Allowed, "SNAPMIRROR_STATUS_CMD=true", "WAIT_TIMEOUT=0", "POLL_INTERVAL=1"}
	const smScript = "../examples/snapmirror/snapmirror-wait.sh"
	out, errs, code := script(t, env, smScript, current)
	want(t, "first set", code, 0, out, errs)
	if strings.TrimSpace(out) != id1 {
		t.Fatalf("printed %q, want %s", out, id1)
	}
	id2 := c.Publish(movertest.Small("b", 3))
	out, errs, code = script(t, env, smScript, current)
	want(t, "mirror not updated yet", code, 4, out, errs)
	out, errs, code = script(t, append(env, "SNAPMIRROR_STATUS_CMD=false"), smScript, current)
	want(t, "mirror busy", code, 4, out, errs)
	update(2)
	out, errs, code = script(t, env, smScript, current)
	want(t, "after the update", code, 0, out, errs)
	if strings.TrimSpace(out) != id2 {
		t.Fatalf("printed %q, want %s", out, id2)
	}
}

// TestCronExample checks every job line of examples/cron/transfer: five
// time fields, a user, and transfer commands that the program accepts.
func TestCronExample(t *testing.T) {
	data, err := os.ReadFile("../examples/cron/transfer")
	if err != nil {
		t.Fatal(err)
	}
	jobs := 0
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		f := strings.Fields(line)
		if len(f) < 7 || !strings.ContainsAny(f[0], "0123456789*") || strings.Contains(line, "=") && !strings.Contains(line, " bcp ") {
			continue
		}
		jobs++
		i := strings.Index(line, "transfer ")
		if strings.Contains(line, "rsync-channel.sh") {
			if !strings.Contains(line, "examples/rsync/rsync-channel.sh") {
				t.Errorf("rsync job does not run the example script: %s", line)
			}
			continue
		}
		if i < 0 {
			t.Errorf("job does not run transfer: %s", line)
			continue
		}
		cmd := strings.Fields(line[i:])
		sub := cmd[1]
		// The subcommand and its flags must exist.
		help, errs, code := transfer(t, nil, sub, "--help")
		if code != 0 {
			t.Errorf("%s: transfer %s --help exits %d: %s", line, sub, code, errs)
		}
		for _, a := range cmd[2:] {
			if strings.HasPrefix(a, "--") && !strings.Contains(help, strings.SplitN(a, "=", 2)[0]+" ") {
				t.Errorf("%s: transfer %s has no flag %s", line, sub, a)
			}
		}
	}
	if jobs < 3 {
		t.Fatalf("found %d cron jobs, want at least 3", jobs)
	}
}
