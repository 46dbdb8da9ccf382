package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
)

func genApp(completion bool) *ucli.App {
	f := Flags{Program: "genprog"}
	return &ucli.App{
		Name:                 "genprog",
		Usage:                "a program to document",
		Version:              Version("1.2.3~dev.4", "abc1234"),
		EnableBashCompletion: completion,
		Commands: []*ucli.Command{
			Program{Name: "genprog"}.Command(&ucli.Command{Name: "sync", Usage: "copy the channel", Flags: []ucli.Flag{f.String("ssh-key", "", "SSH private key file")}}),
			{Name: "hidden-one", Hidden: true},
			GenerateCommand(),
		},
	}
}

// TestGenerate: the man page and the completion scripts come from the
// app's definitions: every visible command and flag, no hidden one.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	bash, zsh := filepath.Join(dir, "genprog.bash"), filepath.Join(dir, "_genprog")
	if err := genApp(true).Run([]string{"genprog", "generate", "--man", dir, "--bash-completion", bash, "--zsh-completion", zsh}); err != nil {
		t.Fatal(err)
	}
	written := map[string]string{}
	for _, p := range []string{filepath.Join(dir, "genprog.1"), bash, zsh} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		written[p] = string(b)
	}
	page := written[filepath.Join(dir, "genprog.1")]
	for _, want := range []string{`.TH genprog 1 "" "genprog 1.2.3~dev.4 (commit abc1234)" "Squirro BCP"`, "genprog \\- a program to document", ".SH sync", "copy the channel", "--ssh-key", "SSH private key file", "--config"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "hidden-one") {
		t.Error("man page shows a hidden command")
	}
	if b := written[bash]; !strings.HasSuffix(b, "-F _squirro_bcp_complete genprog\n") || !strings.Contains(b, "--generate-bash-completion") {
		t.Errorf("bash completion:\n%s", b)
	}
	if z := written[zsh]; !strings.HasPrefix(z, "#compdef genprog\n") || !strings.Contains(z, "--generate-bash-completion") {
		t.Errorf("zsh completion:\n%s", z)
	}
}

func TestGenerateRefuses(t *testing.T) {
	err := genApp(true).Run([]string{"genprog", "generate"})
	if !errors.Is(err, ErrUsage) {
		t.Errorf("generate with nothing to write: %v, want a usage error", err)
	}
	err = genApp(false).Run([]string{"genprog", "generate", "--bash-completion", filepath.Join(t.TempDir(), "x")})
	if err == nil || !strings.Contains(err.Error(), "EnableBashCompletion") {
		t.Errorf("generate without completion support: %v, want an error naming EnableBashCompletion", err)
	}
	err = genApp(true).Run([]string{"genprog", "generate", "--man", filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "must exist") {
		t.Errorf("generate into a missing directory: %v, want an error saying it must exist", err)
	}
}

func TestVersion(t *testing.T) {
	if got := Version("1.2.3~dev.4", "abc1234"); got != "1.2.3~dev.4 (commit abc1234)" {
		t.Errorf("Version = %q", got)
	}
	if got := Version("dev", ""); got != "dev" {
		t.Errorf("Version without commit = %q", got)
	}
}
