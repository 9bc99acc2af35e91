package linux

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseExecFrom marks every fd >= first close-on-exec, so that nothing the
// runtime opened survives execve into the container (CVE-2024-21626 class).
func CloseExecFrom(first int) error {
	err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: walk /proc/self/fd.
	d, oerr := os.Open("/proc/self/fd")
	if oerr != nil {
		return fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	defer d.Close()
	names, rerr := d.Readdirnames(-1)
	if rerr != nil {
		return fmt.Errorf("list /proc/self/fd: %w", rerr)
	}
	for _, n := range names {
		fd, _ := strconv.Atoi(n)
		if fd < first || fd == int(d.Fd()) {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}
