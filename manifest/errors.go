package manifest

import "errors"

// Sentinel errors. Every error returned by this package that classifies a set
// wraps exactly one of these; programs map them to exit codes with errors.Is.
var (
	// ErrIncomplete means a set is not all there yet: an object, a repository
	// file, a list or the signature is missing. A mover may still be copying;
	// try again later (exit code 4).
	ErrIncomplete = errors.New("set incomplete")
	// ErrCorrupt means a file is there but its size or SHA-256 does not match
	// what the signed manifest says (exit code 5).
	ErrCorrupt = errors.New("set corrupt")
	// ErrNotAuthentic means the manifest's signature is invalid, or made by a
	// key that allowed_signers does not trust for the manifest namespace
	// (exit code 5).
	ErrNotAuthentic = errors.New("set not authentic")
	// ErrNotForUs means the set or channel belongs to another channel or
	// direction than the one expected (exit code 6).
	ErrNotForUs = errors.New("set not for this channel")
	// ErrStale means the set is not newer than a given sequence: an old or
	// replayed set (exit code 6).
	ErrStale = errors.New("set stale or replayed")
	// ErrFuture means the set was created further in the future (by the
	// reader's clock) than the allowed clock skew (CheckCreated). It is a
	// kind of ErrStale: errors.Is(err, ErrStale) holds too (exit code 6).
	ErrFuture error = futureError{}
	// ErrUnknownVersion means a manifest has a major format version this
	// reader does not know; upgrade the reading program (exit code 5).
	ErrUnknownVersion = errors.New("unknown manifest format version")
	// ErrNoSet means a channel holds no set at all (exit code 4).
	ErrNoSet = errors.New("no set in channel")
	// ErrInvalid means a manifest, list, channel file or path is malformed:
	// bad JSON, a missing or absurd field, a path that escapes its root. It
	// is wrapped together with ErrCorrupt where the document came from a
	// channel, since signed content cannot be malformed unless the producer
	// is broken.
	ErrInvalid = errors.New("invalid")
	// ErrSetExists means Publish found a manifest already in the set
	// directory; sets are never overwritten.
	ErrSetExists = errors.New("set already published")
)

type futureError struct{}

func (futureError) Error() string { return "set created in the future" }
func (futureError) Unwrap() error { return ErrStale }

// NewCorrupt returns a new sentinel error, with message msg, that is a kind
// of ErrCorrupt: errors.Is(err, ErrCorrupt) holds for it, and its exit code
// is ErrCorrupt's. It is for a package that names its own mismatch (a
// copied file, a restored object) while "does not match" keeps one meaning.
func NewCorrupt(msg string) error { return &corruptError{msg} }

type corruptError struct{ msg string }

func (e *corruptError) Error() string { return e.msg }
func (e *corruptError) Unwrap() error { return ErrCorrupt }
