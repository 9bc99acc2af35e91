// Package engines2 holds root-only end-to-end tests in which real container
// engines — podman (with conmon) and docker (dockerd with its own
// containerd and containerd-shim-runc-v2) — drive the warren binary as their
// OCI runtime, unchanged, the way they drive runc.
//
// Every engine runs with private state under a temporary directory
// (podman: --root, --runroot, its own containers.conf; dockerd: a private
// socket, --data-root, --exec-root, --pidfile, its own config file) and
// with --network none; the daemons are stopped by PID and the few host paths
// they write despite that (/run/containerd, /var/lib/containers/cache,
// /etc/docker/key.json, their cgroups) are removed if the test created them.
// The image is a busybox docker-archive built by the test from
// /bin/busybox and loaded with `podman load` / `docker load`: no registry.
//
// What is tested, for each engine: a foreground run (output, stderr apart,
// exit status, container removed), the same with a terminal (-t, through a
// pty the test opens: the container sees /dev/pts/N sized like the test's
// terminal), a detached container into which exec runs a process (same 8
// namespaces as the init, CapInh 0), exec with --user/--workdir/--env, exec
// -t, logs, stop (SIGTERM reaches the init's trap), kill, rm and rm -f (no
// process, warren state or cgroup left). Docker runs it twice: as `docker
// run` (dockerd adds a libnetwork-setkey prestart hook to every container
// with a network namespace of its own, even --network none) and through the
// Engine API with NetworkDisabled (no hook), so the rest is exercised while
// warren refuses hooks.
//
// warren is called through scripts/engines2/warren-wrapper.sh, which records
// every command line (and environment) an engine uses in calls.log and keeps
// the files warren was asked to --log into; a failing test prints both.
//
// Run them as root, after scripts/engines2/install.sh:
//
//	make warren
//	WARREN_BINARY=$PWD/bin/warren go test -count=1 -v ./integration/engines2/
//
// Without root, or without podman/conmon (docker/dockerd/containerd), the
// tests skip with a message, unless WARREN_ENGINES_REQUIRED is set (CI sets
// it), in which case they fail. WARREN_ENGINES_KEEP=1 keeps the temporary
// directory (calls.log, warren logs, engine state) for inspection.
package engines2
