#!/usr/bin/env bash
# run-tests.sh — run test binaries as root on a cgroup-v2-only kernel in a
# qemu VM (TCG: no KVM needed) and exit non-zero unless all of them pass.
#
# usage: run-tests.sh [options] TESTBIN...
#   -w WARREN     static warren binary (default bin/warren)
#   -t TESTINIT   static testinit binary (default bin/testinit)
#   -e K=V        extra environment of the test binaries (repeatable)
#   -a ARGS       arguments of every test binary (default: $WARREN_VM_TEST_ARGS
#                 or "-test.v -test.count=1"; -test.timeout is added unless given)
#   -m MODULES    kernel modules to load at boot, e.g. overlay,veth,bridge
#   -g CGROUPS    comma-separated cgroups to run every test binary from, in
#                 turn (default "/", the root cgroup), e.g.
#                 /,/system.slice/warren-tests.service
#   -c CTRLS      controllers enabled in the root's subtree_control
#                 (default: cpu memory pids io cpuset)
#   -T SECONDS    hard limit for the whole VM run (default $WARREN_VM_TIMEOUT or 300)
#   -d DIR        work directory for the initramfs and logs (default _build/vm)
#   TESTBIN...    static test binaries (CGO_ENABLED=0 go test -c), run in order
#
# Environment: WARREN_VM_CACHE (kernel cache, see fetch-kernel.sh),
# WARREN_VM_MEM (MiB, default 1024), WARREN_VM_CPUS (default 2),
# WARREN_VM_APPEND (extra kernel command line), WARREN_VM_PVH=0 (boot the
# bzImage even when an ELF vmlinux was extracted).
#
# Output: the guest's test output (ttyS1, saved as DIR/results.log) is
# printed as it arrives; the kernel console (ttyS0) is saved as
# DIR/console.log and printed when the VM fails to report.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
say() { echo "vm: $*" >&2; }
die() { say "$*"; exit 1; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

warren=$repo/bin/warren testinit=$repo/bin/testinit workdir=$repo/_build/vm
args=${WARREN_VM_TEST_ARGS:--test.v -test.count=1}
timeout_s=${WARREN_VM_TIMEOUT:-300}
pass=()
while getopts "w:t:e:a:m:g:c:T:d:" opt; do
	case $opt in
	w) warren=$OPTARG ;;
	t) testinit=$OPTARG ;;
	e) pass+=(-e "$OPTARG") ;;
	a) args=$OPTARG ;;
	m) pass+=(-m "$OPTARG") ;;
	g) pass+=(-g "$OPTARG") ;;
	c) pass+=(-c "$OPTARG") ;;
	T) timeout_s=$OPTARG ;;
	d) workdir=$OPTARG ;;
	*) sed -n '2,/^set /p' "$0" | sed '$d' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || die "no test binaries given (usage: $0 [options] TESTBIN...)"

missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v cpio >/dev/null || missing+=(cpio)
[ -n "${missing[*]}" ] && die "missing tools: apt-get install ${missing[*]}"

# A hung test should end with Go's goroutine dump, not a silent VM kill:
# give each binary a test timeout inside the VM's limit.
case " $args " in
*" -test.timeout"*) ;;
*) args="$args -test.timeout=$((timeout_s > 60 ? timeout_s - 30 : timeout_s))s" ;;
esac

t0=$(now)
kdir=$("$here/fetch-kernel.sh")
t1=$(now)
say "kernel $(cat "$kdir/release") from $kdir ($(secs "$t0" "$t1") s)"

mkdir -p "$workdir"
# Uncompressed: inflating ~9 MiB of gzip under TCG costs ~0.5 s a boot.
initrd=$workdir/initramfs.cpio
"$here/build-initramfs.sh" -o "$initrd" -w "$warren" -t "$testinit" -k "$kdir" \
	-a "$args" ${pass[@]+"${pass[@]}"} "$@"
t2=$(now)
say "initramfs built ($(secs "$t1" "$t2") s)"

results=$workdir/results.log console=$workdir/console.log qerr=$workdir/qemu.err
qpid="" tpid=""
# timeout(1) runs qemu in its own process group, out of reach of a terminal's
# ^C: pass the signal on (timeout forwards it to qemu).
trap 'trap - INT TERM; [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; [ -n "$tpid" ] && kill "$tpid" 2>/dev/null; say "interrupted"; exit 130' INT TERM

# boot KERNEL: run the VM; sets rc. The guest writes its status byte to
# isa-debug-exit (port 0xf4), which makes qemu exit with (status << 1) | 1.
boot() {
	: >"$results"
	: >"$console"
	timeout -k 10 "$timeout_s" qemu-system-x86_64 \
		-accel tcg,thread=multi -cpu max -M pc \
		-m "${WARREN_VM_MEM:-1024}" -smp "${WARREN_VM_CPUS:-2}" \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$1" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 cgroup_no_v1=all ${WARREN_VM_APPEND:-}" \
		-serial "file:$console" -serial "file:$results" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		</dev/null 2>"$qerr" &
	qpid=$!
	# Stream the results while the VM runs. In the background, so that a
	# signal to this script runs the trap at once (bash defers traps until
	# a foreground command ends, but interrupts `wait`).
	tail -n +1 -s 0.2 -f --pid="$qpid" "$results" &
	tpid=$!
	rc=0
	wait "$qpid" || rc=$?
	qpid=""
	wait "$tpid" || true
}

kernel=$kdir/vmlinuz
if [ "${WARREN_VM_PVH:-1}" != 0 ] && [ -f "$kdir/vmlinux" ]; then
	kernel=$kdir/vmlinux
fi
say "booting $(basename "$kernel") under TCG (limit ${timeout_s}s): $# test binar$([ $# = 1 ] && echo y || echo ies)"
boot "$kernel"
if [ "$rc" = 1 ] && [ ! -s "$results" ] && [ "$kernel" != "$kdir/vmlinuz" ] && [ -s "$qerr" ]; then
	# qemu itself failed (it exits 1 on a bad configuration): an older
	# qemu cannot boot an ELF kernel via PVH.
	say "qemu could not boot $kernel: $(head -c 300 "$qerr"); retrying with vmlinuz"
	kernel=$kdir/vmlinuz
	boot "$kernel"
fi
t3=$(now)

status=$(sed -n 's/^=== VM STATUS \([0-9]*\).*/\1/p' "$results" | tail -n 1)
passed=$(grep -c '^--- PASS' "$results" || true)
failed=$(grep -c '^--- FAIL' "$results" || true)
skipped=$(grep -c '^--- SKIP' "$results" || true)

echo
say "timings: kernel $(secs "$t0" "$t1") s, initramfs $(secs "$t1" "$t2") s, VM (boot + tests + poweroff) $(secs "$t2" "$t3") s"
grep '^=== VM EXIT' "$results" | sed 's/^=== VM EXIT /vm: exit status of /' >&2 || true
if [ "$failed" -gt 0 ]; then
	say "failed tests:"
	awk '/^=== VM RUN / { run = substr($0, 12) } /^--- FAIL/ { print "    " run ": " $0 }' "$results" >&2
fi

ok=0
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	say "TIMEOUT: the VM did not finish within ${timeout_s}s (raise with -T or WARREN_VM_TIMEOUT)"
elif [ -z "$status" ]; then
	say "the VM ended (qemu exit $rc) without reporting a status"
elif [ $((rc & 1)) = 1 ] && [ $(((rc - 1) / 2)) != "$status" ]; then
	say "qemu exit $rc does not match the reported status $status"
elif [ "$status" = 126 ]; then
	say "the VM's setup failed (see above)"
elif [ "$status" = 0 ]; then
	ok=1
else
	say "a test binary failed (first non-zero exit: $status)"
fi
if [ "$ok" = 0 ] && [ -z "$status" ]; then
	[ -s "$qerr" ] && { say "qemu stderr:"; cat "$qerr" >&2; }
	say "kernel console (last 40 lines of $console):"
	tail -n 40 "$console" >&2
fi
echo "vm: $passed passed, $failed failed, $skipped skipped"
[ "$ok" = 1 ] || exit 1
