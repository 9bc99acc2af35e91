package linux

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/rawfile"
)

// CapSets holds the five capability sets as bit masks (bit n = capability n).
type CapSets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// LastCap returns the highest capability number this kernel knows.
func LastCap() int {
	b, err := rawfile.Read("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return unix.CAP_LAST_CAP
	}
	return n
}

// DropBounding removes from the bounding set every capability up to last
// not in keep. Must run with CAP_SETPCAP effective, before the uid change.
// Capability sets are per thread: call from the thread that will execve.
func DropBounding(keep uint64, last int) error {
	for c := 0; c <= last; c++ {
		if keep&(1<<uint(c)) != 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if err == unix.EINVAL { // not known to this kernel
				continue
			}
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// SetCaps sets effective, permitted and inheritable, then raises ambient.
// Capabilities unknown to the running kernel (above last) are ignored.
func SetCaps(c CapSets, last int) error {
	mask := uint64(1)<<uint(last+1) - 1
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	eff, prm, inh := c.Effective&mask, c.Permitted&mask, c.Inheritable&mask
	data[0] = unix.CapUserData{Effective: uint32(eff), Permitted: uint32(prm), Inheritable: uint32(inh)}
	data[1] = unix.CapUserData{Effective: uint32(eff >> 32), Permitted: uint32(prm >> 32), Inheritable: uint32(inh >> 32)}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("set capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	// An ambient capability must also be permitted and inheritable; one
	// that is not cannot be raised and is left out, as runc does (its own
	// default config lists ambient capabilities without inheritable ones).
	amb := c.Ambient & prm & inh
	for i := 0; i <= last; i++ {
		if amb&(1<<uint(i)) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(i), 0, 0); err != nil {
			return fmt.Errorf("raise ambient capability %d (it must also be permitted and inheritable): %w", i, err)
		}
	}
	return nil
}
