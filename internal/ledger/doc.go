// Package ledger keeps the standby's restore ledger and the channel's pins.
//
// The ledger is one small JSON file in the standby's state directory
// (never on the channel: a read-only --from directory must stay untouched).
// On a standby of several nodes that directory is on storage every node
// mounts, so whichever node leads next knows what is live
// (doc/architecture.md, "The standby's memory on a cluster").
// Every restore appends a Record when it starts (outcome "running") and
// rewrites that record as each stage starts and ends, so that after a crash
// the ledger still says which stages ran. Every write goes to a temporary
// file that is synced and renamed over the ledger, so a reader never sees a
// half-written ledger. The newest successful record is what is "live"; a
// record still "running" when the next restore starts was interrupted and is
// marked "interrupted".
//
// Beside the ledger, es-indices.json holds what the ledger knows of each
// index a restore put on the standby (ESIndex: channel, set, the set's
// fingerprint of the index and the standby's own, read right after the
// restore), so a later restore can keep an index that neither side changed.
// A restore forgets an index (ForgetESIndices) before it deletes or
// replaces it. One entry per index, rewritten whole per restore.
//
// Pins tell movers (transfer's prune, backup's retention) which sets must not
// be deleted: <channel>/pins/<set-id>. SetPins writes a pin for the set being
// restored and for the set that is live, and removes every other pin, so at
// most two sets are held at any time.
package ledger
