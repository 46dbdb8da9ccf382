#!/bin/bash
# transfer against `rsync -a` over the same loopback sshd, side by side in
# one run (Go benchmarks in transfer/bench_test.go):
#   BenchmarkLargeBlobs  2 GiB of 128 MiB blobs, first copy       (target: x-rsync >= 1.3)
#   BenchmarkSmallFiles  100k files of 4 KiB, first copy          (target: x-rsync >= 1)
#                        and again with nothing to do             (target: noop-time-ratio <= 0.5)
# Each line reports both programs' figures and the ratio.
#
# Usage: bench/transfer.sh [go test -bench regexp]
# Environment: BCP_BENCH_SCALE (default 1; 0.1 for a quick look),
#              BENCH_OUT (default bench/out) where the raw output is kept.
# Needs: rsync, openssh-server (sshd), ~5 GiB free in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-bench/out}
mkdir -p "$out"
pattern=${1:-'LargeBlobs|SmallFiles|Noop'} # BenchmarkWAN: bench/wan.sh
log="$out/${BENCH_NAME:-transfer}-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
	echo "# $(date -u) scale=${BCP_BENCH_SCALE:-1} load: $(cut -d' ' -f1-3 /proc/loadavg) cpus: $(nproc)"
	(cd transfer && go test -run '^$' -bench "$pattern" -benchtime 1x -timeout 120m .)
} 2>&1 | tee "$log"
echo "raw output: $log"
