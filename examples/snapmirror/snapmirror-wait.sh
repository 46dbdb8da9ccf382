#!/bin/bash
# After a NetApp SnapMirror update of the channel volume: wait until the
# mirror is idle, then until a set newer than the last one seen is complete,
# and print its id (for the standby's restore job, or an alert).
#
# SnapMirror makes a destination volume change all at once: the mirror is
# read-only and each update becomes visible as a whole when the transfer
# ends (it exposes the next Snapshot copy). So a set that is complete in one
# update stays complete; `transfer wait` only has to notice the new one.
#
# Usage: snapmirror-wait.sh DIR
#   DIR  the mounted mirror of the channel, e.g. /mnt/bcp-mirror/prod-to-bcp
#
# Environment:
#   SNAPMIRROR_STATUS_CMD  a command that succeeds when the relationship is
#                          idle (no transfer running), e.g.
#       ssh admin@filer "snapmirror show -destination-path svm_bcp:bcp_vol -fields status" | grep -qw Idle
#                          (default: true - rely on transfer wait alone)
#   WAIT_TIMEOUT           seconds to wait in all (default 1800)
#   POLL_INTERVAL          seconds between status polls (default 30)
#   TRANSFER               the transfer program (default: transfer in PATH)
#   BCP_TRANSFER_ALLOWED_SIGNERS or BCP_TRANSFER_CONFIG  for `transfer wait`
#
# Exit: 0 a new complete set (its id on stdout), 4 none before the timeout,
# 5 the new set is corrupt or not authentic (alert), 6 another channel.
set -euo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
transfer=${TRANSFER:-transfer}
status_cmd=${SNAPMIRROR_STATUS_CMD:-true}
secs=${WAIT_TIMEOUT:-1800}
interval=${POLL_INTERVAL:-30}

start=$(date +%s)
until bash -c "$status_cmd"; do
	if [ $(( $(date +%s) - start )) -ge "$secs" ]; then
		echo "$0: SnapMirror still transferring after ${secs}s" >&2
		exit 4
	fi
	sleep "$interval"
done
left=$(( secs - ($(date +%s) - start) ))
[ "$left" -lt 0 ] && left=0
exec "$transfer" wait "$dir" --timeout "${left}s" --interval "${interval}s"
