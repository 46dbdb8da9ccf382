package filetree

// Capture (the backup side of this package).
//
// Capture walks a tree depth first, the names of each directory in byte
// order, which is exactly manifest.ComparePaths order, so the file list can
// be streamed into an object (manifest.PutList) without sorting or holding
// it in memory. Every directory, regular file and symlink becomes an Entry
// with its permission bits, owner, mtime, and for files the SHA-256 of the
// content (= the object's name), for symlinks the link text. Sockets,
// devices and FIFOs are skipped and counted.
//
// Incremental: a CaptureCache holds each file's identity when it was last
// read (size, mtime to the nanosecond, inode) and the object that holds
// its content, in a file sorted in walk order. Capture reads it alongside
// the walk, as a merge (the walk's paths come in the same order), and
// writes the next one beside it (CacheDir) as entries come out of the
// walk, so neither cache is held in memory. A file whose identity is
// unchanged reuses that object and is not opened at all; only new or
// changed files are read, by a few workers in parallel (I/O bound on
// NFS/SFTP), and stored through an objects.Batch, which hashes while it
// writes (a file is read once) and makes a batch of objects durable with
// one syncfs. Entries are still written in walk order: the writer waits
// for each file's worker.
//
// The cache also keeps each directory's list memo (the digest of its
// lines and its list object): a directory whose lines are the same reuses
// its list without encoding, hashing or storing it, once Capture has
// checked the object is still in the store. With nothing changed, a
// capture costs an lstat per file (fstatat relative to the open directory
// on Linux), a merge with the cache, and one stat per directory.
//
// Memory: the listings and lists of the directories on the walk's path,
// the read-ahead of a few sibling directories, a chunk of entries on its
// way to the writer (one channel hop per 256 entries) and the queue of
// files waiting for their workers; never a structure per file of the
// tree.
//
// The cache belongs to the set it was made for: backup saves it only after
// that set is published and ignores a cache whose set is gone (pruned, or
// never published), because only a retained set keeps its objects alive.
//
// Sources: LocalSource (a directory; inode from stat) and SFTPSource (a
// directory on the leader over SFTP; SFTP has no inode and mtimes in
// seconds, so its identity is size + mtime only). Both implement Source;
// one test suite runs against both.
