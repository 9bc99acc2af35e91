#!/usr/bin/env bash
# build-initramfs.sh — pack the test VM's initramfs: busybox, warren,
# testinit, the test binaries and init.sh as /init.
#
# usage: build-initramfs.sh -o OUT -w WARREN -t TESTINIT [options] TESTBIN...
#   -o OUT        the cpio archive to write (gzip-compressed if OUT ends in .gz)
#   -w WARREN     static warren binary          -> /bin/warren
#   -t TESTINIT   static tests/testinit binary  -> /bin/testinit
#   -b BUSYBOX    static busybox (default /bin/busybox) -> /bin/busybox
#   -k KDIR       kernel cache entry from fetch-kernel.sh (for -m)
#   -m MODULES    comma-separated kernel modules to insmod at boot, e.g.
#                 overlay,veth,bridge (dependencies are added from modules.dep)
#   -e K=V        environment of the test binaries (repeatable); WARREN_BINARY,
#                 WARREN_TESTINIT, PATH, HOME and TMPDIR are set already
#   -a ARGS       arguments of every test binary (default: -test.v -test.count=1)
#   -c CTRLS      controllers to enable in the root's cgroup.subtree_control
#                 (default: cpu memory pids io cpuset)
#   -g CGROUPS    comma-separated cgroups to run every test binary from,
#                 in turn (default "/", the root cgroup), e.g.
#                 /,/system.slice/warren-tests.service
#   TESTBIN...    test binaries, run in this order; each must be static (no
#                 ld.so or libc in the VM): build Go tests with CGO_ENABLED=0
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "build-initramfs: $*" >&2; exit 1; }

out="" warren="" testinit="" busybox=/bin/busybox kdir="" modules=""
args="-test.v -test.count=1" controllers="cpu memory pids io cpuset" cgroups=/
envs=()
while getopts "o:w:t:b:k:m:e:a:c:g:" opt; do
	case $opt in
	o) out=$OPTARG ;;
	w) warren=$OPTARG ;;
	t) testinit=$OPTARG ;;
	b) busybox=$OPTARG ;;
	k) kdir=$OPTARG ;;
	m) modules=$OPTARG ;;
	e) envs+=("$OPTARG") ;;
	a) args=$OPTARG ;;
	c) controllers=$OPTARG ;;
	g) cgroups=$OPTARG ;;
	*) sed -n '2,/^set /p' "$0" | sed '$d' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ -n "$out" ] || die "-o OUT is required"
[ -n "$warren" ] || die "-w WARREN is required"
[ -n "$testinit" ] || die "-t TESTINIT is required"
[ $# -gt 0 ] || die "no test binaries given"

# Everything in the VM runs without a dynamic loader.
need_static() {
	[ -f "$1" ] || die "$1: no such file"
	if LC_ALL=C readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		die "$1 is dynamically linked; the VM has no ld.so or libc (build it with CGO_ENABLED=0 or -extldflags -static)"
	fi
}
for f in "$warren" "$testinit" "$busybox" "$@"; do need_static "$f"; done
mkdir -p "$(dirname "$out")"
out=$(realpath -m "$out")

stage=$(mktemp -d "${TMPDIR:-/tmp}/warren-vm-initramfs.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,tests,newroot,dev,proc,sys,tmp,run,root}

install -m 0755 "$busybox" "$stage/bin/busybox"
# The other applet links are made by `busybox --install` at boot: one
# process there instead of ~270 `ln` forks here.
ln -s busybox "$stage/bin/sh"
install -m 0755 "$warren" "$stage/bin/warren"
install -m 0755 "$testinit" "$stage/bin/testinit"
install -m 0755 "$here/init.sh" "$stage/init"
n=0
for t in "$@"; do
	n=$((n + 1))
	install -m 0755 "$t" "$stage/tests/$(printf %02d "$n")-$(basename "$t")"
done

# warren-rootless: the unprivileged user of integration/rootless_test.go
# (without newuidmap here, only its tests that need no subordinate ids run).
cat >"$stage/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
warren-rootless:x:2000:2000:warren rootless tests:/nonexistent:/bin/false
EOF
cat >"$stage/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
warren-rootless:x:2000:
EOF
printf '127.0.0.1 localhost warren-vm\n::1 localhost\n' >"$stage/etc/hosts"

# Kernel modules with their dependencies, in load order, as NN-name.ko.
if [ -n "$modules" ]; then
	[ -n "$kdir" ] || die "-m needs -k KDIR (the kernel cache entry)"
	release=$(cat "$kdir/release")
	mdir="$kdir/lib/modules/$release"
	if [ ! -f "$mdir/modules.dep" ]; then
		# The package ships no modules.dep: its postinst runs depmod.
		command -v depmod >/dev/null || die "$mdir/modules.dep is missing and depmod is not installed (apt-get install kmod)"
		depmod -b "$kdir" "$release" || die "depmod -b $kdir $release failed"
	fi
	order=()
	add_module() { # NAME-or-path
		local name=$1 line path deps d i
		if [[ $name == */* ]]; then
			line=$(grep -m1 "^$name:" "$mdir/modules.dep") || die "module $name not in modules.dep"
		else
			# Module names treat - and _ alike.
			local re=${name//[-_]/[-_]}
			line=$(grep -m1 -E "/$re\\.ko(\\.[a-z]+)?:" "$mdir/modules.dep") ||
				die "module $name not found in $mdir/modules.dep (built in, or misspelt?)"
		fi
		path=${line%%:*}
		for d in "${order[@]}"; do [ "$d" = "$path" ] && return 0; done
		read -ra deps <<<"${line#*:}"
		# modules.dep lists a module's dependencies deepest last.
		for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[i]}"; done
		order+=("$path")
	}
	IFS=, read -ra want <<<"$modules"
	for m in "${want[@]}"; do add_module "$m"; done
	n=0
	for p in "${order[@]}"; do
		n=$((n + 1))
		base=$(basename "$p")
		dst="$stage/lib/modules/$(printf %02d "$n")-${base%%.ko*}.ko"
		case $p in
		*.ko) cp "$mdir/$p" "$dst" ;;
		*.ko.xz) xz -dc "$mdir/$p" >"$dst" ;;
		*.ko.zst) zstd -dcq "$mdir/$p" >"$dst" ;;
		*.ko.gz) gzip -dc "$mdir/$p" >"$dst" ;;
		*) die "unknown module format: $p" ;;
		esac
	done
fi

# Shell-quote for /etc/vm.conf (sourced by busybox sh).
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }
{
	echo "VM_TEST_ARGS=$(q "$args")"
	echo "VM_CONTROLLERS=$(q "$controllers")"
	echo "VM_TEST_CGROUPS=$(q "${cgroups//,/ }")"
	echo "export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp"
	echo "export WARREN_BINARY=/bin/warren WARREN_TESTINIT=/bin/testinit"
	for e in "${envs[@]}"; do
		[[ $e == *=* ]] || die "-e $e: want KEY=VALUE"
		k=${e%%=*}
		[[ $k =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "-e $e: bad variable name"
		echo "export $k=$(q "${e#*=}")"
	done
} >"$stage/etc/vm.conf"

(
	cd "$stage"
	# Owned by root in the guest whoever builds it; sorted for a stable archive.
	if [[ $out == *.gz ]]; then
		find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$out.tmp"
	else
		find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet >"$out.tmp"
	fi
)
mv "$out.tmp" "$out"
echo "build-initramfs: $out ($(($(stat -c %s "$out") / 1024)) KiB)" >&2
