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
		Name:                 program,
		Usage:                "prod side: snapshot Elasticsearch, dump MySQL, capture files into the NFS channel and publish a signed manifest",
		Version:              cli.Version(version, commit),
		EnableBashCompletion: true,
		Description:          exitHelp,
		Commands: []*ucli.Command{
			newCheckCommand(), newRunCommand(), newListCommand(), newPruneCommand(), newInitCommand(), cli.GenerateCommand(),
		},
	}
}

func main() {
	os.Exit(cli.Run(newApp(), os.Args, exitCodes.Code))
}
