// Command testworld starts and stops the two-site test world for trying the
// programs by hand: `make env-up` runs `testworld up`, `make env-down` runs
// `testworld down`.
package main

import (
	"os"

	"github.com/urfave/cli/v2"

	bcpcli "github.com/squirro-bcp/bcp/internal/cli"
)

var version = "dev"

func main() {
	app := &cli.App{
		Name:     "testworld",
		Usage:    "start and stop the two-site test world (prod and bcp: MariaDB, Redis, Elasticsearch, sshd, NFS directory each)",
		Version:  version,
		Commands: []*cli.Command{newUpCommand(), newDownCommand()},
	}
	// Ctrl-C during `up` cancels the start-up (cli.Run's context), which then
	// stops the services it had started: they are detached, so nothing else
	// would.
	os.Exit(bcpcli.Run(app, os.Args, exitCode))
}

// errUsage marks a usage error (exit code 2).
var errUsage = bcpcli.ErrUsage

// exitCodes is the program's one error-to-exit-code table:
// 0 ok, 1 failed, 2 usage, 6 refused (a world already runs there).
var exitCodes = bcpcli.ExitTable{{Err: errAlreadyUp, Code: 6}}

func exitCode(err error) int { return exitCodes.Code(err) }
