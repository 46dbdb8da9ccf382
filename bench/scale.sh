#!/bin/bash
# A million-file storage, files stage only, each step beside `rsync -a`
# doing the same job, in one run (issue 15). Prints wall time and peak RSS
# (GNU time's %M) of every program as its own process.
#
#   backup     = scalebench capture: filetree.Capture with the capture cache
#                into the channel's objects, then a signed manifest.Publish
#                (backup's files stage and publish, without ES and MySQL)
#   transfer   = the real `transfer push` (dir to dir, and over a loopback
#                sshd through its helper beside `rsync -a -e ssh`) and
#                `transfer verify`
#   restore    = scalebench restore: filetree.Apply of the newest set onto
#                a local directory (restore's files stage); it records the
#                tree it applied and the 1% restore skips the directories
#                whose list did not change, as restore does
#
# Usage: bench/scale.sh            (BCP_SCALE_FILES=1000000 by default;
#        BCP_SCALE_FILES=100000 bench/scale.sh for a quick look)
# Environment: BCP_SCALE_DIR (default $TMPDIR/bcp-scale, removed first),
#              BENCH_OUT (default bench/out) where the output is kept.
# Needs: rsync, GNU time (/usr/bin/time), ssh-keygen, openssh-server
# (sshd, started here on a loopback port); ~4 GiB free per million files.
# Comparable figures need a fresh file system: on an ext4 that many runs
# have filled and emptied, creating a million files costs both programs
# up to 4 times what it costs on a new one (bench/scale.md, session 7).
# As root, a new ext4 with inodes for 10 trees of a million files, through
# a loop device with direct I/O (so the page cache holds each page once):
#   truncate -s 60G /var/tmp/scale.img && mkfs.ext4 -q -N 12000000 /var/tmp/scale.img
#   mount "$(losetup -f --direct-io=on --show /var/tmp/scale.img)" /mnt
#   BCP_SCALE_DIR=/mnt/scale bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
n=${BCP_SCALE_FILES:-1000000}
w=${BCP_SCALE_DIR:-${TMPDIR:-/tmp}/bcp-scale}
out=${BENCH_OUT:-bench/out}
mkdir -p "$out"
log="$out/scale-$n-$(date -u +%Y%m%dT%H%M%SZ).txt"
rm -rf "$w"
mkdir -p "$w/bin"
go build -o "$w/bin/scalebench" ./internal/cmd/scalebench
go build -o "$w/bin/transfer" ./transfer
ssh-keygen -q -t ed25519 -N '' -f "$w/key"
echo "bench namespaces=\"manifest@squirro-bcp\" $(cut -d' ' -f1,2 "$w/key.pub")" > "$w/allowed_signers"
sb="$w/bin/scalebench"
tr="$w/bin/transfer"
: >"$w/transfer.toml"
tc=(--config "$w/transfer.toml" --allowed-signers "$w/allowed_signers")

# measure LABEL CMD...: one line "LABEL seconds peak-RSS-MiB". What
# the steps before wrote is on disk first (sync): our programs make what
# they wrote durable with a syncfs(2) of the file system, which would
# otherwise flush every dirty page of the steps before too (the 300k trees
# rsync had just written: 2.5 s against 0.9 s for the backup of a 1%
# change), while rsync never syncs
measure() {
	local label=$1
	shift
	sync
	/usr/bin/time -f '%e %M' -o "$w/time" "$@" >>"$w/cmd.log" 2>&1 || { echo "$label FAILED (see $w/cmd.log)"; tail -5 "$w/cmd.log"; exit 1; }
	read -r secs kb <"$w/time"
	printf '%-44s %8.1f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb/1024" | bc -l)"
}
chsize() { du -sb "$w/ch/objects" | cut -f1; }
# warm DIR: every file of DIR read into the page cache, before each step
# that reads it, for both programs: on this machine the trees of a run
# (4 KiB of page cache per 900-byte file, 4 GiB a tree at 1M) do not all
# fit in memory, and the second program of a pair would otherwise find
# what the first had read (tar to a pipe: GNU tar does not read what it
# writes to /dev/null)
warm() { tar -cf - -C "$1" . | cat >/dev/null; }

{
	echo "# $(date -u) files=$n load: $(cut -d' ' -f1-3 /proc/loadavg) cpus: $(nproc) $(rsync --version | head -1)"
	echo "# generating $n files of ~900 bytes, 1000 per directory, in $w/tree"
	"$sb" gen "$w/tree" "$n"
	echo "step                                          wall          peak RSS"
	warm "$w/tree"
	measure "backup, first capture" "$sb" capture "$w/ch" "$w/tree" "$w/cache" "$w/key"
	warm "$w/tree"
	measure "  rsync -a, first copy" rsync -a "$w/tree/" "$w/rsync-copy/"
	before=$(chsize)
	# both no-op walks find the tree's inodes cached (du stats every file):
	# otherwise the first of the pair pays the cold cache for both
	du -s "$w/tree" >/dev/null
	measure "backup, nothing changed" "$sb" capture "$w/ch" "$w/tree" "$w/cache" "$w/key"
	echo "  channel grew by $(($(chsize) - before)) bytes of objects (plus the manifest); lists of the set: $("$sb" lists "$w/ch")"
	measure "  rsync -a, nothing to do" rsync -a "$w/tree/" "$w/rsync-copy/"
	warm "$w/ch"
	measure "transfer push dir to dir, first" "$tr" push "${tc[@]}" --cache "$w/push-cache" "$w/ch" "$w/dst"
	warm "$w/ch"
	measure "  rsync -a of the channel, first" rsync -a "$w/ch/" "$w/rsync-ch/"
	measure "transfer push, nothing to do" "$tr" push "${tc[@]}" --cache "$w/push-cache" "$w/ch" "$w/dst"
	measure "  rsync -a of the channel, nothing to do" rsync -a "$w/ch/" "$w/rsync-ch/"
	# the same over SSH, to a loopback sshd: push through its helper (this
	# build, started on the far side), rsync -a -e ssh beside it. The sshd
	# stops when this script ends (its stdin, fd 3, closes).
	exec 3> >("$sb" sshd "$w/sshd" >>"$w/cmd.log" 2>&1)
	for _ in $(seq 150); do [ -s "$w/sshd/env" ] && break; sleep 0.2; done
	# shellcheck disable=SC1091
	. "$w/sshd/env"
	st=(--ssh-key "$SSH_KEY" --ssh-known-hosts "$SSH_KNOWN_HOSTS" --remote-transfer "$tr")
	rsh="ssh -i $SSH_KEY -o UserKnownHostsFile=$SSH_KNOWN_HOSTS -o StrictHostKeyChecking=yes -o BatchMode=yes -p $SSH_PORT"
	warm "$w/ch"
	measure "transfer push over the loopback sshd, first" "$tr" push "${tc[@]}" "${st[@]}" --cache "$w/push-cache-ssh" "$w/ch" "sftp://$SSH_USER@127.0.0.1:$SSH_PORT$w/dst-ssh"
	warm "$w/ch"
	measure "  rsync -a -e ssh of the channel, first" rsync -a -e "$rsh" "$w/ch/" "$SSH_USER@127.0.0.1:$w/rsync-ch-ssh/"
	measure "transfer push over the loopback sshd, nothing to do" "$tr" push "${tc[@]}" "${st[@]}" --cache "$w/push-cache-ssh" "$w/ch" "sftp://$SSH_USER@127.0.0.1:$SSH_PORT$w/dst-ssh"
	measure "  rsync -a -e ssh of the channel, nothing to do" rsync -a -e "$rsh" "$w/ch/" "$SSH_USER@127.0.0.1:$w/rsync-ch-ssh/"
	warm "$w/dst"
	measure "transfer verify, no cache (page cache warm)" "$tr" verify "${tc[@]}" --cache off "$w/dst"
	warm "$w/dst"
	measure "restore, first into an empty dir" "$sb" restore "$w/dst" "$w/restored" "$w/restore-record"
	warm "$w/tree"
	measure "  rsync -a, first into an empty dir" rsync -a "$w/tree/" "$w/rsync-restored/"
	"$sb" change "$w/tree" 100
	echo "# changed 1% of the files (the first ones: new documents arrive together)"
	# each step of the 1% cycle, and rsync beside it, finds the metadata
	# of what it walks cached, as the no-op walks above: after the trees
	# of the steps between, whichever program walked a tree first would
	# otherwise pay its cold inodes for both (1.28 s against 0.64 s for
	# the backup of a 1% change at 300k, bench/scale.md)
	du -s "$w/tree" >/dev/null
	before=$(chsize)
	measure "backup, 1% changed" "$sb" capture "$w/ch" "$w/tree" "$w/cache" "$w/key"
	echo "  channel grew by $(($(chsize) - before)) bytes of objects; lists of the set: $("$sb" lists "$w/ch") (count bytes)"
	du -s "$w/ch/sets" "$w/dst/sets" >/dev/null
	measure "transfer push, 1% changed" "$tr" push "${tc[@]}" --cache "$w/push-cache" "$w/ch" "$w/dst"
	du -s "$w/restored" >/dev/null
	measure "restore, 1% changed (skipping directories unchanged since the first)" "$sb" restore "$w/dst" "$w/restored" "$w/restore-record"
	du -s "$w/tree" "$w/rsync-restored" >/dev/null
	measure "  rsync -a, the same 1% change" rsync -a "$w/tree/" "$w/rsync-restored/"
	if diff -r -q "$w/tree" "$w/restored" >/dev/null; then echo "# restored tree equals the source"; else echo "# RESTORED TREE DIFFERS"; fi
} 2>&1 | tee "$log"
echo "raw output: $log; work dir $w (remove it when done)"
