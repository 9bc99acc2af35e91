package linux

import (
	"errors"
	"fmt"
	"io"
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
	if errors.Is(err, unix.EPERM) && os.Geteuid() != 0 {
		return unprivilegedSelfExe()
	}
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

// unprivilegedSelfExe is SealedSelfExe for a caller that cannot make mounts
// (a rootless user). Its containers' processes run as the caller's own or
// subordinate ids, never as host root: a binary owned by root and writable
// by no one else is already out of their reach, so it is used in place.
// Otherwise (say ~/bin/warren, which the container's root, mapped to the
// caller, could write) the binary is copied into a sealed memfd, as runc
// does: a file that no one can change.
func unprivilegedSelfExe() (*os.File, error) {
	f, err := os.OpenFile("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the runtime binary: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat the runtime binary: %w", err)
	}
	if st.Uid == 0 && st.Mode&0o022 == 0 {
		return f, nil
	}
	f.Close()
	return memfdSelfExe()
}

func memfdSelfExe() (*os.File, error) {
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("open the runtime binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("warren", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if errors.Is(err, unix.EINVAL) { // kernels before 6.3 lack MFD_EXEC
		fd, err = unix.MemfdCreate("warren", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("copy the runtime binary into a sealed memfd: %w", err)
	}
	m := os.NewFile(uintptr(fd), "warren-exe")
	if _, err := io.Copy(m, src); err != nil {
		m.Close()
		return nil, fmt.Errorf("copy the runtime binary into a sealed memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(m.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		m.Close()
		return nil, fmt.Errorf("seal the runtime binary's memfd: %w", err)
	}
	return m, nil
}
