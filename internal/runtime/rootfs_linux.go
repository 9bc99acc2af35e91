package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/linux"
)

// setupRootfs builds the container's filesystem view, still seeing the
// host's tree (before pivot_root): every destination is resolved inside the
// rootfs by fd, never by a path string that could follow a symlink out.
// Order: propagation, rootfs bind, mounts[], devices, masked paths,
// read-only paths, cwd, read-only root.
func setupRootfs(cfg *initConfig) error {
	s := cfg.Spec
	prop := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if s.Linux.RootfsPropagation != "" {
		prop, _ = linux.PropagationFlags(s.Linux.RootfsPropagation)
		prop |= unix.MS_REC
	}
	if prop&unix.MS_UNBINDABLE != 0 {
		// An unbindable tree cannot be bound, and the rootfs is bound
		// onto itself below: make it private now, unbindable once it
		// is the root (enterRootfs).
		prop = unix.MS_PRIVATE | unix.MS_REC
	}
	// Keep our mounts from propagating back to the host.
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("linux.rootfsPropagation: make / %s: %w", s.Linux.RootfsPropagation, err)
	}
	// pivot_root refuses a new root whose parent mount is shared, and with
	// rootfsPropagation (r)shared our bind of the rootfs would propagate out
	// of the container: make the mount holding the rootfs private (runc
	// does the same).
	if prop&unix.MS_SHARED != 0 {
		parent, err := linux.MountPointOf(cfg.Rootfs)
		if err != nil {
			return fmt.Errorf("root.path: %w", err)
		}
		if err := unix.Mount("", parent, "", unix.MS_PRIVATE, ""); err != nil {
			return fmt.Errorf("root.path: make %s (the mount holding the rootfs) private: %w", parent, err)
		}
	}
	// pivot_root needs the new root to be a mount point.
	rootDir, err := os.OpenFile(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("root.path: open %s: %w", cfg.Rootfs, err)
	}
	err = linux.BindMount(cfg.Rootfs, rootDir, linux.MountOptions{Flags: unix.MS_BIND | unix.MS_REC})
	rootDir.Close()
	if err != nil {
		return fmt.Errorf("root.path: bind %s onto itself: %w", cfg.Rootfs, err)
	}
	root, err := os.OpenFile(cfg.Rootfs, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("root.path: open %s: %w", cfg.Rootfs, err)
	}
	defer root.Close()

	devMounted := false
	for i, m := range s.Mounts {
		dest := m.Destination
		if !filepath.IsAbs(dest) {
			dest = "/" + dest
		}
		dest = filepath.Clean(dest)
		if dest == "/dev" {
			devMounted = !isBindMount(m)
		}
		if err := mountOne(cfg, root, m, dest, cfg.IDMapFds[i]); err != nil {
			return fmt.Errorf("mounts[%d] (%s on %s): %w", i, m.Source, m.Destination, err)
		}
	}
	if err := setupDevices(cfg, root, devMounted); err != nil {
		return err
	}

	devNull, err := os.OpenFile("/dev/null", unix.O_PATH, 0)
	if err != nil {
		return fmt.Errorf("open host /dev/null: %w", err)
	}
	defer devNull.Close()
	if err := linux.CheckDevNull(devNull); err != nil {
		return err
	}
	for _, p := range s.Linux.MaskedPaths {
		if err := maskPath(root, devNull, p); err != nil {
			return fmt.Errorf("linux.maskedPaths: %s: %w", p, err)
		}
	}
	for _, p := range s.Linux.ReadonlyPaths {
		if err := readonlyPath(root, p); err != nil {
			return fmt.Errorf("linux.readonlyPaths: %s: %w", p, err)
		}
	}
	if s.Process != nil && s.Process.Cwd != "" {
		cwd := s.Process.Cwd
		d, err := linux.MkdirInRoot(root, cwd, 0o755)
		if err != nil {
			return fmt.Errorf("process.cwd: create %s: %w", cwd, err)
		}
		d.Close()
	}
	if s.Root.Readonly {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(int(root.Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fmt.Errorf("root.readonly: %w", err)
		}
	}
	return nil
}

func isBindMount(m specs.Mount) bool {
	if m.Type == "bind" {
		return true
	}
	for _, o := range m.Options {
		if o == "bind" || o == "rbind" {
			return true
		}
	}
	return false
}

// idmapFd, when not 0, is the already id-mapped clone of a bind mount's
// source, made by the runtime (see idmappedMounts).
func mountOne(cfg *initConfig, root *os.File, m specs.Mount, dest string, idmapFd int) error {
	o := linux.ParseMountOptions(m.Options)
	if o.TmpCopyUp && m.Type != "tmpfs" {
		return errors.New("the tmpcopyup option applies to tmpfs mounts only")
	}
	if isBindMount(m) {
		o.Flags |= unix.MS_BIND
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(cfg.Bundle, src)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("bind source: %w", err)
		}
		var target *os.File
		if fi.IsDir() {
			target, err = linux.MkdirInRoot(root, dest, 0o755)
		} else {
			target, err = linux.CreateInRoot(root, dest)
		}
		if err != nil {
			return fmt.Errorf("destination: %w", err)
		}
		defer target.Close()
		if idmapFd > 0 {
			tree := os.NewFile(uintptr(idmapFd), "idmapped:"+src)
			err = linux.AttachTree(tree, src, target, o)
			tree.Close()
		} else {
			err = linux.BindMount(src, target, o)
		}
		if err != nil {
			return err
		}
		return propagation(root, dest, o)
	}
	switch m.Type {
	case "cgroup", "cgroup2":
		return mountCgroups(cfg, root, dest, o)
	}
	target, err := linux.MkdirInRoot(root, dest, 0o755)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer target.Close()
	source := m.Source
	if source == "" {
		source = m.Type
	}
	var under *os.File // tmpcopyup: the image's directory, before it is covered
	if o.TmpCopyUp {
		if under, err = linux.Reopen(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("tmpcopyup: open %s: %w", dest, err)
		}
		defer under.Close()
	}
	if m.Type == "proc" && cfg.procCtx != nil {
		// Prepared by the runtime (prepare_linux.go): the context was
		// opened inside the container's pid namespace.
		err = linux.MountFromContext(cfg.procCtx, target, source, m.Type, o)
	} else {
		err = linux.MountFS(source, m.Type, target, o)
	}
	if err == nil && under != nil {
		err = copyUp(root, dest, under)
	}
	if err != nil && m.Type == "sysfs" && cfg.NewUserNS && errors.Is(err, unix.EPERM) {
		// A user namespace may mount sysfs only with its own network
		// namespace; otherwise bind the host's, as runc does.
		err = linux.BindMount("/sys", target, linux.MountOptions{Flags: unix.MS_BIND | unix.MS_REC | o.Flags, ClearFlags: o.ClearFlags})
	}
	if err != nil {
		return err
	}
	if magic, ok := fsMagic[m.Type]; ok {
		// The destination was resolved inside the rootfs; confirm what
		// is there now is really the filesystem just mounted, not
		// something a symlink swapped in (CVE-2019-19921 class).
		f, err := linux.OpenInRoot(root, dest)
		if err != nil {
			return err
		}
		var st unix.Statfs_t
		err = unix.Fstatfs(int(f.Fd()), &st)
		f.Close()
		if err != nil || st.Type != magic {
			return fmt.Errorf("%s is not a %s after mounting it", dest, m.Type)
		}
	}
	return propagation(root, dest, o)
}

// copyUp fills the tmpfs just mounted on dest with what was underneath.
func copyUp(root *os.File, dest string, under *os.File) error {
	h, err := linux.OpenInRoot(root, dest)
	if err != nil {
		return err
	}
	top, err := linux.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	h.Close()
	if err != nil {
		return err
	}
	defer top.Close()
	return linux.CopyTree(under, top)
}

var fsMagic = map[string]int64{"proc": unix.PROC_SUPER_MAGIC, "sysfs": unix.SYSFS_MAGIC}

func propagation(root *os.File, dest string, o linux.MountOptions) error {
	if len(o.Propagation) == 0 && o.RecAttrSet|o.RecAttrClr == 0 {
		return nil
	}
	// Reopen: the fd used to mount still names the mount underneath.
	mnt, err := linux.OpenInRoot(root, dest)
	if err != nil {
		return err
	}
	defer mnt.Close()
	return linux.SetPropagation(mnt, o)
}

// mountCgroups gives the container a view of its own cgroup: with a cgroup
// namespace, fresh cgroup mounts (rooted at its cgroup); without, binds of
// its cgroup directories. On a v1 or hybrid host a tmpfs holds one
// directory per hierarchy, as on the host.
func mountCgroups(cfg *initConfig, root *os.File, dest string, o linux.MountOptions) error {
	ro := o.Flags&unix.MS_RDONLY != 0
	sub := o
	if len(cfg.Cgroups) == 1 && cfg.Cgroups[0].V2 && cfg.Cgroups[0].Mountpoint == "/sys/fs/cgroup" {
		return mountHierarchy(cfg, root, dest, cfg.Cgroups[0], sub)
	}
	target, err := linux.MkdirInRoot(root, dest, 0o755)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	tmpfs := linux.MountOptions{Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, Data: []string{"mode=755"}}
	err = linux.MountFS("tmpfs", "tmpfs", target, tmpfs)
	target.Close()
	if err != nil {
		return err
	}
	for _, h := range cfg.Cgroups {
		name := filepath.Base(h.Mountpoint)
		if err := mountHierarchy(cfg, root, filepath.Join(dest, name), h, sub); err != nil {
			return err
		}
		// Comounted controllers ("cpu,cpuacct") get a link per controller.
		if strings.Contains(name, ",") {
			for _, c := range strings.Split(name, ",") {
				if err := linux.Symlink(root, name, filepath.Join(dest, c)); err != nil {
					return err
				}
			}
		}
	}
	if ro {
		mnt, err := linux.OpenInRoot(root, dest)
		if err != nil {
			return err
		}
		defer mnt.Close()
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(int(mnt.Fd()), "", unix.AT_EMPTY_PATH, &attr); err != nil {
			return fmt.Errorf("make %s read-only: %w", dest, err)
		}
	}
	return nil
}

func mountHierarchy(cfg *initConfig, root *os.File, dest string, h cgroupMount, o linux.MountOptions) error {
	target, err := linux.MkdirInRoot(root, dest, 0o755)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dest, err)
	}
	defer target.Close()
	if cfg.NewCgroupNS {
		fs, data := "cgroup", h.Key
		if h.V2 {
			fs, data = "cgroup2", ""
		}
		mo := linux.MountOptions{Flags: o.Flags | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}
		if data != "" {
			mo.Data = []string{data}
		}
		if err := linux.MountFS(fs, fs, target, mo); err != nil {
			return fmt.Errorf("mount cgroup hierarchy %q on %s: %w", h.Key, dest, err)
		}
		return nil
	}
	if h.Path == "" {
		return nil
	}
	bo := linux.MountOptions{Flags: unix.MS_BIND | unix.MS_REC | (o.Flags & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC))}
	return linux.BindMount(h.Path, target, bo)
}

func setupDevices(cfg *initConfig, root *os.File, devMounted bool) error {
	s := cfg.Spec
	if devMounted {
		for _, d := range linux.DefaultDevices {
			if err := linux.CreateDevice(root, d, cfg.NewUserNS); err != nil {
				return fmt.Errorf("default devices: %w", err)
			}
		}
		links := [][2]string{
			{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
			{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
		}
		if fileExists("/proc/kcore") {
			links = append(links, [2]string{"/proc/kcore", "/dev/core"})
		}
		for _, l := range links {
			if err := linux.Symlink(root, l[0], l[1]); err != nil {
				return err
			}
		}
		// /dev/ptmx must point into this container's devpts instance.
		if dev, err := linux.OpenInRoot(root, "/dev"); err == nil {
			_ = unix.Unlinkat(int(dev.Fd()), "ptmx", 0)
			err = unix.Symlinkat("pts/ptmx", int(dev.Fd()), "ptmx")
			dev.Close()
			if err != nil {
				return fmt.Errorf("symlink /dev/ptmx: %w", err)
			}
		}
	}
	for i, d := range s.Linux.Devices {
		dev := linux.Device{Path: d.Path, Type: rune(d.Type[0]), Major: d.Major, Minor: d.Minor, Mode: 0o666}
		if d.FileMode != nil {
			dev.Mode = uint32(d.FileMode.Perm())
		}
		if d.UID != nil {
			dev.UID = *d.UID
		}
		if d.GID != nil {
			dev.GID = *d.GID
		}
		if err := linux.CreateDevice(root, dev, cfg.NewUserNS); err != nil {
			return fmt.Errorf("linux.devices[%d]: %w", i, err)
		}
	}
	return nil
}

func maskPath(root, devNull *os.File, p string) error {
	f, err := linux.OpenInRoot(root, p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return linux.MountFS("tmpfs", "tmpfs", f, linux.MountOptions{Flags: unix.MS_RDONLY, Data: []string{"size=0", "mode=000"}})
	}
	return linux.BindMountFile(devNull, f, linux.MountOptions{Flags: unix.MS_BIND})
}

func readonlyPath(root *os.File, p string) error {
	f, err := linux.OpenInRoot(root, p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	defer f.Close()
	return linux.BindMountFile(f, f, linux.MountOptions{Flags: unix.MS_BIND | unix.MS_REC, RecAttrSet: unix.MOUNT_ATTR_RDONLY})
}

// enterRootfs makes the prepared rootfs the process's root: pivot_root (the
// old root is detached), or with --no-pivot a move mount plus chroot.
func enterRootfs(cfg *initConfig) error {
	if err := unix.Chdir(cfg.Rootfs); err != nil {
		return fmt.Errorf("root.path: chdir %s: %w", cfg.Rootfs, err)
	}
	if cfg.NoPivot {
		if err := unix.Mount(cfg.Rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("--no-pivot: move %s to /: %w", cfg.Rootfs, err)
		}
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("--no-pivot: chroot: %w", err)
		}
	} else {
		// pivot_root(".", ".") stacks the old root under the new one; it
		// is then detached without ever needing a directory for it.
		if err := unix.PivotRoot(".", "."); err != nil {
			return fmt.Errorf("pivot_root to %s: %w", cfg.Rootfs, err)
		}
		if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("make old root slave: %w", err)
		}
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach old root: %w", err)
		}
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	switch p := cfg.Spec.Linux.RootfsPropagation; p {
	case "shared", "rshared", "unbindable", "runbindable":
		flag := uintptr(unix.MS_SHARED)
		if strings.HasSuffix(p, "unbindable") {
			flag = unix.MS_UNBINDABLE
		}
		if err := unix.Mount("", "/", "", flag|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation %s: %w", p, err)
		}
	}
	return nil
}
