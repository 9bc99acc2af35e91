package engine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/images"
	"github.com/warren-runtime/warren/internal/store"
)

// mountIdmapped mounts the rootfs of a --userns auto container: each
// image layer through an id-mapped mount (host uid 0 appears as the
// range's first id, the container's root), stacked by overlayfs with an
// upper directory owned by that id. The layers on disk stay shared with
// every other container; overlayfs itself cannot be id-mapped (EPERM on
// mount_setattr), its lower layers can (Linux 5.19+), and the detached
// mounts are passed by /proc/self/fd path to fsconfig's "lowerdir+".
func (e *Engine) mountIdmapped(r *store.Record, img *images.Image) (string, error) {
	nsFd, err := e.usernsFd(r.UsernsStart, e.cfg.UsernsSize)
	if err != nil {
		return "", err
	}
	defer unix.Close(nsFd)
	var lowers []string
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	for i := len(img.Layers) - 1; i >= 0; i-- {
		p := e.images.SnapshotPath(img.Layers[i].ChainID)
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return "", fmt.Errorf("layer %s: open_tree: %w", p, err)
		}
		fds = append(fds, fd)
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(nsFd)}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return "", fmt.Errorf("layer %s: id-mapping it (needs Linux 5.19+ and a file system that supports it): %v: %w", p, err, errdefs.ErrNotSupported)
		}
		lowers = append(lowers, fmt.Sprintf("/proc/self/fd/%d", fd))
	}
	if len(lowers) == 0 {
		return "", fmt.Errorf("image %s has no layers to map: %w", img.Name, errdefs.ErrInvalid)
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(r.Dir, d), 0o755); err != nil {
			return "", err
		}
	}
	id := int(r.UsernsStart)
	if err := os.Chown(filepath.Join(r.Dir, "upper"), id, id); err != nil {
		return "", err
	}
	// The container's root must be able to reach its rootfs.
	if err := os.Chmod(r.Dir, 0o711); err != nil {
		return "", err
	}
	rootfs := filepath.Join(r.Dir, "rootfs")
	if err := images.MountOverlay(rootfs, lowers, filepath.Join(r.Dir, "upper"), filepath.Join(r.Dir, "work")); err != nil {
		return "", err
	}
	return rootfs, nil
}

// usernsFd returns a user namespace mapping 0..size-1 to start..: a child
// is cloned into a new one with those maps (the Go runtime writes them),
// its namespace opened, the child let go.
func (e *Engine) usernsFd(start, size uint32) (int, error) {
	cmd := exec.Command(e.cfg.MonitorPath, "--hold")
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(start), Size: int(size)}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	in, err := cmd.StdinPipe()
	if err != nil {
		return -1, err
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("user namespace for ids %d+%d: %w", start, size, err)
	}
	defer func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	}()
	// The maps are written before Start returns (os/exec waits for the
	// child to be ready).
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("user namespace for ids %d+%d: %w", start, size, err)
	}
	return fd, nil
}
