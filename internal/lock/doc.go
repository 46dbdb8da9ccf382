// Package lock is the per-channel run lock: one backup (or prune) at a time
// per channel, across every node that mounts the channel.
//
// The lock is a file <channel>/locks/<name>.lock created with O_EXCL (atomic
// on local file systems and on NFSv3/v4), holding JSON {host, pid, start,
// program, proc_start}, proc_start being the holder's start time in clock
// ticks since boot from /proc/<pid>/stat. When the file exists:
//   - held by a process on this host that no longer runs (kill(pid, 0) says
//     ESRCH, or the process with that pid started at another time than the
//     recorded proc_start: the pid was reused by an unrelated process after
//     the holder died or the host rebooted): the lock is stale (a crash,
//     kill -9, a reboot) and is taken
//     over: the stale file is renamed aside (only one contender can rename
//     it) and the create is retried;
//   - held with a lease (lease_seconds, renewed) that was not renewed for
//     longer than the lease: the holder's process or its whole host died
//     or hung; the lock has expired and is taken over the same way, from
//     any host. The age is the file's modification time as the file system
//     keeps it (on NFS the server's clock, the same for every node), or the
//     recorded renewal when later;
//   - otherwise (a live process here, or a process on another node, whose
//     liveness cannot be known from here, within its lease or without one)
//     Acquire returns ErrLocked naming the holder; without a lease the
//     person can remove the file if sure it is dead.
//
// Nodes of one cluster name themselves (Options.Host, the node-name
// setting), so that a dead holder on another node is judged by its lease.
//
// Keep renews the lease every third of it (the file is written aside and
// renamed over the lock) for as long as the run lives; two missed renewals
// (NFS briefly away) are harmless. If a renewal finds the lock taken over
// (the holder stalled past its lease), Keep cancels the run's context with
// ErrLost, so the run stops before it publishes. A holder that stalls
// exactly while the lock is taken over could overwrite the new holder's
// record once; the new holder's next renewal then finds it lost and stops,
// so at most one run goes on.
//
// Release stops the renewals and removes the file only if it still holds
// this process's record.
package lock
