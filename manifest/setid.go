package manifest

import (
	"fmt"
	"strconv"
	"time"
)

// setIDTime is the time layout of the second half of a set id.
const setIDTime = "20060102T150405Z"

// SetID names the set directory of sequence seq created at created:
// "%010d-20060102T150405Z" in UTC, so that names sort by sequence.
func SetID(seq uint64, created time.Time) string {
	return fmt.Sprintf("%010d-%s", seq, created.UTC().Format(setIDTime))
}

// ParseSetID returns the sequence number of a set id made by SetID. It
// rejects anything else (including names of temporary files).
func ParseSetID(id string) (uint64, error) {
	seq, _, err := parseSetID(id)
	return seq, err
}

// SetIDTime returns the creation time encoded in a set id.
func SetIDTime(id string) (time.Time, error) {
	_, t, err := parseSetID(id)
	return t, err
}

func parseSetID(id string) (uint64, time.Time, error) {
	const n = 10 + 1 + len(setIDTime)
	if len(id) < n {
		return 0, time.Time{}, fmt.Errorf("set id %q: want %%010d-YYYYMMDDTHHMMSSZ: %w", id, ErrInvalid)
	}
	digits := id[:len(id)-len(setIDTime)-1]
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, time.Time{}, fmt.Errorf("set id %q: sequence is not decimal: %w", id, ErrInvalid)
		}
	}
	if len(digits) != 10 && digits[0] == '0' {
		// Sequences above 9999999999 simply get longer; shorter or padded
		// forms would not be what SetID produces.
		return 0, time.Time{}, fmt.Errorf("set id %q: sequence badly padded: %w", id, ErrInvalid)
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, time.Time{}, fmt.Errorf("set id %q: sequence must be 1..2^64-1: %w", id, ErrInvalid)
	}
	if id[len(digits)] != '-' {
		return 0, time.Time{}, fmt.Errorf("set id %q: missing '-': %w", id, ErrInvalid)
	}
	t, err := time.Parse(setIDTime, id[len(digits)+1:])
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("set id %q: bad time: %w", id, ErrInvalid)
	}
	if SetID(seq, t) != id {
		return 0, time.Time{}, fmt.Errorf("set id %q: not in canonical form: %w", id, ErrInvalid)
	}
	return seq, t, nil
}

// DefaultMaxClockSkew is how far after the reader's clock a set's creation
// time may lie before the set is refused (VerifyOptions.MaxClockSkew,
// CheckCreated): the producer's and the reader's clocks never agree exactly.
const DefaultMaxClockSkew = 5 * time.Minute

// CheckCreated refuses a set created further after now than maxSkew allows
// (0: DefaultMaxClockSkew; negative: no check). A validly signed set dated
// in the future would otherwise stay "newest" and show a negative recovery
// point age until its date arrives. The error wraps ErrFuture (and so
// ErrStale, exit code 6) and names the set, its creation time, the local
// clock and the allowed skew.
func CheckCreated(id string, created, now time.Time, maxSkew time.Duration) error {
	if maxSkew == 0 {
		maxSkew = DefaultMaxClockSkew
	}
	ahead := created.Sub(now)
	if maxSkew < 0 || ahead <= maxSkew {
		return nil
	}
	return fmt.Errorf("set %s was created %s, %s after this host's clock (%s), more than the allowed clock skew of %s (max-clock-skew): %w; "+
		"check the clocks (NTP) of the producer and of this host", id, created.UTC().Format(time.RFC3339), ahead.Round(time.Second),
		now.UTC().Format(time.RFC3339), maxSkew, ErrFuture)
}

// Age is how long before now a set created at created was made; never
// negative (a set within the allowed clock skew counts as just made).
func Age(created, now time.Time) time.Duration {
	return max(now.Sub(created), 0)
}
