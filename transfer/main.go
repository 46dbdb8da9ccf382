// Command transfer: move a channel to the standby over SSH/SFTP, or check what rsync / SnapMirror moved.
package main

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

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
	app := newApp()
	os.Exit(cli.Run(app, flagsFirst(app, os.Args), exitCode))
}
