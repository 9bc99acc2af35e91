//go:build linux

// Command testinit is a small, statically linked, multi-call helper used by
// warren's integration tests. The tests copy it into a (busybox) root
// filesystem and run it as the container's entrypoint so that the process
// can report, from the inside, what the runtime actually set up: ids,
// groups, capabilities, namespaces, rlimits, mounts, open file descriptors,
// uid/gid mappings, seccomp and no_new_privs state, network interfaces and
// so on. The idea follows crun's tests/init.c, a tiny init that prints the
// properties its tests assert on.
//
// Everything machine readable is written to stdout as exactly one JSON
// object followed by a newline, so tests can decode it with encoding/json.
// Usage errors (unknown subcommand, bad arguments) go to stderr and make the
// process exit with status 1. Probe subcommands (read, write, stat, kill,
// mknod, ptrace) exit 0 even when the probed operation fails: the JSON says
// whether it worked.
//
// The subcommand is taken from argv[1]; if argv[0]'s base name is itself a
// subcommand name (testinit symlinked or copied as, say, "report"), that
// name is used and all remaining arguments are passed through. Without any
// argument testinit runs "report".
//
// Subcommands:
//
//	report            one JSON object describing the process (see Report)
//	exit N            exit with status N (0-255)
//	sleep SECONDS     sleep (fractions allowed); SIGTERM, SIGINT and SIGHUP
//	                  make it exit with 128+signo, also as PID 1
//	read PATH         try to read PATH            -> FileResult
//	write PATH        try to create/truncate PATH and write "x" -> FileResult
//	stat PATH         lstat PATH                  -> StatResult
//	kill PID SIG      send SIG (number or name) to PID -> KillResult
//	mknod PATH        try to create char device 1:3 at PATH -> OpResult
//	echo ARGS...      print the arguments joined by spaces (plain text)
//	clock             CLOCK_MONOTONIC, CLOCK_BOOTTIME, /proc/uptime -> ClockResult
//	ptrace PID        try PTRACE_SEIZE on PID (detach if it worked) -> PtraceResult
//
// Two properties of Go binaries matter for tests that look at file
// descriptors: the Go runtime opens /dev/null on any of fds 0, 1 and 2 that
// are closed at start-up (and aborts if /dev/null cannot be opened), so the
// report never shows missing stdio; and the runtime's cgroup-aware
// GOMAXPROCS logic, which would otherwise keep a cgroup cpu.max fd open for
// the life of the process, is disabled with a //go:debug directive in
// main.go. The report collects the fd list before it opens anything else
// and leaves out the descriptor it uses to read /proc/self/fd.
//
// Package syscall raises the soft RLIMIT_NOFILE during its init. The
// report's RLIMIT_NOFILE therefore comes from internal/earlyrlimit, which
// records the limit before syscall is initialized.
package main
