// Command transfer: move a channel to the standby over SSH/SFTP, or check what rsync / SnapMirror moved.
package main

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

const program = "transfer"

// prog builds every command of transfer but serve (cli.Program.Command): the
// common flags, the config file, usage errors, and the former setting names
// refused.
var prog = cli.Program{Name: program, Renamed: []cli.Renamed{{Names: renamed, Why: "the name backup and restore use"}}}

// flags builds transfer's settings: flag, BCP_TRANSFER_<NAME>, config file key.
var flags = prog.Flags()

// renamed maps transfer's former setting names to the ones backup and
// restore use. Neither is kept as an alias (urfave/cli lists aliases in
// --help, and the config file would then accept both spellings); an old key
// in the config file or BCP_TRANSFER_<OLD> in the environment is refused
// (exit 2) instead of being ignored, which would drop the key or known_hosts
// file the operator meant.
var renamed = map[string]string{
	"identity":    "ssh-key",
	"known-hosts": "ssh-known-hosts",
}

// version and commit are set at build time:
// -ldflags "-X main.version=... -X main.commit=..." (make build, make package).
var version, commit = "dev", ""

func newApp() *ucli.App {
	return &ucli.App{
		Name:                 "transfer",
		Usage:                "move a channel to the standby over SSH/SFTP, or check what rsync / SnapMirror moved",
		Version:              cli.Version(version, commit),
		EnableBashCompletion: true,
		Commands: []*ucli.Command{
			newPushCommand(),
			newPullCommand(),
			newVerifyCommand(),
			newWaitCommand(),
			newStatusCommand(),
			newServeCommand(),
			cli.GenerateCommand(),
		},
	}
}

func main() {
	os.Exit(cli.Run(newApp(), os.Args, exitCode))
}
