// Command warren-monitor is the per-container monitor warrend starts (one
// process per container, like podman's conmon): it creates the container
// through an OCI runtime, owns its stdio and log, and reports its exit.
// It is not run by hand; see internal/monitor for the protocol.
//
// Two small helper modes serve the engine too:
//
//	warren-monitor --hold
//	    waits for its stdin to close: the engine clones it into a new user
//	    namespace to get a namespace fd with a container's id maps (for
//	    id-mapped image layers), then lets it go.
//	warren-monitor --exec-wait PIDFILE -- RUNTIME ARGS...
//	    runs a detached runtime exec as child subreaper, waits for the
//	    process named in PIDFILE (inherited when the runtime exits),
//	    reaping any other orphan, and exits with its status (128+signal
//	    when killed); the runtime's own failure is its exit code.
//	warren-monitor --pause
//	    the infra process of a pod that shares its pid namespace: pid 1
//	    there, it reaps orphans and exits on SIGTERM or SIGINT.
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/monitor"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--hold" {
		io.Copy(io.Discard, os.Stdin)
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "--pause" {
		os.Exit(pause())
	}
	if len(os.Args) > 4 && os.Args[1] == "--exec-wait" && os.Args[3] == "--" {
		os.Exit(execWait(os.Args[2], os.Args[4:]))
	}
	os.Exit(monitor.Main())
}

func execWait(pidFile string, argv []string) int {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "warren-monitor: child subreaper:", err)
		return 125
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "warren-monitor:", err)
		return 125
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "warren-monitor: pid file:", err)
		return 125
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "warren-monitor: pid file %s: %q\n", pidFile, b)
		return 125
	}
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "warren-monitor: process %d was not inherited: %v\n", pid, err)
			return 125
		}
		if got != pid {
			continue // another orphan: reaped, so its pid namespace can end
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// pause is a pod's pid 1: the kernel gives an init no default signal
// actions, so it says which end it.
func pause() int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT)
	chld := make(chan os.Signal, 16)
	signal.Notify(chld, unix.SIGCHLD)
	for {
		select {
		case <-sigs:
			return 0
		case <-chld:
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
