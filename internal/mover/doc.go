// Package mover copies a channel from one place to another - a local (or
// NFS) directory or a directory on an SFTP server, in either direction -
// such that the destination only ever shows whole, verified sets.
//
// # Backends
//
// Both ends are an FS: a handful of operations (ReadDir, Open, Create,
// Rename, Remove, MkdirAll) implemented by Local and by SFTP. One test suite
// (fs_test.go) runs against both. The SFTP backend holds several SSH
// connections (each its own sshd process and cipher stream, so several cores
// work on both ends) and spreads requests over them; within one file,
// pkg/sftp keeps many read or write requests in flight (ReadFrom with a
// reader that tells its size, WriteTo on the source file). Each SSH
// connection carries several SFTP sessions: an sftp-server answers one
// request at a time, so many sessions keep many small files in flight (and,
// where batches cannot be synced at once, let the destination's file system
// commit many fsyncs together). Only one
// connection is opened at first; the rest when there is work (Expander),
// so a run with nothing to do stays cheap. 512 files are in flight (small
// ones held in memory, at most 128 MiB of them), at most 8 of them large; a
// synced file's close does not hold up its rename. Between two local disks
// (ext4, XFS, btrfs, tmpfs; not NFS) 2 per CPU are in flight, at least 4:
// creating a file there is CPU work under its directory's lock. Workers
// take files in runs (up to 64, a quarter of their share of a batch), and
// a local end holds the directories of a batch open while it reads, writes
// and renames its files (openat and renameat relative to them).
//
// # Algorithm (Run)
//
//  1. Read the source's channel.json; refuse a destination that is another
//     channel (manifest.ErrNotForUs). A destination not connected yet
//     (Dialer: NewSFTP) connects meanwhile, and where the run will plan
//     the whole set (no record, step 2) the source's newest set is read
//     (step 3) while it does.
//  2. Unchanged set: the cache (Checked) keeps a setRecord of the set the
//     last run left verified - its manifest's SHA-256 and, for every
//     directory holding its files, the digest of the directory's listing
//     (remote.Digest: names, sizes, times in ns, kinds). If the source's
//     newest set is still that set (same manifest, signature trusted) and
//     the destination (a Digester: the transfer helper, SFTP alone through
//     one find(1) in its shell, or a local directory)
//     shows the same digest for every one of those directories, nothing
//     was added, removed, resized or touched there since it was verified:
//     the run has nothing to copy and goes on to step 6 without reading the
//     set's file lists or the destination's listings. Any difference, any
//     error there, or Options.Checksum takes steps 3-5, which check every
//     file and record the set again at the end (the digests of the
//     directories a copy filled whole are taken behind the copy, as each
//     bucket's last file is renamed: copiedDigests).
//     Beside the recorded set: when the source's newest set is another one
//     (or the record has no digests), the destination still shows the
//     recorded set published (its signature, the recorded manifest) and
//     its last full comparison is less than Options.FullCompareEvery ago
//     (not Options.FullCompare), steps 3-4 walk the set's 2.0 trees beside
//     the recorded set's and enumerate, check at the source and compare at
//     the destination only the files below directories whose list changed
//     (beside.go; doc/architecture.md, "Transfer push: skipping unchanged
//     directories"); the rest is the recorded set's, whole there.
//  3. Choose the set: from the newest set at the source down, the first
//     whose signature is trusted (Options.VerifySignature), whose manifest is
//     for this channel, and whose every file - objects, the lists they are
//     read from (each list hashed while read), Elasticsearch repository
//     files - is present at the source with its size. Presence is decided
//     from one directory listing per directory. Newer sets that fail are
//     reported (Result.Skipped) and never forwarded. No such set:
//     ErrSourceIncomplete, joined with why the newest set failed (not
//     signed yet, not authentic, another channel, corrupt), which decides
//     the exit code.
//  4. Decide what the destination lacks, again from one listing per
//     directory (listings run in parallel): a file absent or of another size is copied; one present
//     with the right size is trusted only if Checked remembers having
//     verified it, with the SHA-256 this set wants, at the same size and
//     modification time (es/index.latest keeps its name from set to set),
//     else it is
//     hashed at the destination first and copied again if it differs. A
//     file that Checked remembers, unchanged, with the SHA-256 an older set
//     wanted is an update, copied without hashing; a differing file counts
//     as damaged (Result.Replaced) only where the destination was known
//     (Checked), or without a record supposed, to hold what this set
//     wants - never for a new version of es/index.latest.
//     (Times over SFTP have whole seconds; Options.Checksum re-hashes
//     everything, for bit rot that keeps size and time.)
//  5. Copy in the write-order phases: objects and Elasticsearch data blobs;
//     then the repository's index-N; then index.latest (written from the
//     set's generation, so a source whose Elasticsearch already moved on
//     still yields this set's repository state); then manifest.json; then
//     manifest.json.sig, which makes the set exist. Each file is written
//     to manifest.MoverTempPrefix+name, hashed while written, compared with the manifest
//     (size and SHA-256), made durable, and renamed over its final name; a
//     mismatch removes the temporary file (ErrCorrupt). On a local disk
//     (Local, Linux) the temporary file has no name at all (O_TMPFILE) and
//     the rename links it: nothing of it is visible before then, and
//     writers in one directory do not wait on its lock. Small files are read
//     whole and checked before anything is written. Where the destination
//     can sync its whole file system (FSSyncer: syncfs(2) locally, "sync -f"
//     in a shell kept open over the SSH connection), small files go in
//     batches of up to 8192 (fewer at a phase's end: batchSize): all
//     written under their temporary names without fsync, one syncfs,
//     then all renamed; one more syncfs at the end of
//     each phase makes the renames durable before the next phase (and so
//     before the manifest). A batch is handed over in order as soon as its
//     writes are queued and finished (answered, synced, renamed) behind
//     the copy, up to 4 at once. Through the helper (LaterWriter) a
//     batch's writes and renames are queued without a goroutine waiting
//     for each one; one remote.Later.Wait per batch collects their
//     results. A helper that can keeps the batch's temporary names as it
//     writes them (remote.Later.Keep), and one request per helper then
//     syncs and renames them all without the names sent again
//     (renameKept). Through the helper a large file among a phase's
//     small ones is streamed, fsynced and renamed on its own behind the
//     batches (streamBehind, BigWorkers at once), so that a batch's end
//     never waits for its round trips; the phase's end waits for it. A phase of a few small files (index-N, index.latest,
//     manifest, signature) is one request (Publisher: each written and
//     fsynced, renamed, the directories fsynced): a helper request where
//     the helper offers it, over SFTP alone one tar session whose stream
//     ends with the script that syncs and renames them (sftpstage.go).
//     Otherwise (an account that may not run
//     commands, found out once per run) each file is fsynced before its
//     rename and directories are fsynced between phases where the backend
//     can. Large files are always fsynced one by one. A crash or a dropped connection
//     at any point leaves at most temporary files (overwritten by the rerun,
//     removed by the next prune) and complete files that a rerun keeps.
//  6. Older sets (history.go): every set older than the newest that the
//     source holds and the destination lacks (no signature there) is
//     copied the same way, oldest first, after the newest - the one the
//     standby restores, whose repository generation makes the older ones
//     whole. An older set is copied without the repository metadata that
//     generation superseded (manifest.IsESMetadata; Elasticsearch deleted
//     it at the source) and never with index.latest. One that is not
//     complete and trusted at the source is left out (Result.Older says
//     why). Finding nothing lacking costs one listing per set directory.
//  7. Prune: destination sets the source no longer has are removed
//     (signature first) unless the destination's pins/ names them; then
//     every object and Elasticsearch file that no kept set references and
//     the source no longer has. Nothing is copied from pending-*, tests-*,
//     .tmp-*, locks/ or pins/ because only files a signed manifest lists are
//     ever copied.
//
// A destination that already holds a newer signed set than the source's
// newest complete one is left alone (Result.DstNewer).
//
// # Memory
//
// Nothing is kept per file across the whole set. Steps 3-5 work in 256
// buckets (bucketOf: one per objects/<aa>; any other file by a hash of
// its directory, so that a directory is in one bucket): the set's files
// are spooled to temporary bucket files while its lists are read
// (bucketFiles, setFiles); the plan takes a bucket at a time (8 at once)
// with one listing of each of its directories at both ends and the
// bucket's part of Checked (through the helper, the destination's
// listings of 32 buckets come in a few requests, DirsLister), and writes
// what to copy or hash back to disk
// (plan); the copy streams that bucket by bucket into its batches
// (wantStream). Checked keeps its lines sorted by bucket on disk, and this
// run's changes in a journal by bucket. Prune reads what the kept sets
// need from one spool, a bucket at a time. The spools are directories
// beside the cache file (Checked.spoolBase; the system temporary directory
// only without a cache), each locked while in use: the next run removes
// those a killed run left.
package mover
