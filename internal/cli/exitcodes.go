package cli

import (
	"slices"

	"github.com/squirro-bcp/bcp/internal/lock"
	"github.com/squirro-bcp/bcp/internal/site"
	"github.com/squirro-bcp/bcp/internal/sshx"
	"github.com/squirro-bcp/bcp/manifest"
)

// The exit codes every program documents (README, "Exit codes").
const (
	ExitOK         = 0 // done / complete
	ExitFailed     = 1 // an operation failed (a store, the network, the disk)
	ExitUsage      = 2 // usage or configuration error
	ExitPreflight  = 3 // a check before any change failed; nothing was changed
	ExitIncomplete = 4 // set incomplete, or no complete set yet: try again later
	ExitIntegrity  = 5 // checksum mismatch, bad or untrusted signature, unknown format
	ExitRefused    = 6 // refused for safety: role, direction, stale set, lock, host key
)

// BaseExitRules map the errors every program can meet - the manifest's
// sentinels, the site role, the lock, the SSH host key - to their codes.
// Every program's table starts from them (NewExitTable).
var BaseExitRules = []ExitRule{
	{Err: site.ErrWrongRole, Code: ExitRefused},
	{Err: lock.ErrLocked, Code: ExitRefused},
	{Err: sshx.ErrHostKey, Code: ExitRefused},
	{Err: manifest.ErrNotForUs, Code: ExitRefused},
	{Err: manifest.ErrStale, Code: ExitRefused},
	{Err: site.ErrNoRole, Code: ExitUsage, tier: tierRole},
	{Err: site.ErrBadRole, Code: ExitUsage, tier: tierRole},
	{Err: ErrUsage, Code: ExitUsage},
	{Err: manifest.ErrCorrupt, Code: ExitIntegrity},
	{Err: manifest.ErrNotAuthentic, Code: ExitIntegrity},
	{Err: manifest.ErrUnknownVersion, Code: ExitIntegrity},
	{Err: manifest.ErrIncomplete, Code: ExitIncomplete},
	{Err: manifest.ErrNoSet, Code: ExitIncomplete},
}

// The order of a table's rules (the first that matches wins), for an error
// that matches several - a set both incomplete and untrusted, a preflight
// whose failed checks carry their own errors: a refusal, then a missing or
// bad role file, then a failed preflight (which lists everything it found),
// then another configuration error, an integrity failure, and last "try
// again later".
const (
	tierRefused = iota + 1
	tierRole
	tierPreflight
	tierUsage
	tierIntegrity
	tierIncomplete
	tierOther
)

func (r ExitRule) rank() int {
	if r.tier != 0 {
		return r.tier
	}
	switch r.Code {
	case ExitRefused:
		return tierRefused
	case ExitPreflight:
		return tierPreflight
	case ExitUsage:
		return tierUsage
	case ExitIntegrity:
		return tierIntegrity
	case ExitIncomplete:
		return tierIncomplete
	}
	return tierOther
}

// NewExitTable is a program's table: BaseExitRules and the program's own
// rules, in the order above (as given within one tier).
func NewExitTable(extra ...ExitRule) ExitTable {
	t := append(slices.Clone(BaseExitRules), extra...)
	slices.SortStableFunc(t, func(a, b ExitRule) int { return a.rank() - b.rank() })
	return ExitTable(t)
}
