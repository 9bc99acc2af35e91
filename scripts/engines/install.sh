#!/usr/bin/env bash
# Installs what integration/engines (containerd via ctr, Kubernetes CRI via
# crictl, both driving warren) needs on a fresh Debian 12 machine, as root.
# Idempotent: installs only what is missing.
#
#   Debian: containerd (containerd, ctr, containerd-shim-runc-v2),
#           containernetworking-plugins (CNI bridge, host-local, loopback),
#           busybox-static (the test images are built from /bin/busybox),
#           util-linux (unshare, nsenter). No iproute2: busybox's ip is used.
#   Go:     crictl $CRICTL_VERSION, built with `go install` into
#           _build/engines/bin (where the tests look for it; $ENGINES_BIN
#           overrides the directory, then point $CRICTL at it).
set -euo pipefail
cd "$(dirname "$0")/../.."

export PATH=/usr/local/go/bin:$PATH
export DEBIAN_FRONTEND=noninteractive
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}
GOBIN_DIR=${ENGINES_BIN:-$PWD/_build/engines/bin}

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for t in containerd ctr containerd-shim-runc-v2; do
	command -v "$t" >/dev/null 2>&1 || { need+=(containerd); break; }
done
for p in bridge host-local loopback; do
	[ -x /usr/lib/cni/$p ] || [ -x /opt/cni/bin/$p ] || { need+=(containernetworking-plugins); break; }
done
have_pkg busybox-static || need+=(busybox-static)
{ command -v unshare && command -v nsenter; } >/dev/null 2>&1 || need+=(util-linux)

if [ ${#need[@]} -gt 0 ]; then
	# No systemd here: make sure no package postinst tries to start
	# containerd on the host's default socket (only for this install).
	tmp_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		tmp_policy=1
	fi
	trap '[ -z "$tmp_policy" ] || rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# crictl: `go install` records the module version in the binary.
have_crictl() {
	[ -x "$GOBIN_DIR/crictl" ] &&
		go version -m "$GOBIN_DIR/crictl" 2>/dev/null | grep -Eq "mod[[:space:]]+sigs.k8s.io/cri-tools[[:space:]]+$CRICTL_VERSION([[:space:]]|\$)"
}
if ! have_crictl; then
	mkdir -p "$GOBIN_DIR"
	# Outside this module (pkg@version ignores go.mod anyway); static.
	( cd / && GOFLAGS= CGO_ENABLED=0 GOBIN="$GOBIN_DIR" go install -trimpath "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" )
	have_crictl || { echo "install.sh: crictl $CRICTL_VERSION did not install into $GOBIN_DIR" >&2; exit 1; }
fi

echo "engines: containerd $(containerd --version | awk '{print $3}'), crictl $CRICTL_VERSION ($GOBIN_DIR/crictl), CNI in $( [ -x /usr/lib/cni/bridge ] && echo /usr/lib/cni || echo /opt/cni/bin)"
