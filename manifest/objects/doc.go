// Package objects is the content-addressed object store of a channel
// (<channel>/objects). An object's name is the SHA-256 of its content in
// lower-case hex, stored as objects/<aa>/<sha256> where aa are the first two
// hex digits.
//
// Writing follows the channel's write-order rule 1: Put writes the content
// into a ".tmp-*" file while hashing it, fsyncs and closes it, then renames
// it to its final name and fsyncs the directory. Put streams into a
// ".tmp-*" file in the objects directory, removed if the object turns out
// to be there (deduplication across sets). A Batch reads content of up to
// 1 MiB and hashes it first, so its temporary file is made in the
// directory of its final name (objects/<aa>, as DESIGN.md asks) and
// content already stored is not written at all. An object therefore
// exists under its name only when it is complete and durable, and it is
// never modified afterwards.
//
// A Batch (NewBatch) stores many small objects at the cost of one
// syncfs(2) per batch instead of two fsyncs per object: the files of a
// batch are written unsynced, made durable together, and only then given
// their names, while the next batch is being written; Flush syncs the
// last batch and the names. On Linux a batch's files have no name until
// then (O_TMPFILE, linked once durable: no temporary name is made and
// removed per object, and a capture that dies leaves nothing behind);
// where the file system has no unnamed files (NFS) they are temporary
// files, renamed. Backup's capture writes through a Batch and flushes
// before the set is published.
//
// Readers (Open, Has, Stat) refuse names that are not 64 lower-case hex
// digits, so an untrusted name can never reach outside the store.
package objects
