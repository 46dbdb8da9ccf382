#!/bin/bash
# transfer between two data centres: push through the helper, push over
# SFTP alone (--remote-transfer none) and `rsync -a`, side by side in one
# run, over the same link - an in-process toxiproxy (testenv.WAN) in front
# of the same loopback sshd - at 50 ms RTT / 100 Mbit/s (far) and
# 10 ms / 1 Gbit/s (near) (BenchmarkWAN in transfer/wan_bench_test.go):
#   blobs   2 GiB of 128 MiB blobs, first copy    (target, far: >= 0.9x the link, >= 1.0x rsync; SFTP >= 0.8x rsync)
#   small   100k files of 4 KiB, first copy,      (target: >= 1.0x rsync; SFTP >= 0.8x rsync)
#           then nothing to do (median of 3 each); for rsync and the
#           helper, when 1% of the bytes had passed (start-s), how long
#           the run went on after 99% (end-s) and the rate between
#           (flow-MB/s), with the bytes each put on the wire (wire-MB)
#   change  a 1% change of a 1M-file storage set (1000 files a directory,
#           as bench/scale.sh), the destination holding the previous set;
#           rsync -a of the channel beside it (same targets as small)
#   text    40k JSON documents of ~8 KiB and 8 text segments of 16 MiB
#           (compress ~4x), first copy: rsync -a, rsync -az, push (zstd
#           where it gains) and push --compress=false, with the bytes each
#           put on the wire
#   bwlimit --bwlimit 4M for a minute of data: the run's rate and the
#           steady rate on the wire (10% to 90% of the bytes) against the limit
# Figures and what limits each case: bench/wan.md.
#
# Usage: bench/wan.sh [sub-benchmark regexp, e.g. 'far/blobs']
# Environment: BCP_BENCH_SCALE (default 1, about 30 minutes; 0.05 for a
#              quick look), BENCH_OUT (default bench/out) for the raw output,
#              BCP_BENCH_BIN (default: this tree's build) the transfer
#              program to push with, e.g. an older build to compare,
#              BCP_BENCH_SAMPLES (default none) a directory where the small
#              case writes its link samples (rsync.txt, transfer.txt:
#              seconds and bytes every 50 ms) to see where a run stalled.
# Needs: rsync, openssh-server (sshd), ~7 GiB free in $TMPDIR.
set -euo pipefail
BENCH_NAME=wan exec "$(dirname "$0")/transfer.sh" "BenchmarkWAN/${1:-.}"
