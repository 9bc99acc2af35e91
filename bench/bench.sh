#!/usr/bin/env bash
# warren next to runc and crun, side by side in one run (bench/bench.py does
# the measuring): create->start->state->delete x100, foreground run x100,
# exec x100 into a running container, peak RSS of one `run`, and the
# smallest memory limit at which `run /bin/true` succeeds.
#
# crun 1.8 refuses this host's hybrid cgroup layout, so everything runs in a
# private mount namespace where /sys/fs/cgroup/unified is replaced by an
# empty tmpfs (the host's mounts are never touched).
#
# Usage: bench/bench.sh [path/to/warren]    (BENCH_REPS, BENCH_N: see bench.py)
set -euo pipefail
WARREN=$(readlink -f "${1:-bin/warren}")
if [ -z "${WARREN_BENCH_INNER:-}" ]; then
	for t in runc crun busybox python3 unshare gcc; do
		command -v "$t" >/dev/null || { echo "bench: $t is missing (apt-get install runc crun busybox-static python3 util-linux gcc libc6-dev)" >&2; exit 1; }
	done
	[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
	exec env WARREN_BENCH_INNER=1 unshare --mount --propagation private -- "$0" "$WARREN"
fi
if mountpoint -q /sys/fs/cgroup/unified; then
	umount /sys/fs/cgroup/unified
	# crun leaves a directory per container in it: bench.py empties it
	# after each loop.
	mount -t tmpfs -o size=64m tmpfs /sys/fs/cgroup/unified
	export BENCH_SCRATCH_UNIFIED=/sys/fs/cgroup/unified
fi
maxrss=$(mktemp /tmp/warren-maxrss.XXXXXX)
trap 'rm -f "$maxrss"' EXIT
gcc -O2 -static -o "$maxrss" "$(dirname "$0")/maxrss.c"
python3 "$(dirname "$0")/bench.py" "$WARREN" "$maxrss"
