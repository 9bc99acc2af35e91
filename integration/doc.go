// Package integration holds warren's root-only end-to-end tests.
//
// The tests build the warren binary (or use $WARREN_BINARY) and the static
// tests/testinit helper once, then run real containers from busybox bundles
// with testinit as the entrypoint. Every assertion is made on what the
// container process itself reports (namespaces, capabilities, mounts, fds,
// ...) and on what is left on the host afterwards (state directory, cgroup
// directories, processes, mounts).
//
// Run them as root:
//
//	go test -count=1 ./integration/ -v
//
// When not run as root the whole package prints a skip message and exits 0.
package integration
