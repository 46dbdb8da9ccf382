package main

import (
	"fmt"
	"io"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover/remote"
)

// newServeCommand is the one command not built with prog.Command: it is
// started by push on the far end, and reads no config file there (a
// malformed or outdated transfer.toml on the destination must not stop a
// push), so it has no settings to load.
func newServeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "serve",
		Usage:     "the far end of a push: started over SSH on the destination by transfer push, not by hand",
		ArgsUsage: "DIR",
		Description: `Reads requests from standard input and answers on standard output: it
creates, writes, fsyncs and renames files, makes directories, lists them (or
returns a digest of a listing) and syncs the file system, all below DIR
(nothing outside it is reachable). push
starts it as "transfer serve DIR" over each SSH connection (--remote-transfer)
and streams files through it instead of SFTP. It runs with the rights of the
SSH account, the same as that account's SFTP server.
`,
		OnUsageError: cli.OnUsageError,
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return cli.Usagef("serve needs DIR")
			}
			return runServe(serveOptions{dir: c.Args().First()}, os.Stdin, os.Stdout)
		},
	}
}

// serveOptions are the settings of `transfer serve`.
type serveOptions struct {
	dir string // nothing outside it is reachable
}

// runServe answers push's requests on in and out until in ends.
func runServe(o serveOptions, in io.Reader, out io.Writer) error {
	if err := remote.Serve(o.dir, in, out); err != nil {
		return fmt.Errorf("serve %s: %w", o.dir, err)
	}
	return nil
}
