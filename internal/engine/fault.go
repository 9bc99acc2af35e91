package engine

import (
	"os"
	"syscall"
)

// crashAt is the fault-injection point named by $WARREND_CRASH_AT: the
// daemon SIGKILLs itself there, so tests can prove that recovery copes
// with a daemon killed at each step of create and start. Unset in
// production, it costs one string compare.
var crashAt = os.Getenv("WARREND_CRASH_AT")

func fault(point string) {
	if crashAt == point {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
