// Package earlyrlimit records the process's RLIMIT_NOFILE before the Go
// standard library changes it.
//
// The syscall package's init function raises the soft RLIMIT_NOFILE to
// (nearly) the hard limit, and only restores the original value in child
// processes. A program that wants to report the limit it was started with
// therefore has to read it before package syscall is initialized. This
// package imports nothing, and Go initializes packages in import-path order
// among those whose imports are ready, so its init runs before syscall's
// (github.com/... sorts before syscall). The read is a raw prlimit64 system
// call written in assembly, as calling into syscall or x/sys/unix would pull
// those packages in first.
package earlyrlimit

var (
	nofile [2]uint64 // soft, hard
	ok     bool
)

func init() {
	ok = rawPrlimitNofile(&nofile) == 0
}

// Nofile returns RLIMIT_NOFILE as it was when the process started. ok is
// false if it could not be read (unsupported architecture or failed call).
func Nofile() (soft, hard uint64, valid bool) {
	return nofile[0], nofile[1], ok
}
