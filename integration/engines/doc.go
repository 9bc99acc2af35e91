// Package engines holds root-only end-to-end tests in which real container
// engines drive the warren binary as their OCI runtime, unchanged, the way
// they drive runc:
//
//   - containerd 1.6 through ctr: `ctr run --runc-binary warren`, `ctr task
//     exec` (with and without a terminal), pause/resume, kill, delete — the
//     io.containerd.runc.v2 shim is what calls warren;
//   - Kubernetes CRI: the same containerd's CRI plugin, with a runtime
//     handler whose options.BinaryName is warren, driven by crictl (runp,
//     create, start, exec, logs, stop, rm, stopp, rmp).
//
// One containerd serves every test. It runs with a private socket, root,
// state and runtime root under a temporary directory and inside a network
// namespace the test creates (`unshare --net`), so the CNI bridge that the
// CRI pods use, their veths and addresses exist only there: the host's
// networking is never touched. Images come from no registry: the test
// builds an OCI layout tarball from /bin/busybox (busybox-static) and
// imports it with `ctr images import`. The CRI sandbox ("pause") image is
// built the same way, with `sleep` as its entrypoint.
//
// Engines call warren through a wrapper script that appends each command
// line and exit status to calls.log and keeps copies of what the engine
// removes afterwards: the file named by --log (the shim's log.json lives in
// the bundle, removed with the task), exec's --process JSON and update's
// --resources JSON read from stdin. Every test logs the warren calls it
// caused (visible with -v) and, when it fails, the kept --log files and the
// tail of containerd's log.
//
// Two settings are forced by this machine rather than by warren: the CRI
// plugin runs with restrict_oom_score_adj (the sandbox's oomScoreAdj -998
// needs CAP_SYS_RESOURCE, which root lacks here; runc fails the same way),
// and AppArmor/SELinux/seccomp stay off (warren rejects them).
//
// Run them as root, after scripts/engines/install.sh:
//
//	make warren
//	WARREN_BINARY=$PWD/bin/warren go test -count=1 -v ./integration/engines/
//
// $WARREN_BINARY is required. Without root the package prints a skip
// message and exits 0. A missing tool (containerd, ctr, the runc v2 shim,
// crictl, CNI plugins, unshare, nsenter, a static busybox) skips the tests
// that need it, unless WARREN_ENGINES_REQUIRED is set (CI sets it), which
// turns the skip into a failure. crictl is looked up in $CRICTL, then $PATH,
// then _build/engines/bin (where install.sh puts it).
// WARREN_ENGINES_KEEP=1 keeps the temporary directory for inspection.
//
// What is cleaned up at the end: every task, container and pod the tests
// made; containerd (stopped by PID, SIGTERM then SIGKILL) and any of its
// shims still running (found by their -address, killed by PID); mounts left
// under the temporary directory; the cgroups created under the tests'
// cgroup parents; and the host paths containerd and CNI write despite the
// private configuration (/run/containerd/{s,fifo}, /var/lib/cni) when they
// did not exist before the run.
package engines
