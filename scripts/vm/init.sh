#!/bin/sh
# /init of the test VM (busybox sh; PID 1). build-initramfs.sh puts it, with
# /etc/vm.conf, into the initramfs.
#
# Stage 1 moves everything from the initramfs onto a tmpfs and switch_roots
# there: pivot_root(2) fails with EINVAL while the caller's root is the
# initramfs "rootfs" mount (it has no parent mount), and warren pivots into
# every container's rootfs.
#
# Stage 2 sets the machine up like a cgroup-v2-only host (systemd's cgroup2
# mount options, controllers enabled in the root's subtree_control), runs
# the test binaries with their output on ttyS1 (the host's results.log),
# and hands the result to the host by writing a status byte to qemu's
# isa-debug-exit port 0xf4: qemu then exits with (status << 1) | 1.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

if [ "$1" != stage2 ]; then
	/bin/busybox --install -s
	mount -t tmpfs -o mode=0755 root /newroot
	for e in /*; do
		case $e in /newroot | /dev | /proc | /sys) continue ;; esac
		cp -a "$e" /newroot/
	done
	mkdir -p /newroot/dev /newroot/proc /newroot/sys
	# devtmpfs comes along through switch_root (it moves /newroot's mounts);
	# it gives stage 2 its console without a device node in the archive.
	mount -t devtmpfs devtmpfs /newroot/dev
	exec switch_root /newroot /init stage2
fi

exec </dev/console >/dev/console 2>&1
# shellcheck source=/dev/null
. /etc/vm.conf

say() { echo "warren-vm: $*"; }

# report STATUS: tell the host and power off. Never returns.
report() {
	st=$1
	[ "$st" -gt 127 ] && st=127
	echo "=== VM STATUS $st" >&3
	# Closing ttyS1 does not wait for the UART to drain unless it is the
	# last open; a stty setting uses TCSADRAIN, which does.
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
	exec 3>&-
	if [ -c /dev/port ]; then
		# The format is the octal escape of the status byte.
		# shellcheck disable=SC2059
		printf "\\$(printf %03o "$st")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
	fi
	say "could not write to the isa-debug-exit port; powering off"
	poweroff -f
	sleep 60
}

fail_setup() {
	say "setup failed: $*"
	echo "warren-vm: setup failed: $*" >&3
	report 126
}

# ttyS1 carries the results. raw: no "\n" -> "\r\n" translation.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
exec 3>/dev/ttyS1 || { say "no /dev/ttyS1"; poweroff -f; }

mount -t proc proc /proc || fail_setup "mount proc"
mount -t sysfs sysfs /sys || fail_setup "mount sysfs"
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fail_setup "mount devpts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || fail_setup "mount /dev/shm"
# /tmp stays on the root tmpfs: the integration tests compare mountinfo's
# "root" field of bind mounts with host paths under $TMPDIR, which only
# match when that directory's filesystem is mounted at /.
chmod 1777 /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail_setup "mount /run"
# The options systemd uses on a unified-hierarchy host.
mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup ||
	fail_setup "mount cgroup2 at /sys/fs/cgroup"
for c in $VM_CONTROLLERS; do
	echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control ||
		fail_setup "enabling the $c controller in /sys/fs/cgroup/cgroup.subtree_control (available: $(cat /sys/fs/cgroup/cgroup.controllers))"
done
ip link set lo up
hostname warren-vm

for m in /lib/modules/*.ko; do
	[ -e "$m" ] || continue
	insmod "$m" || fail_setup "insmod $m"
done

{
	echo "=== VM kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
	echo "=== VM root cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
} >&3

# Every test binary runs once from each cgroup of $VM_TEST_CGROUPS: "/" is
# the root cgroup (a host without systemd); a nested one is where systemd
# puts a service or a login shell, never in the root cgroup.
status=0
cd /root || fail_setup "cd /root"
for cg in ${VM_TEST_CGROUPS:-/}; do
	cg=/${cg#/}
	cg=${cg%/}
	mkdir -p "/sys/fs/cgroup$cg" || fail_setup "mkdir cgroup $cg"
	echo $$ >"/sys/fs/cgroup$cg/cgroup.procs" || fail_setup "joining cgroup ${cg:-/}"
	for t in /tests/*; do
		[ -x "$t" ] || continue
		name=${t##*/}
		name="${name#*-} [cgroup ${cg:-/}]"
		say "running $name"
		echo "=== VM RUN $name" >&3
		start=$(cut -d' ' -f1 /proc/uptime)
		# $VM_TEST_ARGS is split on purpose: it is a list of flags.
		# shellcheck disable=SC2086
		"$t" $VM_TEST_ARGS >&3 2>&1 </dev/null
		rc=$?
		end=$(cut -d' ' -f1 /proc/uptime)
		echo "=== VM EXIT $name: $rc ($(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s)" >&3
		say "$name exited $rc"
		[ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
	done
done
report "$status"
