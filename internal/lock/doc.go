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
//   - otherwise (a live process here, or any process on another host, whose
//     liveness cannot be known from here) Acquire returns ErrLocked naming
//     the holder, and the person can remove the file if sure it is dead.
//
// Release removes the file only if it still holds this process's record.
package lock
