package main

import (
	"github.com/squirro-bcp/bcp/internal/cli"
)

const exitHelp = `Exit codes: 0 done (also: not the leader, nothing to do), 1 a stage failed (no set published),
2 usage or configuration, 3 preflight failed (every failed check listed; nothing changed),
4 no complete set, 5 integrity (checksum mismatch, bad or untrusted signature), 6 refused for safety (standby site,
channel of the other direction, lock held, untrusted host key).`

// exitCodes is backup's one error -> exit code table: the codes every
// program shares (cli.BaseExitRules) and backup's own.
var exitCodes = cli.NewExitTable(
	cli.ExitRule{Err: ErrPreflight, Code: cli.ExitPreflight},
)
