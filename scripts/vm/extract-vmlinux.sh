#!/usr/bin/env bash
# extract-vmlinux.sh VMLINUZ OUT — write the uncompressed ELF kernel inside a
# bzImage to OUT. qemu boots an ELF vmlinux through its PVH entry point
# (CONFIG_PVH), which skips the real-mode setup and the in-guest
# decompression: under TCG that decompression alone costs seconds per boot.
#
# A bzImage is setup code + a small decompressor + the compressed vmlinux.
# We look for each compression format's magic bytes, try to decompress from
# every match (a magic can also occur by chance inside code), and keep the
# first result that is an ELF file. Trailing bytes after the payload make
# the decompressors complain; their output is complete all the same, so the
# ELF check, not the exit status, decides.
set -uo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 VMLINUZ OUT" >&2
	exit 2
fi
in=$1 out=$2
[ -r "$in" ] || { echo "extract-vmlinux: cannot read $in" >&2; exit 1; }

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; }

# magic (grep -P byte pattern) and decompressor, most likely first for Debian.
formats=(
	'\xfd\x37\x7a\x58\x5a\x00|xz -dc'
	'\x28\xb5\x2f\xfd|zstd -dcq'
	'\x1f\x8b\x08|gzip -dc'
	'\x5d\x00\x00\x00|xz -dc --format=lzma'
	'\x42\x5a\x68|bzip2 -dc'
	'\x02\x21\x4c\x18|lz4 -dc'
)

tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
for f in "${formats[@]}"; do
	magic=${f%%|*} cmd=${f#*|}
	command -v "${cmd%% *}" >/dev/null 2>&1 || continue
	# -o -b: byte offset of each match; -a: treat the binary as text.
	# shellcheck disable=SC2013 # one number per line
	for off in $(LC_ALL=C grep -obUaP "$magic" "$in" 2>/dev/null | cut -d: -f1); do
		tail -c "+$((off + 1))" "$in" | $cmd >"$tmp" 2>/dev/null
		if is_elf "$tmp"; then
			mv "$tmp" "$out"
			echo "extract-vmlinux: ${cmd%% *} payload at offset $off -> $out ($(stat -c %s "$out") bytes)" >&2
			exit 0
		fi
	done
done
echo "extract-vmlinux: no compressed ELF kernel found in $in" >&2
exit 1
