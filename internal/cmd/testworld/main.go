// Command testworld starts and stops the two-site test world for trying the
// programs by hand: `make env-up` runs `testworld up`, `make env-down` runs
// `testworld down`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

var version = "dev"

func main() {
	app := &cli.App{
		Name:     "testworld",
		Usage:    "start and stop the two-site test world (prod and bcp: MariaDB, Redis, Elasticsearch, sshd, NFS directory each)",
		Version:  version,
		Commands: []*cli.Command{newUpCommand(), newDownCommand()},
	}
	// Ctrl-C during `up` cancels the start-up, which then stops the services
	// it had started: they are detached, so nothing else would.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.RunContext(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testworld:", err)
		os.Exit(exitCode(err))
	}
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage")

// exitCode is the program's one error-to-exit-code table:
// 0 ok, 1 failed, 2 usage, 6 refused (a world already runs there).
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	case errors.Is(err, errAlreadyUp):
		return 6
	default:
		return 1
	}
}
