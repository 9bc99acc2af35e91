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
