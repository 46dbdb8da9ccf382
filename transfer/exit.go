package main

import (
	"errors"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
)

// errTimeout is returned by wait when no newer complete set arrived in time.
var errTimeout = errors.New("no newer complete set before the timeout")

// exitCodes is the one error -> exit code table of transfer (see README and
// each command's help): the codes every program shares (cli.BaseExitRules,
// which map mover.ErrCorrupt as a manifest.ErrCorrupt) and transfer's own. Refusals and integrity failures come before "try
// again later" (cli.NewExitTable orders them).
var exitCodes = cli.NewExitTable(
	cli.ExitRule{Err: mover.ErrSourceIncomplete, Code: cli.ExitIncomplete},
	cli.ExitRule{Err: mover.ErrSourceChanged, Code: cli.ExitIncomplete},
	cli.ExitRule{Err: errTimeout, Code: cli.ExitIncomplete},
)

func exitCode(err error) int { return exitCodes.Code(err) }

const exitHelp = `Exit codes: 0 done, 1 failed (network, disk), 2 usage or configuration,
4 no complete set yet or incomplete, a signature not there yet included (try
again later), 5 integrity (checksum, bad signature, key not in allowed_signers),
6 refused (host key mismatch, wrong channel, stale set). When push or pull
finds no set to forward, the newest set's reason decides.`
