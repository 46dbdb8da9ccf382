package testenv

import (
	"os/exec"
	"testing"
)

// Tmpfs mounts a tmpfs of size (e.g. "4m") at a new directory for the
// test, a real file system that fills up: for full-disk tests. It needs
// root (mount(8)); without it the test fails under CI=true and skips
// otherwise. It is unmounted when the test ends.
func Tmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		RequireCI(t, "mounting a tmpfs ("+string(out)+")", "run the tests as root")
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}
