// Command restore: standby side: verify and restore complete sets from the NFS channel.
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
		Name:     "restore",
		Usage:    "standby side: verify and restore complete sets from the NFS channel",
		Version:  version,
		Commands: []*cli.Command{},
	}
}

func main() {
	err := newApp().Run(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "restore: %v\n", err)
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
