package linux

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Device is a device node to create in the container's /dev.
type Device struct {
	Path         string // absolute, inside the container
	Type         rune   // 'c', 'b', 'u' (unbuffered char) or 'p' (fifo)
	Major, Minor int64
	Mode         uint32 // permission bits
	UID, GID     uint32
}

// DefaultDevices are created in every container whose /dev is a fresh mount,
// as the OCI runtime spec requires.
var DefaultDevices = []Device{
	{Path: "/dev/null", Type: 'c', Major: 1, Minor: 3, Mode: 0o666},
	{Path: "/dev/zero", Type: 'c', Major: 1, Minor: 5, Mode: 0o666},
	{Path: "/dev/full", Type: 'c', Major: 1, Minor: 7, Mode: 0o666},
	{Path: "/dev/random", Type: 'c', Major: 1, Minor: 8, Mode: 0o666},
	{Path: "/dev/urandom", Type: 'c', Major: 1, Minor: 9, Mode: 0o666},
	{Path: "/dev/tty", Type: 'c', Major: 5, Minor: 0, Mode: 0o666},
}

func (d Device) typeBits() uint32 {
	switch d.Type {
	case 'b':
		return unix.S_IFBLK
	case 'p':
		return unix.S_IFIFO
	default:
		return unix.S_IFCHR
	}
}

// CreateDevice makes the node inside root. With bind set (a user namespace,
// where mknod is not permitted) it bind mounts the host's node of the same
// path instead, after checking the host node is the device it claims to be.
func CreateDevice(root *os.File, d Device, bind bool) error {
	if bind {
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil {
			return fmt.Errorf("device %s: host node for bind mount: %w", d.Path, err)
		}
		if st.Mode&unix.S_IFMT != d.typeBits() || int64(unix.Major(st.Rdev)) != d.Major || int64(unix.Minor(st.Rdev)) != d.Minor {
			return fmt.Errorf("device %s: host node is not %c %d:%d", d.Path, d.Type, d.Major, d.Minor)
		}
		target, err := CreateInRoot(root, d.Path)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		defer target.Close()
		return BindMount(d.Path, target, MountOptions{Flags: unix.MS_BIND})
	}
	parent, err := MkdirInRoot(root, filepath.Dir(d.Path), 0o755)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	defer parent.Close()
	name := filepath.Base(d.Path)
	dev := unix.Mkdev(uint32(d.Major), uint32(d.Minor))
	if d.Type == 'p' {
		dev = 0
	}
	// Replace whatever is there: the rootfs may hold a symlink at this name.
	_ = unix.Unlinkat(int(parent.Fd()), name, 0)
	if err := unix.Mknodat(int(parent.Fd()), name, d.typeBits()|(d.Mode&0o7777), int(dev)); err != nil {
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	if err := unix.Fchownat(int(parent.Fd()), name, int(d.UID), int(d.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", d.Path, err)
	}
	// mknod applies the umask; set the exact mode.
	if err := unix.Fchmodat(int(parent.Fd()), name, d.Mode&0o7777, 0); err != nil {
		return fmt.Errorf("chmod %s: %w", d.Path, err)
	}
	return nil
}

// Symlink creates link -> target inside root unless something exists there.
func Symlink(root *os.File, target, link string) error {
	parent, err := MkdirInRoot(root, filepath.Dir(link), 0o755)
	if err != nil {
		return fmt.Errorf("symlink %s: %w", link, err)
	}
	defer parent.Close()
	if err := unix.Symlinkat(target, int(parent.Fd()), filepath.Base(link)); err != nil && err != unix.EEXIST {
		return fmt.Errorf("symlink %s -> %s: %w", link, target, err)
	}
	return nil
}

// CheckDevNull verifies that f is the null character device (1:3), so a
// bind of it over a masked path hides the path rather than exposing
// whatever a rootfs planted at /dev/null (CVE-2025-31133 class).
func CheckDevNull(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return fmt.Errorf("%s is not the null device (mode %#o, rdev %d:%d)", f.Name(), st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}
