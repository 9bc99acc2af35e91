//go:build linux

package main

// Probes for the time-namespace and tenant-isolation tests: what the clocks
// read from inside (time namespace offsets), and whether another process can
// be ptraced (user namespace isolation between tenants).

import (
	"fmt"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// ClockResult is printed by "clock". The float fields are seconds; the *Ns
// fields are the same readings as exact nanoseconds.
type ClockResult struct {
	Monotonic   float64  `json:"monotonic"`   // clock_gettime(CLOCK_MONOTONIC)
	Boottime    float64  `json:"boottime"`    // clock_gettime(CLOCK_BOOTTIME)
	Uptime      float64  `json:"uptime"`      // first field of /proc/uptime (centiseconds, truncated by the kernel)
	MonotonicNs int64    `json:"monotonicNs"` // CLOCK_MONOTONIC in nanoseconds
	BoottimeNs  int64    `json:"boottimeNs"`  // CLOCK_BOOTTIME in nanoseconds
	Errors      []string `json:"errors"`      // problems reading any of the above; empty when all worked
}

// cmdClock reads CLOCK_MONOTONIC, CLOCK_BOOTTIME and /proc/uptime, in that
// order. All three follow the offsets of the caller's time namespace
// (time_namespaces(7)); CLOCK_REALTIME does not and is not reported.
func cmdClock([]string) int {
	res := ClockResult{Errors: []string{}}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("clock_gettime(CLOCK_MONOTONIC): %v", err))
	} else {
		res.MonotonicNs = ts.Nano()
		res.Monotonic = nsToSeconds(res.MonotonicNs)
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("clock_gettime(CLOCK_BOOTTIME): %v", err))
	} else {
		res.BoottimeNs = ts.Nano()
		res.Boottime = nsToSeconds(res.BoottimeNs)
	}
	if s, err := readFileRaw("/proc/uptime"); err != nil {
		res.Errors = append(res.Errors, err.Error())
	} else if up, err := parseUptime(s); err != nil {
		res.Errors = append(res.Errors, err.Error())
	} else {
		res.Uptime = up
	}
	return emit(res)
}

// PtraceResult is printed by "ptrace".
type PtraceResult struct {
	PID   int    `json:"pid"`
	OK    bool   `json:"ok"`    // PTRACE_SEIZE succeeded
	Error string `json:"error"` // PTRACE_SEIZE's error, "" when ok
	Errno int    `json:"errno"`
	// After a successful seize: whether interrupt + wait + PTRACE_DETACH
	// released the tracee cleanly (exiting would release it anyway).
	Detached    bool   `json:"detached"`
	DetachError string `json:"detachError,omitempty"`
}

// cmdPtrace tries PTRACE_SEIZE on PID: the kernel's ptrace access check
// (__ptrace_may_access: same uids or CAP_SYS_PTRACE in the target's user
// namespace, dumpable, LSMs) is what the tests are after. A seized tracee
// keeps running; to detach it must be in a ptrace-stop, so it is
// interrupted and waited for first.
func cmdPtrace(args []string) int {
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return fail("ptrace: bad pid %q", args[0])
	}
	// ptrace(2) requests bind the tracee to the calling thread; Go would
	// otherwise run the follow-up requests on another thread (ESRCH).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	res := PtraceResult{PID: pid}
	if err := unix.PtraceSeize(pid); err != nil {
		res.Error, res.Errno = fmt.Sprintf("ptrace(PTRACE_SEIZE, %d): %v", pid, err), errnoOf(err)
		return emit(res)
	}
	res.OK = true
	if err := detachSeized(pid); err != nil {
		res.DetachError = err.Error()
	} else {
		res.Detached = true
	}
	return emit(res)
}

func detachSeized(pid int) error {
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Errorf("PTRACE_INTERRUPT: %w", err)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait4: %w", err)
		}
		break
	}
	if ws.Exited() || ws.Signaled() {
		return fmt.Errorf("tracee exited while being detached (status %#x)", uint32(ws))
	}
	if err := unix.PtraceDetach(pid); err != nil {
		return fmt.Errorf("PTRACE_DETACH: %w", err)
	}
	return nil
}
