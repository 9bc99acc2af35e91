package linux

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetRlimit sets resource (unix.RLIMIT_*) of this process; name is the OCI
// name, for the error message.
func SetRlimit(name string, resource int, soft, hard uint64) error {
	lim := unix.Rlimit{Cur: soft, Max: hard}
	if err := unix.Prlimit(0, resource, &lim, nil); err != nil {
		return fmt.Errorf("set %s to %d/%d: %w", name, soft, hard, err)
	}
	return nil
}
