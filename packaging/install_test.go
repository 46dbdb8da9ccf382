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

// The packages are installed into private roots (dpkg --root, rpm --root),
// never into this machine's /: other tests running meanwhile must not find
// a /usr/bin/transfer they did not ask for, and nothing is left behind. The
// programs are static, so `chroot ROOT /usr/bin/backup` runs them there.

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
	need(t, os.Geteuid() == 0, "not root", "run make package-test as root (dpkg and rpm install as root, also into a private root)")
	for _, tool := range []string{"go", "dpkg", "dpkg-deb", "dpkg-query", "rpm", "man", "chroot", "bash"} {
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

// testDeb installs, upgrades, removes and purges the .deb in a private root.
func testDeb(t *testing.T, old, new pkgs) {
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dpkg := func(args ...string) string { return run(t, "dpkg", append([]string{"--root=" + root}, args...)...) }

	dpkg("-i", old.deb)
	checkInstalled(t, root, debZsh, oldVersion, oldCommit)
	if v := run(t, "dpkg-query", "--root="+root, "-W", "-f=${Version}", "squirro-bcp"); v != oldVersion {
		t.Errorf("dpkg says version %q, want %q (the one --version prints)", v, oldVersion)
	}

	edited := editConfig(t, root)
	pristine := readFile(t, filepath.Join(root, configs[2]))
	dpkg("-i", new.deb)
	checkInstalled(t, root, debZsh, newVersion, newCommit)
	if got := readFile(t, filepath.Join(root, configs[0])); got != edited {
		t.Errorf("upgrade changed the edited %s:\n%s", configs[0], got)
	}
	if got := readFile(t, filepath.Join(root, configs[2])); got != pristine {
		t.Errorf("upgrade changed %s, which nobody edited", configs[2])
	}

	dpkg("-r", "squirro-bcp")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/backup")); !os.IsNotExist(err) {
		t.Errorf("after removal /usr/bin/backup: %v, want it gone", err)
	}
	if got := readFile(t, filepath.Join(root, configs[0])); got != edited {
		t.Errorf("removal (not purge) did not leave the edited %s:\n%s", configs[0], got)
	}
	for _, c := range configs[1:] {
		if _, err := os.Stat(filepath.Join(root, c)); err != nil {
			t.Errorf("removal (not purge) did not leave %s: %v", c, err)
		}
	}
	if s := run(t, "dpkg-query", "--root="+root, "-W", "-f=${Status}", "squirro-bcp"); s != "deinstall ok config-files" {
		t.Errorf("after removal dpkg says %q, want deinstall ok config-files", s)
	}

	dpkg("--purge", "squirro-bcp")
	if _, err := os.Stat(filepath.Join(root, "etc/squirro-bcp")); !os.IsNotExist(err) {
		t.Errorf("after purge /etc/squirro-bcp: %v, want it gone", err)
	}
}

// testRPM does the same with the .rpm: %config(noreplace) keeps the edited
// file on upgrade and saves it as .rpmsave on removal.
func testRPM(t *testing.T, old, new pkgs) {
	root := t.TempDir()
	rpm := func(args ...string) string {
		return run(t, "rpm", append([]string{"--root", root, "--dbpath", "/var/lib/rpm", "--nodeps"}, args...)...)
	}
	run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	rpm("-i", old.rpm)
	checkInstalled(t, root, rpmZsh, oldVersion, oldCommit)
	edited := editConfig(t, root)
	rpm("-U", new.rpm)
	checkInstalled(t, root, rpmZsh, newVersion, newCommit)
	if got := readFile(t, filepath.Join(root, configs[0])); got != edited {
		t.Errorf("rpm upgrade changed the edited %s:\n%s", configs[0], got)
	}
	rpm("-e", "squirro-bcp")
	if _, err := os.Stat(filepath.Join(root, "usr/bin/backup")); !os.IsNotExist(err) {
		t.Errorf("after rpm -e /usr/bin/backup: %v, want it gone", err)
	}
	if got := readFile(t, filepath.Join(root, configs[0]+".rpmsave")); got != edited {
		t.Errorf("rpm -e did not keep the edited %s as .rpmsave:\n%s", configs[0], got)
	}
}

// editConfig changes backup.toml as an operator would and returns it.
func editConfig(t *testing.T, root string) string {
	t.Helper()
	path := filepath.Join(root, configs[0])
	edited := readFile(t, path) + "\n# edited by the operator\nsite = \"prod-edited\"\n"
	if err := os.WriteFile(path, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	return edited
}

// checkInstalled checks an installed root: --version, the man pages, the
// completion, the configs' modes, the units' programs.
func checkInstalled(t *testing.T, root, zshDir, version, commit string) {
	t.Helper()
	for _, p := range programs {
		// chroot: the static program runs in a root without a libc.
		got := run(t, "chroot", root, "/usr/bin/"+p, "--version")
		if want := p + " version " + version + " (commit " + commit + ")\n"; got != want {
			t.Errorf("%s --version printed %q, want %q", p, got, want)
		}
		man := filepath.Join(root, "usr/share/man")
		if got := strings.TrimSpace(run(t, "man", "--manpath="+man, "-w", p)); got != filepath.Join(man, "man1", p+".1.gz") {
			t.Errorf("man -w %s found %q, want the packaged page", p, got)
		}
		page := run(t, "env", "MANPAGER=cat", "MANWIDTH=100", "man", "--manpath="+man, p)
		if words := strings.Join(strings.Fields(page), " "); !strings.Contains(words, "NAME "+p+" - ") {
			t.Errorf("man %s does not show the page:\n%s", p, page)
		}
		// Every command the program offers (it lists them for completion)
		// has its section in the page.
		cmds := run(t, "chroot", root, "/usr/bin/"+p, "--generate-bash-completion")
		for _, c := range strings.Fields(cmds) {
			if c != "help" && c != "h" && !strings.Contains(page, "\n"+c+"\n") {
				t.Errorf("man %s has no section for the command %s", p, c)
			}
		}
		zsh := readFile(t, filepath.Join(root, zshDir, "_"+p))
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
		script := `source "$1"; COMP_WORDS=(` + strings.Join(words, " ") + `); COMP_CWORD=` + strconv.Itoa(len(words)-1) + `; _squirro_bcp_complete; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command("bash", "-c", script, "bash", filepath.Join(root, "usr/share/bash-completion/completions", words[0]))
		cmd.Env = append(os.Environ(), "PATH="+filepath.Join(root, "usr/bin")+":/usr/bin:/bin")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != c.want {
			t.Errorf("bash completion of %q %q: %q (%v), want %q", c.words, c.cur, out, err, c.want)
		}
	}
	for path, mode := range map[string]os.FileMode{
		"/etc/squirro-bcp": os.ModeDir | 0o750, "/var/lib/squirro-bcp": os.ModeDir | 0o750,
		configs[0]: 0o640, configs[1]: 0o640, configs[2]: 0o640,
		"/usr/bin/backup": 0o755, "/usr/bin/transfer": 0o755, "/usr/bin/restore": 0o755,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != mode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	// The units run the packaged programs; the cron examples are not active.
	units, _ := filepath.Glob(filepath.Join(root, "usr/lib/systemd/system/squirro-bcp-*"))
	if len(units) != 3 {
		t.Errorf("units %v, want 3", units)
	}
	for _, u := range units {
		sc := bufio.NewScanner(strings.NewReader(readFile(t, u)))
		for sc.Scan() {
			if exe, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
				exe = strings.Fields(exe)[0]
				if fi, err := os.Stat(filepath.Join(root, exe)); err != nil || fi.Mode()&0o111 == 0 {
					t.Errorf("%s runs %s, which the package does not install: %v", filepath.Base(u), exe, err)
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share/squirro-bcp/examples/cron/backup")); err != nil {
		t.Errorf("cron example: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/cron.d")); !os.IsNotExist(err) {
		t.Errorf("the package installs into /etc/cron.d (%v): cron jobs must stay disabled examples", err)
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
