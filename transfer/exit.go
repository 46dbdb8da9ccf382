package main

import (
	"errors"

	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/mover"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// errTimeout is returned by wait when no newer complete set arrived in time.
var errTimeout = errors.New("no newer complete set before the timeout")

// exitCodes is the one error -> exit code table of transfer (see README and
// each command's help). The first matching rule wins, so refusals and
// integrity failures come before "try again later".
var exitCodes = cli.ExitTable{
	{Err: cli.ErrUsage, Code: 2},
	{Err: sshx.ErrHostKey, Code: 6},
	{Err: manifest.ErrNotForUs, Code: 6},
	{Err: manifest.ErrStale, Code: 6},
	{Err: manifest.ErrCorrupt, Code: 5},
	{Err: manifest.ErrNotAuthentic, Code: 5},
	{Err: manifest.ErrUnknownVersion, Code: 5},
	{Err: mover.ErrCorrupt, Code: 5},
	{Err: manifest.ErrIncomplete, Code: 4},
	{Err: manifest.ErrNoSet, Code: 4},
	{Err: mover.ErrSourceIncomplete, Code: 4},
	{Err: mover.ErrSourceChanged, Code: 4},
	{Err: errTimeout, Code: 4},
}

func exitCode(err error) int { return exitCodes.Code(err) }

const exitHelp = `Exit codes: 0 done, 1 failed (network, disk), 2 usage or configuration,
4 no complete set yet or incomplete, a signature not there yet included (try
again later), 5 integrity (checksum, bad signature, key not in allowed_signers),
6 refused (host key mismatch, wrong channel, stale set). When push or pull
finds no set to forward, the newest set's reason decides.`
