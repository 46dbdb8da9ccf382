// Command restore is the standby side: it verifies complete sets that arrive
// on the NFS channel and restores them into the standby cluster (stages
// 6-11: Elasticsearch, MySQL, files and config, Redis flush, restart,
// post-checks), by hand or as a watcher.
package main

import (
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/es"
	"github.com/squirro-bcp/bcp/internal/filetree"
	"github.com/squirro-bcp/bcp/internal/mysqlx"
)

const program = "restore"

// prog builds every command of restore (cli.Program.Command): the common
// flags, the config file, usage errors, and the former setting names
// refused.
var prog = cli.Program{Name: program, Renamed: renamed}

// flags builds restore's settings: flag, BCP_RESTORE_<NAME>, config file key.
var flags = prog.Flags()

// version and commit are set at build time:
// -ldflags "-X main.version=... -X main.commit=..." (make build, make package).
var version, commit = "dev", ""

const exitHelp = `Exit codes: 0 done, 1 failed (a stage; see the report and the ledger), 2 usage or configuration,
3 refused before any change (preflight: the standby's Elasticsearch cannot read the snapshot or the repository on every node,
MySQL or Redis do not answer, the files do not fit on the storage's file system; every failure is listed),
4 set incomplete (a file or the signature not there yet) or no complete set yet,
5 integrity (checksum mismatch, bad or untrusted signature),
6 refused for safety (active site, wrong channel or direction, stale set, set created further
after this host's clock than --max-clock-skew, lock held).`

func newApp() *ucli.App {
	return &ucli.App{
		Name:                 program,
		Usage:                "standby side: verify and restore complete sets from the NFS channel",
		Version:              cli.Version(version, commit),
		EnableBashCompletion: true,
		Commands: []*ucli.Command{
			newListCommand(), newVerifyCommand(), newRunCommand(), newWatchCommand(),
			newStatusCommand(), newPromoteCommand(), newDemoteCommand(), cli.GenerateCommand(),
		},
		Description: exitHelp,
	}
}

func main() {
	os.Exit(cli.Run(newApp(), os.Args, exitCode))
}

// exitCodes is restore's one error -> exit code table: the codes every
// program shares (cli.BaseExitRules) and restore's own (see README).
var exitCodes = cli.NewExitTable(
	cli.ExitRule{Err: mysqlx.ErrSystemSchema, Code: cli.ExitRefused},
	cli.ExitRule{Err: filetree.ErrNoSpace, Code: cli.ExitPreflight},
	cli.ExitRule{Err: ErrPreflight, Code: cli.ExitPreflight},
	cli.ExitRule{Err: es.ErrSnapshotMissing, Code: cli.ExitIncomplete},
)

// exitCode maps an error to the documented exit codes.
func exitCode(err error) int { return exitCodes.Code(err) }
