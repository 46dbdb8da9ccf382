package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// Version is the string --version prints after "<program> version ": the
// package version and, when known, the commit it was built from. Both are
// set at build time (-ldflags "-X main.version=... -X main.commit=...").
func Version(version, commit string) string {
	if commit == "" {
		return version
	}
	return version + " (commit " + commit + ")"
}

// GenerateCommand is the `generate` command every program has: it writes the
// program's man page and its bash and zsh completion scripts, all derived
// from the urfave/cli definitions the program runs with, so they never drift
// from --help. The packages (make package) ship what it writes. The app must
// set EnableBashCompletion: the scripts ask the program itself for the
// candidates (urfave/cli's --generate-bash-completion).
func GenerateCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "generate",
		Usage: "write the man page and the bash / zsh completion scripts (what the packages install)",
		Flags: []ucli.Flag{
			&ucli.PathFlag{Name: "man", Usage: "write the man page `DIR`/PROGRAM.1"},
			&ucli.PathFlag{Name: "bash-completion", Usage: "write the bash completion script to `FILE`"},
			&ucli.PathFlag{Name: "zsh-completion", Usage: "write the zsh completion script to `FILE`"},
		},
		OnUsageError: OnUsageError,
		Action: func(c *ucli.Context) error {
			dir, bash, zsh := c.Path("man"), c.Path("bash-completion"), c.Path("zsh-completion")
			if dir == "" && bash == "" && zsh == "" {
				return Usagef("generate: say what to write: --man DIR, --bash-completion FILE and/or --zsh-completion FILE")
			}
			app := c.App
			if !app.EnableBashCompletion {
				return fmt.Errorf("generate: %s has no shell completion (EnableBashCompletion is off)", app.Name)
			}
			if dir != "" {
				page, err := app.ToManWithSection(1)
				if err != nil {
					return fmt.Errorf("generate: man page of %s: %w", app.Name, err)
				}
				// The footer says which version the page describes.
				th := fmt.Sprintf(".TH %s 1 \"\" \"%s %s\" \"Squirro BCP\"\n", app.Name, app.Name, app.Version)
				page = strings.Replace(page, ".TH "+app.Name+" 1\n", th, 1)
				if err := writeGenerated(filepath.Join(dir, app.Name+".1"), page); err != nil {
					return err
				}
			}
			if bash != "" {
				if err := writeGenerated(bash, completionScript(bashCompletion, app.Name)); err != nil {
					return err
				}
			}
			if zsh != "" {
				if err := writeGenerated(zsh, completionScript(zshCompletion, app.Name)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func writeGenerated(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("generate: %w (the directory must exist and be writable)", err)
	}
	return nil
}

func completionScript(template, program string) string {
	return strings.ReplaceAll(template, "@PROG@", program)
}

// bashCompletion is urfave/cli v2's autocomplete/bash_autocomplete (MIT),
// bound to one program, for /usr/share/bash-completion/completions/<program>.
const bashCompletion = `# bash completion for @PROG@ (written by "@PROG@ generate"; urfave/cli's bash_autocomplete)
_squirro_bcp_complete() {
  if [[ "${COMP_WORDS[0]}" != "source" ]]; then
    local cur words cword requestComp opts
    COMPREPLY=()
    cur="${COMP_WORDS[COMP_CWORD]}"
    if declare -F _init_completion >/dev/null 2>&1; then
      _init_completion -n "=:" || return
    else
      words=("${COMP_WORDS[@]}")
      cword=$COMP_CWORD
    fi
    words=("${words[@]:0:$cword}")
    if [[ "$cur" == "-"* ]]; then
      requestComp="${words[*]} ${cur} --generate-bash-completion"
    else
      requestComp="${words[*]} --generate-bash-completion"
    fi
    opts=$(eval "${requestComp}" 2>/dev/null)
    COMPREPLY=($(compgen -W "${opts}" -- ${cur}))
    return 0
  fi
}
complete -o bashdefault -o default -o nospace -F _squirro_bcp_complete @PROG@
`

// zshCompletion is urfave/cli v2's autocomplete/zsh_autocomplete (MIT) as an
// autoloaded completion function, for a directory in zsh's $fpath.
const zshCompletion = `#compdef @PROG@
# zsh completion for @PROG@ (written by "@PROG@ generate"; urfave/cli's zsh_autocomplete)
local -a opts
local cur
cur=${words[-1]}
if [[ "$cur" == "-"* ]]; then
  opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
else
  opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
fi
if [[ "${opts[1]}" != "" ]]; then
  _describe 'values' opts
else
  _files
fi
`
