package main

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
)

const program = "backup"

// prog builds every command of backup (cli.Program.Command): the common
// flags, the config file, usage errors.
var prog = cli.Program{Name: program}

// flags builds backup's settings: flag, BCP_BACKUP_<NAME>, config file key.
var flags = prog.Flags()

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
