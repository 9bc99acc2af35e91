package linux

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// ProcFdPath names an open fd through procfs so that mount(2), which takes
// paths, acts on exactly the file that fd refers to.
func ProcFdPath(fd uintptr) string { return "/proc/self/fd/" + strconv.Itoa(int(fd)) }

// OpenInRoot opens path inside root without following any symlink out of it.
// The handle is O_PATH.
func OpenInRoot(root *os.File, path string) (*os.File, error) {
	if f, err := openat2InRoot(root, path, 0); err == nil || !errors.Is(err, errNoOpenat2) {
		return f, err
	}
	return pathrs.OpenatInRoot(root, path)
}

// MkdirInRoot creates path (and parents) inside root and returns a handle on
// it (O_PATH when it existed already).
func MkdirInRoot(root *os.File, path string, mode os.FileMode) (*os.File, error) {
	if !hasOpenat2() {
		return pathrs.MkdirAllHandle(root, path, mode)
	}
	// Most targets exist (mount points in the image): one lookup.
	if f, err := openat2InRoot(root, path, unix.O_DIRECTORY); err == nil {
		return f, nil
	}
	return mkdirAllOpenat2(root, path, mode)
}

// mkdirAllOpenat2 is pathrs-lite's MkdirAllHandle with openat2, without its
// procfs round trips: the deepest existing directory of path is looked up
// inside root (RESOLVE_IN_ROOT), then each missing component is made with
// mkdirat and entered with a lookup that follows no symlink and crosses no
// mount (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV), so a
// component swapped for a symlink meanwhile is refused, not followed.
func mkdirAllOpenat2(root *os.File, path string, mode os.FileMode) (*os.File, error) {
	if mode&^os.ModePerm != 0 {
		return nil, fmt.Errorf("mkdir %s: mode %v: only permission bits are supported", path, mode)
	}
	var cur *os.File
	rest := path
	for end := len(path); end > 0; {
		sub := path[:end]
		f, err := openat2InRoot(root, sub, 0)
		if err == nil {
			cur, rest = f, strings.TrimPrefix(path[end:], "/")
			break
		}
		if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		end = strings.LastIndexByte(sub, '/')
	}
	if cur == nil {
		fd, err := unix.FcntlInt(root.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		cur = os.NewFile(uintptr(fd), root.Name())
	}
	parts := strings.Split(rest, "/")
	for _, p := range parts {
		if p == ".." {
			cur.Close()
			return nil, fmt.Errorf("mkdir %s: yet-to-be-created path %q contains '..': %w", path, rest, unix.ENOENT)
		}
	}
	for _, p := range parts {
		if p == "" || p == "." {
			continue
		}
		if err := unix.Mkdirat(int(cur.Fd()), p, uint32(mode)); err != nil && err != unix.EEXIST {
			cur.Close()
			return nil, &os.PathError{Op: "mkdirat", Path: filepath.Join(cur.Name(), p), Err: err}
		}
		fd, err := unix.Openat2(int(cur.Fd()), p, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
		})
		name := filepath.Join(cur.Name(), p)
		cur.Close()
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: name, Err: err}
		}
		cur = os.NewFile(uintptr(fd), name)
	}
	return cur, nil
}

var errNoOpenat2 = errors.New("openat2 is not available")

var hasOpenat2 = sync.OnceValue(func() bool {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
})

// openat2InRoot is the lookup pathrs-lite makes with openat2, without its
// extra procfs round trips to give the handle its resolved name: the kernel
// resolves path with root as "/" (RESOLVE_IN_ROOT: "..", absolute symlinks
// and absolute paths stay inside it) and refuses magic links. EAGAIN (a
// rename or mount raced with the lookup) is retried, as pathrs-lite does.
func openat2InRoot(root *os.File, path string, flags uint64) (*os.File, error) {
	if !hasOpenat2() {
		return nil, errNoOpenat2
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(int(root.Fd()), path, &how)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(root.Name(), path)), nil
		}
		if err != unix.EAGAIN || i >= 32 {
			return nil, &os.PathError{Op: "openat2", Path: filepath.Join(root.Name(), path), Err: err}
		}
	}
}

// CreateInRoot returns a handle on the file at path inside root, creating an
// empty regular file (and parent directories) when it does not exist. A
// symlink at the last component is never followed.
func CreateInRoot(root *os.File, path string) (*os.File, error) {
	if f, err := OpenInRoot(root, path); err == nil {
		return f, nil
	}
	parent, err := MkdirInRoot(root, filepath.Dir(path), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	if err := unix.Mknodat(int(parent.Fd()), filepath.Base(path), unix.S_IFREG|0o644, 0); err != nil && err != unix.EEXIST {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return OpenInRoot(root, path)
}

// BindMount clones the tree at src (recursively when o asks for rbind),
// applies the mount flags to the detached copy, then attaches it on target.
// Working on the detached copy means no window where the mount is visible
// with the wrong flags, and no path lookup after the target was resolved.
func BindMount(src string, target *os.File, o MountOptions) error {
	return bindMountAt(unix.AT_FDCWD, src, target, o)
}

// BindMountFile is BindMount with the source given as an open file.
func BindMountFile(src *os.File, target *os.File, o MountOptions) error {
	return bindMountAt(int(src.Fd()), "", target, o)
}

func bindMountAt(dirfd int, src string, target *os.File, o MountOptions) error {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if o.Flags&unix.MS_REC != 0 {
		flags |= unix.AT_RECURSIVE
	}
	if src == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	tree, err := unix.OpenTree(dirfd, src, flags)
	if err != nil {
		return fmt.Errorf("bind mount source %s: %w", src, err)
	}
	defer unix.Close(tree)
	return attachTree(tree, src, target, o)
}

// AttachTree attaches a detached mount tree (from open_tree(2), such as an
// id-mapped clone made by IDMapTree) on target with the flags of o.
func AttachTree(tree *os.File, what string, target *os.File, o MountOptions) error {
	return attachTree(int(tree.Fd()), what, target, o)
}

func attachTree(tree int, what string, target *os.File, o MountOptions) error {
	if err := setAttrs(tree, o); err != nil {
		return err
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach bind mount of %s: %w", what, err)
	}
	return nil
}

// IDMapTree returns a detached clone of the mount at src (the whole tree
// when recursive) whose top mount, or every mount with recursiveIDMap, is
// id-mapped through the user namespace usernsFd (MOUNT_ATTR_IDMAP, Linux
// 5.12+): a file owned by id N on disk shows as the host id that N maps to
// in that namespace.
func IDMapTree(src string, recursive, recursiveIDMap bool, usernsFd int) (*os.File, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return nil, fmt.Errorf("bind mount source %s: %w", src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFd)}
	at := unix.AT_EMPTY_PATH
	if recursiveIDMap {
		at |= unix.AT_RECURSIVE
	}
	if err := unix.MountSetattr(tree, "", uint(at), &attr); err != nil {
		unix.Close(tree)
		switch {
		case errors.Is(err, unix.EPERM):
			err = fmt.Errorf("%w (id-mapping needs CAP_SYS_ADMIN over the host's filesystems: not available to a rootless container)", err)
		case errors.Is(err, unix.EINVAL):
			err = fmt.Errorf("%w (the filesystem of %s may not support id-mapped mounts, or it is id-mapped already)", err, src)
		}
		return nil, fmt.Errorf("id-map %s: %w", src, err)
	}
	return os.NewFile(uintptr(tree), "idmapped:"+src), nil
}

var msToAttr = []struct {
	ms   uintptr
	attr uint64
}{
	{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
	{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
	{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// setAttrs applies the per-mount flags of o to the top mount of fd, and the
// recursive ones (rro, rnosuid, ...) to the whole tree.
func setAttrs(fd int, o MountOptions) error {
	var a unix.MountAttr
	for _, m := range msToAttr {
		if o.Flags&m.ms != 0 {
			a.Attr_set |= m.attr
		}
		if o.ClearFlags&m.ms != 0 {
			a.Attr_clr |= m.attr
		}
	}
	switch {
	case o.Flags&unix.MS_NOATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_NOATIME
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	case o.Flags&unix.MS_STRICTATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_STRICTATIME
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	case o.Flags&unix.MS_RELATIME != 0:
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	}
	if a.Attr_set|a.Attr_clr != 0 {
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &a); err != nil {
			return fmt.Errorf("set mount attributes %#x (clear %#x): %w", a.Attr_set, a.Attr_clr, err)
		}
	}
	if o.RecAttrSet|o.RecAttrClr != 0 {
		r := unix.MountAttr{Attr_set: o.RecAttrSet, Attr_clr: o.RecAttrClr}
		if r.Attr_set&(unix.MOUNT_ATTR_NOATIME|unix.MOUNT_ATTR_STRICTATIME) != 0 || r.Attr_clr&unix.MOUNT_ATTR_RELATIME == 0 && r.Attr_set&unix.MOUNT_ATTR_RELATIME != 0 {
			r.Attr_clr |= unix.MOUNT_ATTR__ATIME
		}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &r); err != nil {
			return fmt.Errorf("set recursive mount attributes %#x (clear %#x): %w", r.Attr_set, r.Attr_clr, err)
		}
	}
	return nil
}

// MountFS mounts a new filesystem instance (proc, tmpfs, sysfs, ...) on target.
func MountFS(source, fstype string, target *os.File, o MountOptions) error {
	flags := o.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if err := unix.Mount(source, ProcFdPath(target.Fd()), fstype, flags, o.DataString()); err != nil {
		return fmt.Errorf("mount %s (type %s): %w", source, fstype, err)
	}
	return nil
}

// SetPropagation applies propagation changes and recursive attributes to the
// mount now on top of the path behind reopen (which must resolve again: the
// fd used to mount still names the mount underneath).
func SetPropagation(mnt *os.File, o MountOptions) error {
	for _, p := range o.Propagation {
		if err := unix.Mount("", ProcFdPath(mnt.Fd()), "", p, ""); err != nil {
			return fmt.Errorf("set mount propagation %#x: %w", p, err)
		}
	}
	if o.RecAttrSet|o.RecAttrClr != 0 {
		return setAttrs(int(mnt.Fd()), MountOptions{RecAttrSet: o.RecAttrSet, RecAttrClr: o.RecAttrClr})
	}
	return nil
}

// MountPointOf returns the mount point of the mount that path is on, by
// walking up until a directory is the root of a mount.
func MountPointOf(path string) (string, error) {
	p := filepath.Clean(path)
	for {
		var st unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, unix.STATX_BASIC_STATS, &st); err != nil {
			return "", fmt.Errorf("statx %s: %w", p, err)
		}
		if st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
			return "", fmt.Errorf("statx %s: kernel does not report mount roots", p)
		}
		if st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 || p == "/" {
			return p, nil
		}
		p = filepath.Dir(p)
	}
}

// Reopen opens the file behind an O_PATH handle with flags.
func Reopen(h *os.File, flags int) (*os.File, error) {
	return pathrs.Reopen(h, flags)
}

// newMountAttrs maps the mount(2) flags a new filesystem mount may carry to
// fsmount(2) attributes; ok is false for any other flag.
func newMountAttrs(flags uintptr) (attr int, ok bool) {
	known := map[uintptr]int{
		unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID,
		unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC,
		unix.MS_NOATIME: unix.MOUNT_ATTR_NOATIME, unix.MS_STRICTATIME: unix.MOUNT_ATTR_STRICTATIME,
		unix.MS_NODIRATIME: unix.MOUNT_ATTR_NODIRATIME, unix.MS_RELATIME: unix.MOUNT_ATTR_RELATIME,
	}
	for f := uintptr(1); f != 0 && f <= flags; f <<= 1 {
		if flags&f == 0 {
			continue
		}
		a, found := known[f]
		if !found {
			return 0, false
		}
		attr |= a
	}
	return attr, true
}

// CanMountFromContext reports whether MountFromContext can make a mount
// with these options (mount(2) flags it cannot express are refused).
func CanMountFromContext(o MountOptions) bool {
	_, ok := newMountAttrs(o.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT))
	return ok
}

// MountFromContext makes a filesystem from ctx, an fsopen(2) context (for
// proc, opened by a process in the pid namespace it must show), with o's
// source, data options and flags, and attaches it on target: what MountFS does
// with mount(2), for a caller outside the namespace the context captured.
func MountFromContext(ctx, target *os.File, source, fstype string, o MountOptions) error {
	attr, ok := newMountAttrs(o.Flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT))
	if !ok {
		return fmt.Errorf("mount %s: flags %#x cannot be set on a new mount by fsmount", fstype, o.Flags)
	}
	fd := int(ctx.Fd())
	if err := unix.FsconfigSetString(fd, "source", source); err != nil {
		return fmt.Errorf("mount %s: source %q: %w", fstype, source, err)
	}
	for _, d := range o.Data {
		var err error
		if k, v, hasValue := strings.Cut(d, "="); hasValue {
			err = unix.FsconfigSetString(fd, k, v)
		} else {
			err = unix.FsconfigSetFlag(fd, k)
		}
		if err != nil {
			return fmt.Errorf("mount %s: option %q: %w", fstype, d, err)
		}
	}
	if o.Flags&unix.MS_RDONLY != 0 {
		if err := unix.FsconfigSetFlag(fd, "ro"); err != nil {
			return fmt.Errorf("mount %s: read-only: %w", fstype, err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("mount %s: create: %w", fstype, err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("mount %s: fsmount: %w", fstype, err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount %s: attach: %w", fstype, err)
	}
	return nil
}
