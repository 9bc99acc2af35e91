package linux

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// JoinSessionKeyring gives the process a new session keyring named name, so
// the container does not share the caller's keys.
func JoinSessionKeyring(name string) error {
	if _, err := unix.KeyctlJoinSessionKeyring(name); err != nil {
		if err == unix.ENOSYS {
			return nil
		}
		return fmt.Errorf("join a new session keyring %q: %w", name, err)
	}
	return nil
}
