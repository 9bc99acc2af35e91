#!/bin/sh
# Stands in front of warren for the engines2 tests: records how an engine
# calls the runtime, then execs the real binary (same pid, same fds, same
# signals, so the engine sees warren itself).
#
# Installed by the tests as DIR/warren next to DIR/warren.real (a symlink to
# the binary under test). Appends to DIR/calls.log one line per call:
#   <unix time.ns> <pid> ppid=<ppid> [<cwd>] <argv, shell-quoted>
#   <tab>env: NAME=value ...
# and hard-links the file warren is asked to --log into into DIR/logs/, so
# its content survives the engine deleting the bundle (warren appends to it,
# so the link sees every line). For create and run it also keeps a copy of
# the bundle's config.json there.
dir=$(dirname "$0")
real="$dir/warren.real"
calls="$dir/calls.log"

q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

line="$(date +%s.%N) $$ ppid=$PPID [$(pwd)]"
logfile=
verb=
bundle=
prev=
for a in "$@"; do
	line="$line $(q "$a")"
	if [ -n "$verb" ]; then
		case "$prev" in --bundle | -b) bundle=$a ;; esac
		case "$a" in --bundle=*) bundle=${a#--bundle=} ;; esac
	else
		case "$prev" in
		--log) logfile=$a ;;
		--root | --log-format | --criu | --rootless) ;;
		*)
			case "$a" in
			--log=*) logfile=${a#--log=} ;;
			-*) ;;
			*) [ "$prev" = "--log" ] || verb=$a ;;
			esac
			;;
		esac
	fi
	prev=$a
done
env_line=$(env | LC_ALL=C sort | tr '\n' ' ')
{
	printf '%s\n' "$line"
	printf '\tenv: %s\n' "$env_line"
} >>"$calls"

stamp="$dir/logs/$(date +%s%N)-$$-${verb:-none}"
if [ -n "$logfile" ]; then
	mkdir -p "$dir/logs"
	[ -e "$logfile" ] || : >>"$logfile" 2>/dev/null
	ln -f "$logfile" "$stamp.log" 2>/dev/null || true
fi
case "$verb" in
create | run) cp "${bundle:-.}/config.json" "$stamp.config.json" 2>/dev/null || true ;;
esac
exec "$real" "$@"
