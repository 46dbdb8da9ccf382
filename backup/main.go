package main

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func newApp() *ucli.App {
	return &ucli.App{
		Name:        program,
		Usage:       "prod side: snapshot Elasticsearch, dump MySQL, capture files into the NFS channel and publish a signed manifest",
		Version:     version,
		Description: exitHelp,
		Commands: []*ucli.Command{
			newCheckCommand(), newRunCommand(), newListCommand(), newPruneCommand(), newInitCommand(),
		},
	}
}

func main() {
	os.Exit(cli.Run(newApp(), os.Args, exitCodes.Code))
}
