package site

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/squirro-bcp/bcp/manifest"
)

// The fencing epoch of a pair of sites (manifest/DESIGN.md, "Fencing"):
// each promotion raises it and records, in both channels of the pair, which
// site is active from then on. A producer writes its epoch into every set
// and stops once another site holds a newer one; a reader refuses sets of
// an older epoch than the channel's or than the highest it has seen itself
// (the seen-epoch file, kept outside the channel, only grows).

// ErrSuperseded: this site's epoch is older than another site's (it was
// active once; another site was promoted since). Producers refuse; it is a
// kind of manifest.ErrStale (exit 6).
var ErrSuperseded = fmt.Errorf("site superseded by a newer promotion: %w", manifest.ErrStale)

// ProducerEpoch is the epoch a producer on site writes into its sets, given
// what its channels record (its own channel, and the reverse channel when
// it has it): the highest record's epoch when that record names site as
// active, 1 when there is no record at all, and an error wrapping
// ErrSuperseded when the highest record names another site.
func ProducerEpoch(site string, chans ...manifest.ChannelEpoch) (uint64, error) {
	var top *manifest.EpochRecord
	for _, c := range chans {
		if c.Record != nil && (top == nil || c.Record.Epoch > top.Epoch) {
			top = c.Record
		}
	}
	if top == nil {
		return 1, nil
	}
	if top.Active != site {
		return 0, fmt.Errorf("%w: the channel %s records %s; this site (%s) is no longer the active one: set its role to standby (restore demote) and disable its backup; it may back up again only after a promotion of its own",
			ErrSuperseded, top.Channel.Name, top, site)
	}
	return top.Epoch, nil
}

// NextEpoch is the epoch a promotion records: one more than the highest of
// the channels' records, the seen epoch and 1 (sets made before any
// promotion are epoch 1).
func NextEpoch(seen uint64, chans ...manifest.ChannelEpoch) uint64 {
	n := max(seen, 1)
	for _, c := range chans {
		n = max(n, c.Epoch())
	}
	return n + 1
}

// SeenEpochFile is the name of the seen-epoch file in a reader's state
// directory.
const SeenEpochFile = "epoch"

// ReadSeenEpoch returns the number in the seen-epoch file at path, 0 when
// the file does not exist.
func ReadSeenEpoch(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read seen epoch %s: %w", path, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("seen epoch %s holds %q, not a number: fix or remove it (the next promotion or restore writes it again): %w", path, strings.TrimSpace(string(b)), ErrBadRole)
	}
	return n, nil
}

// RaiseSeenEpoch writes n into the seen-epoch file at path (atomically,
// 0600) unless it already holds n or more. It never lowers it.
func RaiseSeenEpoch(path string, n uint64) error {
	cur, err := ReadSeenEpoch(path)
	if err != nil {
		return err
	}
	if n <= cur {
		return nil
	}
	if err := manifest.WriteFileAtomic(path, []byte(strconv.FormatUint(n, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("write seen epoch %s: %w", path, err)
	}
	return nil
}
