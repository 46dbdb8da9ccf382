// Command transfer moves a Squirro BCP channel to the standby site, or
// checks what another mover (rsync, NetApp SnapMirror) moved.
//
//	transfer push SRC-DIR DST         DST: a directory or sftp://user@host:port/path
//	transfer pull SRC DST-DIR         SRC: sftp://... or a directory
//	transfer verify DIR [--set ID]    0 complete, 4 incomplete or not signed yet (lists what is missing), 5 corrupt or not authentic, 6 another channel
//	transfer wait DIR --timeout D     until a set newer than the last one seen is complete, else 4
//	transfer status SRC DST           newest set on each side and the lag
//
// push and pull hand both ends to internal/mover, which picks the newest
// set that is complete and signed at the source (then, the same way, every
// older one the destination lacks, oldest first), copies only what the
// destination lacks in the channel's write order (data, index-N,
// index.latest, manifest, signature last), each file under a temporary
// name, hashed, compared, made durable and renamed (small files in batches
// made durable by one syncfs - over SFTP one "sync -f" in a shell on the
// server when the account may run commands, else an fsync per file), then
// mirrors the source's pruning except what the destination's pins/ need. SFTP ends are reached
// through internal/sshx: host keys always checked against ssh-known-hosts
// (default /etc/squirro-bcp/known_hosts, as for backup and restore; a missing
// file fails naming it; mismatch: exit 6 with both fingerprints), ssh-key or
// ssh-agent, AES-GCM
// first, keep-alives; SSH connections (one per two CPUs here, at most four:
// --connections) with several SFTP sessions each, the rest opened only when
// there is work.
//
// After each push or pull, the Prometheus textfile (metrics-file) and, on
// failure other than "no complete set yet" (exit 4), an alert (alert-*),
// as backup run does (report.go).
//
// verify and wait are manifest.Verify over a directory (every file's size
// and SHA-256, with a file-identity cache so unchanged files are not read
// again); wait remembers the last set it reported in a state file.
//
// Every setting is a flag, an environment variable BCP_TRANSFER_<FLAG> and a
// key of the TOML file given with --config. Exit codes are mapped from
// errors in one table (exit.go).
package main
