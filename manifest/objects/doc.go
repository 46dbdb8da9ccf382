// Package objects is the content-addressed object store of a channel
// (<channel>/objects). An object's name is the SHA-256 of its content in
// lower-case hex, stored as objects/<aa>/<sha256> where aa are the first two
// hex digits.
//
// Writing follows the channel's write-order rule 1: Put streams the content
// into a ".tmp-*" file in the objects directory while hashing it, fsyncs and
// closes it, then renames it to its final name and fsyncs the directory. An
// object therefore exists under its name only when it is complete and
// durable, and it is never modified afterwards. Storing content that is
// already there just removes the temporary file (deduplication across sets).
//
// A Batch (NewBatch) stores many small objects at the cost of one
// syncfs(2) per batch instead of two fsyncs per object: the temporary
// files of a batch are written unsynced, made durable together, and only
// then renamed; Flush syncs the last batch and the renames. Backup's
// capture writes through a Batch and flushes before the set is published.
//
// Readers (Open, Has, Stat) refuse names that are not 64 lower-case hex
// digits, so an untrusted name can never reach outside the store.
package objects
