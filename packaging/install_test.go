package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The packages are installed into this machine as seen through an overlay
// (a sandbox): dpkg, rpm, groupadd, man and bash run as they would on the
// machine, in a chroot of an overlay mount whose lower layer is / and whose
// upper layer is a test directory, in a mount namespace of their own. So /
// is never changed (other tests running meanwhile must not find a
// /usr/bin/transfer they did not ask for), and nothing is left behind.

const (
	oldVersion, oldCommit = "0.0.1~test1", "1111111test1"
	newVersion, newCommit = "0.0.1~test2", "2222222test2"
)

// zsh's directories for packaged completion: Debian's and RHEL's; the one
// place where the two packages' layouts differ.
const debZsh, rpmZsh = "/usr/share/zsh/vendor-completions", "/usr/share/zsh/site-functions"

var configs = []string{"/etc/squirro-bcp/backup.toml", "/etc/squirro-bcp/transfer.toml", "/etc/squirro-bcp/restore.toml"}

// need fails the test under CI=true and skips it otherwise: the same rule
// as internal/testenv.RequireCI, which this module does not import (it
// would pull the test world's dependencies into the packaging module).
func need(t *testing.T, ok bool, what, how string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this fails instead of skipping): %s", what, how)
	}
	t.Skipf("%s: %s (under CI=true this fails)", what, how)
}

type pkgs struct{ deb, rpm string }

// buildBoth builds the packages of two versions for this machine.
func buildBoth(t *testing.T) (old, new pkgs) {
	t.Helper()
	need(t, os.Geteuid() == 0, "not root", "run make package-test as root (it mounts the sandbox the packages are installed in)")
	for _, tool := range []string{"go", "dpkg", "dpkg-deb", "rpm", "man", "unshare", "chroot", "mount"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool+" is missing", "scripts/setup.sh installs it (apt-get install man-db rpm)")
	}
	out := t.TempDir()
	build := func(version, commit string) pkgs {
		built, err := Build(context.Background(), Options{Root: "..", Out: filepath.Join(out, version), Version: version, Commit: commit, Arches: []string{runtime.GOARCH}})
		if err != nil {
			t.Fatal(err)
		}
		var p pkgs
		for _, f := range built {
			switch filepath.Ext(f) {
			case ".deb":
				p.deb = f
			case ".rpm":
				p.rpm = f
			}
		}
		if p.deb == "" || p.rpm == "" {
			t.Fatalf("Build returned %v, want a .deb and an .rpm", built)
		}
		return p
	}
	return build(oldVersion, oldCommit), build(newVersion, newCommit)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPackages(t *testing.T) {
	old, new := buildBoth(t)
	t.Run("deb", func(t *testing.T) { testDeb(t, old, new) })
	t.Run("rpm", func(t *testing.T) { testRPM(t, old, new) })
	t.Run("layout", func(t *testing.T) { testLayout(t, new) })
}

// sandbox is this machine with the changes of the commands run in it kept
// in its upper layer.
type sandbox struct{ dir string }

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	sb := &sandbox{dir: t.TempDir()}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(sb.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// man-db's trigger would rebuild the whole man index on every dpkg
	// call; man -w and man need no index.
	sb.run(t, "rm", "-f", "/var/lib/man-db/auto-update")
	return sb
}

// mountScript mounts the overlay, /dev and /proc in a new mount namespace
// and runs "$@" chrooted there; the namespace and its mounts end with it.
const mountScript = `set -e
d=$1; shift
mount -t overlay overlay -o lowerdir=/,upperdir=$d/upper,workdir=$d/work $d/merged
mount --rbind /dev $d/merged/dev
mount -t proc proc $d/merged/proc
exec chroot $d/merged "$@"`

// run runs a command in the sandbox and returns its stdout.
func (sb *sandbox) run(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", mountScript, "sh", sb.dir}, args...)...)
}

// path is where a file the sandbox created or changed is on the machine.
func (sb *sandbox) path(p string) string { return filepath.Join(sb.dir, "upper", p) }

func (sb *sandbox) exists(p string) bool {
	_, err := os.Lstat(sb.path(p))
	return err == nil
}

// testDeb installs, upgrades, removes and purges the .deb.
func testDeb(t *testing.T, old, new pkgs) {
	sb := newSandbox(t)
	sb.run(t, "dpkg", "-i", old.deb)
	checkInstalled(t, sb, debZsh, oldVersion, oldCommit)
	if v := sb.run(t, "dpkg-query", "-W", "-f=${Version}", "squirro-bcp"); v != oldVersion {
		t.Errorf("dpkg says version %q, want %q (the one --version prints)", v, oldVersion)
	}

	edited := editConfig(t, sb)
	pristine := readFile(t, sb.path(configs[2]))
	sb.run(t, "dpkg", "-i", new.deb)
	checkInstalled(t, sb, debZsh, newVersion, newCommit)
	if got := readFile(t, sb.path(configs[0])); got != edited {
		t.Errorf("upgrade changed the edited %s:\n%s", configs[0], got)
	}
	if got := readFile(t, sb.path(configs[2])); got != pristine {
		t.Errorf("upgrade changed %s, which nobody edited", configs[2])
	}

	sb.run(t, "dpkg", "-r", "squirro-bcp")
	if sb.exists("/usr/bin/backup") {
		t.Error("after removal /usr/bin/backup is still there")
	}
	if got := readFile(t, sb.path(configs[0])); got != edited {
		t.Errorf("removal (not purge) did not leave the edited %s:\n%s", configs[0], got)
	}
	for _, c := range configs[1:] {
		if !sb.exists(c) {
			t.Errorf("removal (not purge) did not leave %s", c)
		}
	}
	if s := sb.run(t, "dpkg-query", "-W", "-f=${Status}", "squirro-bcp"); s != "deinstall ok config-files" {
		t.Errorf("after removal dpkg says %q, want deinstall ok config-files", s)
	}

	sb.run(t, "dpkg", "--purge", "squirro-bcp")
	if sb.exists("/etc/squirro-bcp") {
		t.Error("after purge /etc/squirro-bcp is still there")
	}
}

// testRPM does the same with the .rpm: %config(noreplace) keeps the edited
// file on upgrade and saves it as .rpmsave on removal.
func testRPM(t *testing.T, old, new pkgs) {
	sb := newSandbox(t)
	sb.run(t, "rpm", "--initdb")
	sb.run(t, "rpm", "-i", "--nodeps", old.rpm)
	checkInstalled(t, sb, rpmZsh, oldVersion, oldCommit)
	edited := editConfig(t, sb)
	sb.run(t, "rpm", "-U", "--nodeps", new.rpm)
	checkInstalled(t, sb, rpmZsh, newVersion, newCommit)
	if got := readFile(t, sb.path(configs[0])); got != edited {
		t.Errorf("rpm upgrade changed the edited %s:\n%s", configs[0], got)
	}
	sb.run(t, "rpm", "-e", "--nodeps", "squirro-bcp")
	if sb.exists("/usr/bin/backup") {
		t.Error("after rpm -e /usr/bin/backup is still there")
	}
	if got := readFile(t, sb.path(configs[0]+".rpmsave")); got != edited {
		t.Errorf("rpm -e did not keep the edited %s as .rpmsave:\n%s", configs[0], got)
	}
}

// editConfig changes backup.toml as an operator would and returns it.
func editConfig(t *testing.T, sb *sandbox) string {
	t.Helper()
	path := sb.path(configs[0])
	edited := readFile(t, path) + "\n# edited by the operator\nsite = \"prod-edited\"\n"
	if err := os.WriteFile(path, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	return edited
}

// checkInstalled checks an installed sandbox: --version, the man pages, the
// completion, owners and modes, the units' programs, no cron job.
func checkInstalled(t *testing.T, sb *sandbox, zshDir, version, commit string) {
	t.Helper()
	for _, p := range programs {
		got := sb.run(t, p, "--version")
		if want := p + " version " + version + " (commit " + commit + ")\n"; got != want {
			t.Errorf("%s --version printed %q, want %q", p, got, want)
		}
		if got := strings.TrimSpace(sb.run(t, "man", "-w", p)); got != "/usr/share/man/man1/"+p+".1.gz" {
			t.Errorf("man -w %s found %q, want the packaged page", p, got)
		}
		page := sb.run(t, "env", "MANPAGER=cat", "MANWIDTH=100", "man", p)
		if words := strings.Join(strings.Fields(page), " "); !strings.Contains(words, "NAME "+p+" - ") {
			t.Errorf("man %s does not show the page:\n%s", p, page)
		}
		// Every command the program offers (it lists them for completion)
		// has its section in the page.
		for _, c := range strings.Fields(sb.run(t, p, "--generate-bash-completion")) {
			if c != "help" && c != "h" && !strings.Contains(page, "\n"+c+"\n") {
				t.Errorf("man %s has no section for the command %s", p, c)
			}
		}
		zsh := readFile(t, sb.path(filepath.Join(zshDir, "_"+p)))
		if !strings.HasPrefix(zsh, "#compdef "+p+"\n") {
			t.Errorf("zsh completion of %s starts %q, want #compdef %s", p, strings.SplitN(zsh, "\n", 2)[0], p)
		}
	}
	// bash completion, as bash runs it, against the installed programs.
	for _, c := range []struct{ words, cur, want string }{
		{"backup", "pru", "prune"},
		{"transfer push", "--ssh-kn", "--ssh-known-hosts"},
		{"restore", "pro", "promote"},
	} {
		words := append(strings.Fields(c.words), c.cur)
		script := `source /usr/share/bash-completion/completions/` + words[0] + `; COMP_WORDS=(` + strings.Join(words, " ") +
			`); COMP_CWORD=` + strconv.Itoa(len(words)-1) + `; _squirro_bcp_complete; printf '%s\n' "${COMPREPLY[@]}"`
		if got := strings.TrimSpace(sb.run(t, "bash", "-c", script)); got != c.want {
			t.Errorf("bash completion of %q %q: %q, want %q", c.words, c.cur, got, c.want)
		}
	}
	// Owners and modes.
	want := map[string]string{
		"/etc/squirro-bcp": "750 root:squirro-bcp", "/var/lib/squirro-bcp": "770 root:squirro-bcp", "/var/log/squirro-bcp": "770 root:squirro-bcp",
		configs[0]: "640 root:squirro-bcp", configs[1]: "640 root:squirro-bcp", configs[2]: "640 root:squirro-bcp",
		"/usr/bin/backup": "755 root:root", "/usr/bin/transfer": "755 root:root", "/usr/bin/restore": "755 root:root",
	}
	for path, w := range want {
		if got := strings.TrimSpace(sb.run(t, "stat", "-c", "%a %U:%G", path)); got != w {
			t.Errorf("%s: %s, want %s", path, got, w)
		}
	}
	// The units run the packaged programs; the cron examples are not active.
	units, _ := filepath.Glob(sb.path("/usr/lib/systemd/system/squirro-bcp-*"))
	if len(units) != 3 {
		t.Errorf("units %v, want 3", units)
	}
	for _, u := range units {
		sc := bufio.NewScanner(strings.NewReader(readFile(t, u)))
		for sc.Scan() {
			if exe, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
				if exe = strings.Fields(exe)[0]; !sb.exists(exe) {
					t.Errorf("%s runs %s, which the package does not install", filepath.Base(u), exe)
				}
			}
		}
	}
	if !sb.exists("/usr/share/squirro-bcp/examples/cron/backup") {
		t.Error("no cron example in /usr/share/squirro-bcp/examples/cron")
	}
	if sb.exists("/etc/cron.d") {
		t.Error("the package installs into /etc/cron.d: cron jobs must stay disabled examples")
	}
}

// testLayout compares what the .rpm holds (rpm -qpl, rpm -qpc) with what
// the .deb holds (dpkg-deb --contents, its conffiles): the same files and
// directories, zsh's directory aside; the same config files.
func testLayout(t *testing.T, p pkgs) {
	rpmFiles := strings.Fields(strings.ReplaceAll(run(t, "rpm", "-qpl", p.rpm), rpmZsh, debZsh))
	var debFiles []string
	for _, line := range strings.Split(strings.TrimSpace(run(t, "dpkg-deb", "--contents", p.deb)), "\n") {
		f := strings.Fields(line)
		path := strings.TrimSuffix(strings.TrimPrefix(f[len(f)-1], "."), "/")
		// dpkg lists every parent directory; rpm only the package's own
		if line[0] == 'd' && !slices.Contains(rpmFiles, path) {
			continue
		}
		debFiles = append(debFiles, path)
	}
	slices.Sort(rpmFiles)
	slices.Sort(debFiles)
	if !slices.Equal(rpmFiles, debFiles) {
		t.Errorf("rpm -qpl and the .deb differ:\nrpm: %v\ndeb: %v", rpmFiles, debFiles)
	}
	for _, want := range []string{"/usr/bin/backup", "/usr/share/man/man1/restore.1.gz", "/usr/share/bash-completion/completions/transfer",
		"/usr/lib/systemd/system/squirro-bcp-restore-watch.service", "/var/lib/squirro-bcp", "/usr/share/squirro-bcp/examples/cron/transfer"} {
		if !slices.Contains(rpmFiles, want) {
			t.Errorf("rpm -qpl lists no %s", want)
		}
	}
	rpmConf := strings.Fields(run(t, "rpm", "-qpc", p.rpm))
	debConf := strings.Fields(run(t, "dpkg-deb", "--info", p.deb, "conffiles"))
	slices.Sort(rpmConf)
	slices.Sort(debConf)
	want := slices.Sorted(slices.Values(configs))
	if !slices.Equal(rpmConf, want) || !slices.Equal(debConf, want) {
		t.Errorf("config files: rpm %v, deb %v, want %v", rpmConf, debConf, want)
	}
}
