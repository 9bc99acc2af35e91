#!/usr/bin/env bash
# Runs every native Go fuzz target (func FuzzXxx in a _test.go file) for
# $FUZZTIME (default 10s) each, one after another: `go test -fuzz` takes one
# target per run. A failure stops the script with the fuzzer's report; the
# crashing input is then in the package's testdata/fuzz/<Target>/, where it
# stays as a regression test (commit it with the fix).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
n=0
while IFS= read -r f; do
	pkg=./$(dirname "$f")
	for t in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
		echo "fuzz: $pkg $t ($FUZZTIME)"
		if ! out=$("$GO" test "$pkg" -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" 2>&1); then
			# Go's fuzz coordinator can end a -fuzztime run with "context
			# deadline exceeded" and no failing input: its shutdown races
			# the deadline (go.dev/issue/75804, fixed in Go 1.27; seen on
			# this 2-core VM after workers stalled at 0 execs/s). That is
			# not a finding: run once more; a real failure names an input.
			if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
				echo "fuzz: $pkg $t: the fuzzing engine stalled (context deadline exceeded, no input); once more"
				out=$("$GO" test "$pkg" -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" 2>&1) || {
					echo "$out"
					echo "fuzz: $pkg $t FAILED" >&2
					exit 1
				}
			else
				echo "$out"
				echo "fuzz: $pkg $t FAILED" >&2
				exit 1
			fi
		fi
		echo "$out" | grep -E '^fuzz: elapsed' | tail -n 1
		n=$((n + 1))
	done
done < <(grep -rl --include='*_test.go' '^func Fuzz' cmd internal | sort)
echo "fuzz: $n targets, $FUZZTIME each, no failure"
