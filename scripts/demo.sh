#!/usr/bin/env bash
# Runs one container from a busybox bundle and shows what it sees next to
# what the host sees. Usage: scripts/demo.sh [path/to/warren]
set -euo pipefail

WARREN=$(readlink -f "${1:-bin/warren}")
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: the demo runs as root: sudo make demo (an unprivileged user runs containers with warren spec --rootless, see docs/rootless.md)" >&2
	exit 1
fi
if [ ! -x /bin/busybox ] || ! /bin/busybox --list >/dev/null 2>&1 || ! file -L /bin/busybox 2>/dev/null | grep -q static; then
	echo "demo: installing busybox-static"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi

work=$(mktemp -d /tmp/warren-demo.XXXXXX)
chmod 755 "$work"
root="$work/state"
trap '"$WARREN" --root "$root" delete --force demo >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/etc" "$bundle/rootfs/tmp"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$bundle/rootfs/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$bundle/rootfs/etc/passwd"
echo "root:x:0:" >"$bundle/rootfs/etc/group"

host_ns() {
	for t in cgroup ipc mnt net pid time user uts; do
		printf '%s ' "$t:$(stat -L -c %i /proc/self/ns/$t)"
	done
}
HOST_NS=$(host_ns)

cd "$bundle"
"$WARREN" spec
# A demo config: no terminal, a hostname, and a script that reports.
python3 - "$HOST_NS" <<'PY'
import json, sys
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["hostname"] = "warren-demo"
# All eight namespaces new: a user namespace whose root is host uid 100000
# (the seed's tenant pattern) and a time namespace.
c["linux"]["namespaces"] += [{"type": "user"}, {"type": "time"}]
c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
c["process"]["args"] = ["sh", "-c", r'''
echo "== hostname:   $(hostname)"
echo "== id:         $(id)"
echo "== uid_map:    $(cat /proc/self/uid_map | tr -s ' ')"
echo "== ps (the container's own pid namespace: sh is PID 1):"
ps -o pid,user,comm
echo "== namespaces (inode inside vs host):"
host="''' + sys.argv[1] + r'''"
for t in cgroup ipc mnt net pid time user uts; do
  in=$(stat -L -c %i /proc/self/ns/$t)
  h=$(echo "$host" | tr ' ' '\n' | grep "^$t:" | cut -d: -f2)
  if [ "$in" = "$h" ]; then s="shared with host"; else s="new"; fi
  printf '   %-7s container %-11s host %-11s %s\n' "$t" "$in" "$h" "$s"
done
echo "== capabilities:"; grep Cap /proc/self/status | sed 's/^/   /'
echo "== mounts:"; cat /proc/self/mounts | sed 's/^/   /'
echo "== network interfaces:"; ls /sys/class/net | sed 's/^/   /'
''']
json.dump(c, open("config.json", "w"), indent=2)
PY

echo "== host: warren $("$WARREN" --version | head -1 | cut -d' ' -f3), bundle $bundle"
set +e
"$WARREN" --root "$root" run demo
rc=$?
set -e
echo "== container exited with status $rc; state left behind: $(ls "$root" 2>/dev/null | wc -l) containers"
exit $rc
