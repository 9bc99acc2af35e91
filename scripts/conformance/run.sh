#!/bin/sh
# Build the OCI runtime-tools validation suite from the Go module proxy and run
# every validation program against an OCI runtime, printing a per-program table.
#
# usage: scripts/conformance/run.sh RUNTIME_BINARY [LABEL]
#
# Environment:
#   CONFORMANCE_DIR      work dir (default _build/conformance)
#   CONFORMANCE_TIMEOUT  seconds per program (default 60)
#   CONFORMANCE_ONLY     space-separated program names to run (default: all)
#   CONFORMANCE_RETRY    1 (default): a program that fails is run once more,
#                        and passing then is reported as "passed on retry"
#   CONFORMANCE_MIN      if set, exit 1 when fewer programs pass (CI's floor)
#   RUNTIME_TOOLS_VERSION  module version to build
#
# Without CONFORMANCE_MIN it is a report: it exits 0 whenever the suite could
# be built and run, whatever the results. The table's last line is
#   conformance: N passed, M failed
set -eu

RT=${1:?usage: run.sh RUNTIME_BINARY [LABEL]}
LABEL=${2:-$(basename "$RT")}
MOD=github.com/opencontainers/runtime-tools
VER=${RUNTIME_TOOLS_VERSION:-v0.9.1-0.20251205004911-5e639034dcdc}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${CONFORMANCE_DIR:-$TOP/_build/conformance}
TMO=${CONFORMANCE_TIMEOUT:-60}
GO=${GO:-go}

case $RT in /*) ;; *) RT=$(cd "$(dirname "$RT")" && pwd)/$(basename "$RT") ;; esac
[ -x "$RT" ] || { echo "conformance: runtime $RT is not executable" >&2; exit 1; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
SRC=$WORK/src

# --- build (once per suite version) -------------------------------------
if [ "$(cat "$SRC/.built" 2>/dev/null)" != "$VER" ]; then
	echo "conformance: building $MOD@$VER in $SRC"
	# Outside any module, so the download does not touch warren's go.mod.
	dl=$(cd "$WORK" && GOFLAGS=-mod=mod GO111MODULE=on "$GO" mod download -json "$MOD@$VER")
	dir=$(printf '%s\n' "$dl" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[ -d "$dir" ] || { echo "conformance: go mod download gave no Dir:" >&2; printf '%s\n' "$dl" >&2; exit 1; }
	rm -rf "$SRC"
	cp -r "$dir" "$SRC"
	chmod -R u+w "$SRC"
	# The module zip's vendor/modules.txt does not match its go.mod, hence
	# -mod=mod. COMMIT is set so the suite's Makefile does not run
	# `git describe` inside warren's checkout.
	(cd "$SRC" && GOFLAGS=-mod=mod make -j"$(nproc)" COMMIT="$VER" \
		runtimetest validation-executables >"$WORK/build.log" 2>&1) || {
		tail -30 "$WORK/build.log" >&2
		echo "conformance: build failed, see $WORK/build.log" >&2
		exit 1
	}
	[ -f "$SRC/rootfs-amd64.tar.gz" ] || "$TOP/scripts/conformance/mkrootfs.sh" "$SRC/rootfs-amd64.tar.gz"
	echo "$VER" >"$SRC/.built"
fi

# --- run ------------------------------------------------------------------
OUT=$WORK/results/$LABEL
rm -rf "$OUT"
mkdir -p "$OUT"
TMPBASE=$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX")
trap 'rm -rf "$TMPBASE"' EXIT INT TERM

progs=$(cd "$SRC" && ls validation/*/*.t | sort)
if [ -n "${CONFORMANCE_ONLY:-}" ]; then
	sel=
	for p in $progs; do
		n=$(basename "$p" .t)
		for o in $CONFORMANCE_ONLY; do [ "$n" = "$o" ] && sel="$sel $p"; done
	done
	progs=$sel
fi

printf '%-42s %-8s %5s %7s  %s\n' PROGRAM RESULT OK NOT_OK FIRST_FAILURE | tee "$OUT/table.txt"
npass=0 nfail=0 nskip=0 ntmo=0
start=$(date +%s)
run_one() { # name program: sets res, first, nok, nnot
	local name=$1 p=$2
	d=$TMPBASE/$name
	mkdir -p "$d/state"
	cp "$SRC/rootfs-amd64.tar.gz" "$SRC/runtimetest" "$d/"
	# A per-program --root keeps programs from seeing each other's
	# containers and lets us clean up whatever a failed program leaves.
	cat >"$d/runtime" <<-EOF
	#!/bin/sh
	exec "$RT" --root "$d/state" "\$@"
	EOF
	chmod +x "$d/runtime"
	rc=0
	(cd "$d" && RUNTIME="$d/runtime" timeout -k 5 "$TMO" "$SRC/$p" \
		>"$OUT/$name.tap" 2>"$OUT/$name.err" </dev/null) || rc=$?
	for id in $("$d/runtime" list -q 2>/dev/null); do
		"$d/runtime" delete -f "$id" >/dev/null 2>&1 || true
	done
	nok=$(grep -c '^ok ' "$OUT/$name.tap" || true)
	nnot=$(grep -c '^not ok ' "$OUT/$name.tap" || true)
	nsk=$(grep -ci '^ok .*# *skip' "$OUT/$name.tap" || true)
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$OUT/$name.tap" | head -1)
	first=$(grep -m1 '^not ok ' "$OUT/$name.tap" || true)
	# Some programs report a failure only as a YAML diagnostic `"error": ...`
	# under a `1..0` plan (no `not ok` line); the `*_fail` programs print
	# nothing at all and exit 0 when the runtime correctly refused the config.
	diag=$(grep -m1 '^[[:space:]]*"error": ' "$OUT/$name.tap" | sed 's/^[[:space:]]*//' || true)
	warn=$(grep -m1 '^WARNING' "$OUT/$name.err" || true)
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		res=timeout
		[ -n "$first" ] || first="(no result within ${TMO}s)"
	elif [ "$nnot" -gt 0 ]; then
		res=fail
	elif [ $rc -ne 0 ]; then
		res=fail
		# No TAP failure: the program died; show its own message.
		first="exit $rc: $(grep -v -e '^[[:space:]]*$' -e '^TAP version' "$OUT/$name.err" "$OUT/$name.tap" 2>/dev/null | head -1 | sed 's/^[^:]*://')"
	elif ! grep -q '^TAP version' "$OUT/$name.tap" && [ "${name%_fail}" = "$name" ]; then
		# Only the *_fail programs may legitimately print nothing.
		res=fail
		first="no TAP output (exit 0)"
	elif [ -n "$diag" ] && [ $((nok + nnot)) -eq 0 ]; then
		res=fail
		first="diagnostic $diag"
	elif [ -n "$plan" ] && [ "$nok" -lt "$plan" ]; then
		res=fail
		first="only $nok of $plan planned tests ran"
	elif [ "$nok" -gt 0 ] && [ "$nsk" -eq "$nok" ] || grep -qi '^1\.\.0.*skip' "$OUT/$name.tap"; then
		res=skip
	else
		res=pass
		first=$warn
	fi
	rm -rf "$d"
}

for p in $progs; do
	name=$(basename "$p" .t)
	run_one "$name" "$p"
	if [ "$res" != pass ] && [ "$res" != skip ] && [ "${CONFORMANCE_RETRY:-1}" = 1 ]; then
		# One retry: a program that passes the second time is a flake of
		# the suite or the host, reported as such, not a failure.
		was="$res: $first"
		run_one "$name" "$p"
		[ "$res" = pass ] && first="passed on retry (first run: $(printf '%s' "$was" | cut -c1-60))"
	fi
	case $res in
	pass) npass=$((npass + 1)) ;;
	skip) nskip=$((nskip + 1)) ;;
	timeout) ntmo=$((ntmo + 1)); nfail=$((nfail + 1)) ;;
	*) nfail=$((nfail + 1)) ;;
	esac
	first=$(printf '%s' "$first" | tr '\t\n' '  ' | cut -c1-110)
	printf '%-42s %-8s %5s %7s  %s\n' "$name" "$res" "$nok" "$nnot" "$first" | tee -a "$OUT/table.txt"
done
echo "conformance[$LABEL]: $(($(date +%s) - start))s; $nskip skipped, $ntmo timed out; TAP output in $OUT"
echo "conformance: $npass passed, $nfail failed" | tee -a "$OUT/table.txt"
if [ -n "${CONFORMANCE_MIN:-}" ] && [ "$npass" -lt "$CONFORMANCE_MIN" ]; then
	echo "conformance: $npass passed, below CONFORMANCE_MIN=$CONFORMANCE_MIN" >&2
	exit 1
fi
