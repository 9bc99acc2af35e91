#!/usr/bin/env bash
# Installs what the engines2 integration tests need (podman + conmon, docker.io
# with its containerd, busybox-static for the test image). Idempotent: installs
# only what is missing. Without recommends: podman's would pull in buildah,
# slirp4netns, fuse-overlayfs and dbus, docker.io's apparmor and git, none of
# which the tests use (they run with --network none on overlay storage).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
command -v podman  >/dev/null 2>&1 || need+=(podman)
[ -x /usr/bin/conmon ] || [ -x /usr/libexec/podman/conmon ] || need+=(conmon)
# docker.io ships dockerd and /usr/bin/docker; a docker CLI elsewhere on PATH
# is not enough (the tests need dockerd and prefer the matching client).
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v containerd >/dev/null 2>&1 || need+=(containerd)
have_pkg busybox-static || need+=(busybox-static)

if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi

# A fresh machine without systemd must not try to start dockerd/containerd
# from the packages' postinst: deny service starts for this install only,
# unless the machine already has a policy.
tmp_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 0755 /usr/sbin/policy-rc.d
	tmp_policy=1
fi
trap '[ -z "$tmp_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
