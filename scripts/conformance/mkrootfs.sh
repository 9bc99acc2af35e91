#!/bin/sh
# Fallback rootfs for the validation suite when its module has none: a busybox
# tree (static /bin/busybox from the host) with the applets the programs run
# (sh, true, sleep, cat, echo, ls, ...) and the files runtimetest reads.
# usage: mkrootfs.sh OUT.tar.gz
set -eu
out=${1:?usage: mkrootfs.sh OUT.tar.gz}
bb=${BUSYBOX:-/bin/busybox}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/bin" "$t/sbin" "$t/usr/bin" "$t/etc" "$t/proc" "$t/sys" "$t/dev" "$t/tmp" "$t/root"
cp "$bb" "$t/bin/busybox"
for a in $("$bb" --list); do [ -e "$t/bin/$a" ] || ln -s busybox "$t/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$t/etc/passwd"
printf 'root:x:0:\n' >"$t/etc/group"
chmod 1777 "$t/tmp"
tar -C "$t" -czf "$out" .
