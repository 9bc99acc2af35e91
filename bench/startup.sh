#!/usr/bin/env bash
# Start-up cost of warren next to runc and crun, measured in one run:
# foreground `run` of /bin/true from the same busybox bundle, N times each,
# interleaved by hyperfine. Prints medians and ratios.
#
# crun 1.8 refuses this host's hybrid cgroup layout, so the whole comparison
# runs in a private mount namespace where /sys/fs/cgroup/unified is replaced
# by an empty tmpfs (the host's mounts are never touched).
#
# Usage: bench/startup.sh [path/to/warren] [runs]
set -euo pipefail
WARREN=$(readlink -f "${1:-bin/warren}")
RUNS=${2:-100}
if [ -z "${WARREN_BENCH_INNER:-}" ]; then
	for t in hyperfine runc crun busybox python3; do
		command -v "$t" >/dev/null || { echo "bench: $t is missing (apt-get install hyperfine runc crun busybox-static)" >&2; exit 1; }
	done
	exec env WARREN_BENCH_INNER=1 unshare --mount --propagation private -- "$0" "$WARREN" "$RUNS"
fi
umount /sys/fs/cgroup/unified 2>/dev/null || true
mount -t tmpfs -o size=1m tmpfs /sys/fs/cgroup/unified

work=$(mktemp -d /tmp/warren-bench.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
b="$work/bundle"
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp"
cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
ln -s busybox "$b/rootfs/bin/true"
(cd "$b" && "$WARREN" spec)
python3 - "$b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
# crun 1.8 rejects versions newer than the spec it knows.
c["ociVersion"] = "1.0.2"
json.dump(c, open(p, "w"))
PY
cd "$b"
i=0
hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/r.json" \
	-n warren "$WARREN --root $work/w run w\$RANDOM\$RANDOM" \
	-n crun "crun --root $work/c run c\$RANDOM\$RANDOM" \
	-n runc "runc --root $work/r run r\$RANDOM\$RANDOM" >/dev/null 2>&1 || {
	# hyperfine -N does not expand $RANDOM: fall back to a shell.
	hyperfine --warmup 5 --runs "$RUNS" --export-json "$work/r.json" \
		-n warren "$WARREN --root $work/w run w\$RANDOM\$RANDOM" \
		-n crun "crun --root $work/c run c\$RANDOM\$RANDOM" \
		-n runc "runc --root $work/r run r\$RANDOM\$RANDOM" >/dev/null
}
python3 - "$work/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
med = {k: v["median"] * 1000 for k, v in r.items()}
print(f"foreground run of /bin/true, median of {len(r['warren']['times'])} runs each")
print(f"{'runtime':8} {'median ms':>10} {'vs warren':>10}")
for k in ("warren", "crun", "runc"):
    print(f"{k:8} {med[k]:10.2f} {med[k]/med['warren']:10.2f}")
print(f"warren/crun = {med['warren']/med['crun']:.2f}   warren/runc = {med['warren']/med['runc']:.2f}")
PY
