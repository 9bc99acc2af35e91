package linux

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SealedSelfExe returns an O_PATH fd for this very binary on a private,
// detached, read-only bind mount. The container's init is executed through
// it, so /proc/<pid>/exe of any warren process inside a container points at a
// file no one can open for writing (EROFS), whatever the container's
// privileges: the defence against overwriting the runtime binary
// (CVE-2019-5736) without copying the binary on every start.
func SealedSelfExe() (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc/self/exe", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("clone the runtime binary onto a private mount (open_tree, Linux 5.2+): %w", err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make the runtime binary's private mount read-only: %w", err)
	}
	return os.NewFile(uintptr(fd), "warren-exe"), nil
}
