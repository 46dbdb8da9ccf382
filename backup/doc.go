// Command backup is the prod side of the replication: it dumps MySQL,
// captures the storage (and optionally config) tree, snapshots
// Elasticsearch into the NFS channel, and publishes a signed manifest.
//
// Commands: check (stage 1 only), run, list, prune, init. Every setting is a
// flag, an environment variable BCP_BACKUP_<NAME> and a key of the TOML file
// given by --config (see examples/backup.toml).
//
// A run, in order:
//
//  1. Preflight (changes nothing). Role file must say active (else exit 6).
//     The leader is found (static name, writable MySQL, or an HTTP cluster
//     service plus a JSON field); any other node stops here with exit 0 and
//     one line, so cron can run on every node. Then every check runs and
//     every failure is collected (exit 3 lists them all, each with what to
//     do): channel exists, its identity's source is this site (else exit 6),
//     it is writable, it has room for what the last run added plus a
//     margin; Elasticsearch answers, has a master (an even number of
//     master-eligible nodes is warned about), no backed-up index lacks a
//     primary (the snapshot would be PARTIAL), the repository location is
//     below every node's path.repo and any existing registration points at
//     it; MySQL answers with the credentials; the roots exist; the signing
//     key loads.
//  2. The channel lock (locks/backup.lock: host, pid, start; a dead
//     process's lock on this host is taken over; otherwise exit 6). The
//     sequence is the highest set directory's + 1, so a crashed publish is
//     never reused.
//  3. MySQL: mysqldump --single-transaction --routines --triggers --events,
//     locally or on the leader over SSH, the password in a 0600 option
//     file, streamed through zstd into the object store (hashed as it is
//     written); row counts per table are counted from the stream itself.
//  4. Files: each root is captured incrementally (see internal/filetree);
//     a file with the size, mtime and inode of the cache is not opened.
//  5. Elasticsearch: the es/ repository is registered if missing; running
//     snapshots left by a killed run are aborted and finished snapshots no
//     signed set references are deleted through the API; the snapshot
//     (named after the set id, lower case) is taken and waited for; any
//     state but SUCCESS fails the run naming every failed shard, and the
//     failed snapshot is deleted. The repository files it needs are listed
//     and hashed, except files already known by name and size from the
//     previous set (Elasticsearch never rewrites a blob).
//     This stage runs last on purpose: a failure in MySQL or files then
//     leaves the repository generation, and so every earlier set, intact.
//  6. Publish: lists are objects already; manifest.Publish writes the
//     manifest, then its SSHSIG signature, each atomically. Only then are
//     the capture caches saved, tied to the new set.
//
// Around a run: the Prometheus textfile (last run, last success, per stage
// duration and bytes) and, on failure, an alert by mail and/or webhook.
//
// Retention (prune): keeps the newest N signed sets, those newer than a
// duration, and every pinned set; deletes the others (signature first);
// then objects no kept set references and older than the grace period.
// Elasticsearch snapshots of pruned sets are deleted through the API by the
// next run (or at once with --es-now).
package main
