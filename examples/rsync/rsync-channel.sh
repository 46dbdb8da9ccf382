#!/bin/bash
# Move a Squirro BCP channel with rsync over SSH in the order the channel's
# write-order rules require, then seal it with `transfer verify`.
#
# Usage: rsync-channel.sh SRC DST
#   SRC  the source channel, e.g. bcp@prod-nfs:/mnt/bcp/prod-to-bcp (or a local dir)
#   DST  the channel directory on this (standby) side, e.g. /mnt/bcp/prod-to-bcp
#
# Environment:
#   RSYNC_RSH      the ssh command rsync uses; host keys must be checked, e.g.
#                  "ssh -i /etc/squirro-bcp/id_ed25519 -o UserKnownHostsFile=/etc/squirro-bcp/known_hosts
#                   -o StrictHostKeyChecking=yes -o BatchMode=yes"
#   RSYNC_BWLIMIT  optional rsync --bwlimit (KiB/s)
#   TRANSFER       the transfer program (default: transfer in PATH)
#   BCP_TRANSFER_ALLOWED_SIGNERS or BCP_TRANSFER_CONFIG  for `transfer verify`
#
# Order (each pass only starts when the previous one finished):
#   1. data: channel.json, objects/, es/ blobs - everything except sets/ and
#      the repository's root generation files
#   2. es/index-N   3. es/index.latest   (Elasticsearch's own safe order)
#   4. sets/ (manifests and signatures) last
#   5. transfer verify DST: exit 0 complete, 4 incomplete or not signed yet
#      (lists what is missing; rerun later), 5 corrupt or not authentic (alert).
# rsync writes each file under a temporary name and renames it, so no file is
# ever half-written under its final name. epochs/ (signed records of each
# promotion) are copied before sets/ and never overwritten. Never copied: locks/ (the source's
# backup lock), pins/ (the standby's own), .tmp-* (unfinished files), and
# Elasticsearch's pending-* and tests-* temporary blobs.
#
# Pruning: this script never deletes. `transfer pull` mirrors the source's
# retention while keeping what the standby's pins need; prefer it where SSH
# allows, or prune with `backup prune`-style retention on the standby.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 SRC DST" >&2
	exit 2
fi
src=${1%/}
dst=${2%/}
transfer=${TRANSFER:-transfer}

opts=(-a --no-owner --no-group
	--exclude=/locks/ --exclude=/pins/ --exclude='.tmp-*' --exclude='pending-*' --exclude='/es/tests-*')
if [ -n "${RSYNC_BWLIMIT:-}" ]; then
	opts+=(--bwlimit="$RSYNC_BWLIMIT")
fi
mkdir -p "$dst"

# 1. data; fencing epoch records are added, never replaced: the
# destination may hold its own site's promotion record of the same epoch
rsync "${opts[@]}" --exclude=/sets/ --exclude=/epochs/ --exclude='/es/index-*' --exclude=/es/index.latest "$src/" "$dst/"
rsync "${opts[@]}" --ignore-existing --include='/epochs/***' --exclude='*' "$src/" "$dst/"
# 2. repository generations, 3. the pointer to the newest one
rsync "${opts[@]}" --include=/es/ --include='/es/index-*' --exclude='*' "$src/" "$dst/"
rsync "${opts[@]}" --include=/es/ --include=/es/index.latest --exclude='*' "$src/" "$dst/"
# 4. manifests and signatures last
rsync "${opts[@]}" --include='/sets/***' --exclude='*' "$src/" "$dst/"
# 5. seal
exec "$transfer" verify "$dst"
