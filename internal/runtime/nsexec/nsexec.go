// Package nsexec links the C constructor that joins and creates a container's
// namespaces before the Go runtime starts. Importing it (for side effects) is
// all a binary has to do; the constructor does nothing unless the process was
// started by warren as a container init. See README.md.
package nsexec

// #cgo CFLAGS: -Wall -Wextra -O2
// #include <stdint.h>
// extern int nsx_sigs_blocked;
// extern uint64_t nsx_sigs_set;
// extern uint64_t nsx_sigs_orig;
import "C"

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// EnvInitPipe names the environment variable that carries the sync socket's
// fd number to stage 0 and to the Go part of init.
const EnvInitPipe = "_WARREN_INITPIPE"

// EnvUsernsHold, when set, makes the constructor block until its stdin
// closes and exit: a process that only holds a user namespace open, with
// whatever maps its parent wrote, for id-mapped mounts
// (MOUNT_ATTR_IDMAP takes a user namespace fd).
const EnvUsernsHold = "_WARREN_USERNS_HOLD"

// EnvSigmask carries, to a container's init, the signal mask of the warren
// that started it (hex, bit n-1 for signal n), which the constructor sets
// before anything else: see BlockedSignals.
const EnvSigmask = "_WARREN_SIGMASK"

// envExecSigmask makes the constructor set the mask it names and exec
// argv[1] with argv[2:] (see Unblocked).
const envExecSigmask = "_WARREN_EXEC_SIGMASK"

// BlockedSignals reports whether the constructor blocked the signals a
// foreground `run` or `exec` forwards (before the Go runtime started, so in
// every thread), which ones (set), and the mask the process was started
// with (orig). The caller reads them from a signalfd; every child it starts
// must get orig back (EnvSigmask, Unblocked).
func BlockedSignals() (set, orig uint64, ok bool) {
	return uint64(C.nsx_sigs_set), uint64(C.nsx_sigs_orig), C.nsx_sigs_blocked != 0
}

// SigmaskEnv returns the EnvSigmask entry for a container init's
// environment, or "" when this process did not block signals.
func SigmaskEnv() string {
	_, orig, ok := BlockedSignals()
	if !ok {
		return ""
	}
	return EnvSigmask + "=" + strconv.FormatUint(orig, 16)
}

// Unblocked makes cmd start its program with the signal mask this process
// was started with, when the constructor blocked signals: the program is
// then executed by a re-exec of this binary (/proc/self/exe), whose
// constructor restores the mask and execs it, in the same process. A path
// that cannot be executed fails here, as it would in cmd.Start. cmd must not
// have been started; its Path must be absolute or found (exec.Command does
// that).
func Unblocked(cmd *exec.Cmd) error {
	_, orig, ok := BlockedSignals()
	if !ok {
		return nil
	}
	if cmd.Err != nil {
		return cmd.Err
	}
	if err := unix.Access(cmd.Path, unix.X_OK); err != nil {
		return &os.PathError{Op: "fork/exec", Path: cmd.Path, Err: err}
	}
	args := cmd.Args
	if len(args) == 0 {
		args = []string{cmd.Path}
	}
	cmd.Args = append([]string{"warren-exec", cmd.Path}, args...)
	cmd.Path = "/proc/self/exe"
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], fmt.Sprintf("%s=%x", envExecSigmask, orig))
	return nil
}
