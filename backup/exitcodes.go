package main

import (
	"github.com/squirro-bcp/bcp/internal/cli"
	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

const exitHelp = `Exit codes: 0 done (also: not the leader, nothing to do), 1 a stage failed (no set published),
2 usage or configuration, 3 preflight failed (every failed check listed; nothing changed),
4 no complete set, 5 integrity (checksum mismatch, bad or untrusted signature), 6 refused for safety (standby site,
channel of the other direction, lock held, untrusted host key).`

// exitCodes is backup's one error -> exit code table; the first match wins.
var exitCodes = cli.ExitTable{
	{Err: site.ErrWrongRole, Code: 6},
	{Err: manifest.ErrNotForUs, Code: 6},
	{Err: lock.ErrLocked, Code: 6},
	{Err: sshx.ErrHostKey, Code: 6},
	{Err: manifest.ErrStale, Code: 6},
	{Err: site.ErrNoRole, Code: 2},
	{Err: site.ErrBadRole, Code: 2},
	{Err: ErrPreflight, Code: 3},
	{Err: cli.ErrUsage, Code: 2},
	{Err: manifest.ErrCorrupt, Code: 5},
	{Err: manifest.ErrNotAuthentic, Code: 5},
	{Err: manifest.ErrIncomplete, Code: 4},
	{Err: manifest.ErrNoSet, Code: 4},
}
