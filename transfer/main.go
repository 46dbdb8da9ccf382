// Command transfer: move a channel to the standby over SSH/SFTP, or check what rsync / SnapMirror moved.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func newApp() *cli.App {
	return &cli.App{
		Name:     "transfer",
		Usage:    "move a channel to the standby over SSH/SFTP, or check what rsync / SnapMirror moved",
		Version:  version,
		Commands: []*cli.Command{},
	}
}

func main() {
	err := newApp().Run(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "transfer: %v\n", err)
	}
	os.Exit(exitCode(err))
}

// exitCode maps an error to the documented exit codes (see README).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	return 1
}
