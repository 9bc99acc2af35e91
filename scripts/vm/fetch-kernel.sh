#!/usr/bin/env bash
# fetch-kernel.sh — make sure Debian's current amd64 kernel is in the cache and
# print its directory on stdout (the only thing printed there).
#
# The package is downloaded with `apt-get download` and unpacked, never
# installed: the host keeps its own kernel. The cache entry is keyed by the
# package name and version, so a kernel update in the archive gives a new
# entry and an unchanged archive costs nothing but an apt-cache lookup.
#
# Cache entry layout ($WARREN_VM_CACHE/<package>_<version>/):
#   vmlinuz            the bzImage (always boots)
#   vmlinux            the uncompressed ELF, booted via PVH when present (faster)
#   config             the kernel's .config
#   release            the kernel release (uname -r), e.g. 6.1.0-56-amd64
#   lib/modules/REL/   the modules tree, for build-initramfs.sh --modules
#
# Environment:
#   WARREN_VM_CACHE       cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/warren-vm)
#   WARREN_VM_KERNEL_PKG  kernel package (default: what linux-image-amd64 depends on)
set -euo pipefail

cache=${WARREN_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/warren-vm}
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "fetch-kernel: $*" >&2; }

# Prints "<package> <version>". One apt-cache call (~1 s here: this image
# keeps no apt binary cache): the metapackage pins its kernel with "(= V)".
resolve() {
	if [ -n "${WARREN_VM_KERNEL_PKG:-}" ]; then
		apt-cache policy "$WARREN_VM_KERNEL_PKG" 2>/dev/null |
			awk -v p="$WARREN_VM_KERNEL_PKG" '$1 == "Candidate:" && $2 != "(none)" { print p, $2; exit }'
		return
	fi
	apt-cache show --no-all-versions linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-image-[^ ,]*\) (= \([^)]*\)).*/\1 \2/p' | head -n 1
}

read -r pkg ver <<<"$(resolve)" || true
if [ -z "$pkg" ] || [ -z "$ver" ]; then
	# Fresh machines have no package lists yet.
	log "no package lists for the kernel: running apt-get update"
	if apt-get update -qq >&2; then
		read -r pkg ver <<<"$(resolve)" || true
	fi
fi

if [ -z "$pkg" ] || [ -z "$ver" ]; then
	# Offline: fall back to the newest complete cache entry, if any.
	# shellcheck disable=SC2012 # our own directory names, no odd characters
	newest=$(ls -1td "$cache"/linux-image-*/.complete 2>/dev/null | head -n 1 || true)
	if [ -n "$newest" ]; then
		log "cannot resolve the kernel package; using cached $(dirname "$newest")"
		dirname "$newest"
		exit 0
	fi
	log "cannot resolve the kernel package (apt-cache show linux-image-amd64 found no linux-image dependency) and the cache $cache is empty"
	exit 1
fi

dir="$cache/${pkg}_${ver}"
if [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$cache"
# One download at a time (two test runs may start together); the second
# finds the entry complete.
exec 9>"$cache/.lock"
flock 9
if [ -f "$dir/.complete" ]; then
	echo "$dir"
	exit 0
fi

log "downloading $pkg $ver into $dir"
start=$(date +%s%N)
rm -rf "$dir" "$dir.tmp"
mkdir -p "$dir.tmp"
download() {
	(
		cd "$dir.tmp"
		# As root, apt drops to _apt for downloads and warns when that user
		# cannot write here; downloading as root into our own cache is fine.
		sandbox=()
		[ "$(id -u)" = 0 ] && sandbox=(-o APT::Sandbox::User=root)
		apt-get "${sandbox[@]}" download -qq "$pkg=$ver" >&2
	)
}
if ! download; then
	# Stale package lists name a version the archive no longer has.
	log "download failed: running apt-get update and retrying"
	apt-get update -qq >&2
	read -r pkg2 ver2 <<<"$(resolve)" || true
	if [ -n "$pkg2" ] && [ -n "$ver2" ] && [ "$pkg2 $ver2" != "$pkg $ver" ]; then
		rm -rf "$dir.tmp"
		pkg=$pkg2 ver=$ver2 dir="$cache/${pkg2}_${ver2}"
		mkdir -p "$dir.tmp"
		log "downloading $pkg $ver into $dir"
	fi
	download
fi
deb=$(ls "$dir.tmp"/*.deb)
mkdir -p "$dir.tmp/x"
# Only the kernel, its config and the modules tree: the rest of the package
# (docs, System.map stubs) is not needed.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir.tmp/x" --wildcards \
	'./boot/vmlinuz-*' './boot/config-*' './lib/modules/*' './usr/lib/modules/*' 2>/dev/null || true
vmlinuz=$(find "$dir.tmp/x/boot" -name 'vmlinuz-*' 2>/dev/null | head -n 1)
if [ -z "$vmlinuz" ]; then
	log "$deb holds no boot/vmlinuz-*"
	exit 1
fi
release=${vmlinuz##*/vmlinuz-}
mv "$vmlinuz" "$dir.tmp/vmlinuz"
mv "$dir.tmp/x/boot/config-$release" "$dir.tmp/config"
echo "$release" >"$dir.tmp/release"
mkdir -p "$dir.tmp/lib/modules"
for m in "$dir.tmp/x/lib/modules/$release" "$dir.tmp/x/usr/lib/modules/$release"; do
	if [ -d "$m" ]; then mv "$m" "$dir.tmp/lib/modules/$release"; fi
done
rm -rf "$dir.tmp/x" "$deb"

if ! "$here/extract-vmlinux.sh" "$dir.tmp/vmlinuz" "$dir.tmp/vmlinux"; then
	log "could not extract vmlinux; the VM will boot the (slower) bzImage"
fi

touch "$dir.tmp/.complete"
mv "$dir.tmp" "$dir"
# Keep one kernel: drop entries of other versions.
for old in "$cache"/linux-image-*; do
	[ "$old" = "$dir" ] || [ "$old" = "$dir.tmp" ] || rm -rf "$old"
done
log "cached $pkg $ver ($release) in $(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }') s"
echo "$dir"
