// Package nsexec links the C constructor that joins and creates a container's
// namespaces before the Go runtime starts. Importing it (for side effects) is
// all a binary has to do; the constructor does nothing unless the process was
// started by warren as a container init. See README.md.
package nsexec

// #cgo CFLAGS: -Wall -Wextra -O2
import "C"

// EnvInitPipe names the environment variable that carries the sync socket's
// fd number to stage 0 and to the Go part of init.
const EnvInitPipe = "_WARREN_INITPIPE"

// EnvUsernsHold, when set, makes the constructor block until its stdin
// closes and exit: a process that only holds a user namespace open, with
// whatever maps its parent wrote, for id-mapped mounts
// (MOUNT_ATTR_IDMAP takes a user namespace fd).
const EnvUsernsHold = "_WARREN_USERNS_HOLD"
