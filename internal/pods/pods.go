// Package pods holds what makes a pod a pod independently of its
// members: pinned IPC and UTS namespaces (bind mounts of their nsfs
// files, which keep a namespace alive with no process in it, and survive
// warrend's restarts but not a reboot: /run is tmpfs), and the pod's
// cgroup with pod-level limits. The network namespace is pinned by
// internal/network (under /run/netns, for `ip netns`). A shared pid
// namespace cannot be pinned — forking into it fails once its init has
// exited — so the engine runs an infra process for it (warren-monitor
// --pause).
package pods

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Pinned namespace files in a pod's directory.
const (
	IPC = "ipc"
	UTS = "uts"
)

// Pin creates new IPC and UTS namespaces, sets the UTS namespace's host
// name, and pins both at dir/ipc and dir/uts. On a fresh locked thread
// that is never released to other goroutines: unshare changes only the
// calling thread, and the thread ends with its goroutine.
func Pin(dir, hostname string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pod namespace directory %s: %w", dir, err)
	}
	for _, ns := range []string{IPC, UTS} {
		f, err := os.OpenFile(filepath.Join(dir, ns), os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, 0o400)
		if err != nil {
			return fmt.Errorf("pod namespace file: %w", err)
		}
		f.Close()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err, restored := pinOnThread(dir, hostname)
		if restored {
			runtime.UnlockOSThread()
		}
		// Else the thread stays locked and ends with this goroutine (the
		// main thread, if it was, is parked by the Go runtime).
		done <- err
	}()
	if err := <-done; err != nil {
		Unpin(dir)
		return err
	}
	return nil
}

// pinOnThread unshares, pins, and switches the thread back to its own
// IPC and UTS namespaces; restored says whether that worked.
func pinOnThread(dir, hostname string) (error, bool) {
	var orig []int
	for _, ns := range []string{IPC, UTS} {
		fd, err := unix.Open("/proc/thread-self/ns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("pod namespaces: %w", err), true
		}
		defer unix.Close(fd)
		orig = append(orig, fd)
	}
	if err := unix.Unshare(unix.CLONE_NEWIPC | unix.CLONE_NEWUTS); err != nil {
		return fmt.Errorf("pod namespaces: unshare: %w", err), true
	}
	err := func() error {
		if hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("pod hostname %q: %w", hostname, err)
			}
		}
		for _, ns := range []string{IPC, UTS} {
			if err := unix.Mount("/proc/thread-self/ns/"+ns, filepath.Join(dir, ns), "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pin %s namespace at %s: %w", ns, filepath.Join(dir, ns), err)
			}
		}
		return nil
	}()
	for i, typ := range []int{unix.CLONE_NEWIPC, unix.CLONE_NEWUTS} {
		if unix.Setns(orig[i], typ) != nil {
			return err, false
		}
	}
	return err, true
}

// Pinned reports whether dir holds both pinned namespaces.
func Pinned(dir string) bool {
	for _, ns := range []string{IPC, UTS} {
		var st unix.Statfs_t
		if unix.Statfs(filepath.Join(dir, ns), &st) != nil || st.Type != unix.NSFS_MAGIC {
			return false
		}
	}
	return true
}

// Unpin unmounts and removes the pinned namespaces and dir; what is
// already gone is not an error (recovery calls it).
func Unpin(dir string) error {
	var errs []error
	for _, ns := range []string{IPC, UTS} {
		p := filepath.Join(dir, ns)
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("unpin %s: %w", p, err))
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Limits are a pod's cgroup limits, shared by its members.
type Limits struct {
	Memory    int64 // bytes, 0: none
	NanoCPUs  int64
	PidsLimit int64
}

const cgroupRoot = "/sys/fs/cgroup"

func unified() bool {
	var st unix.Statfs_t
	return unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// SetupCgroup makes the pod's cgroup (path, e.g. /warren/pod-ID) with
// its limits: members' cgroups are created below it by their runtime, so
// the limits bound the pod as a whole. cgroup v2 or the v1 hierarchies.
func SetupCgroup(path string, l Limits) error {
	write := func(dir, file, val string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0); err != nil {
			return fmt.Errorf("pod cgroup %s: %s = %s: %w", dir, file, val, err)
		}
		return nil
	}
	if unified() {
		dir := filepath.Join(cgroupRoot, path)
		if err := mkdirCgroup(dir); err != nil {
			return err
		}
		// Members need the controllers enabled down the tree.
		if err := enableControllers(dir); err != nil {
			return err
		}
		if l.Memory > 0 {
			if err := write(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
				return err
			}
		}
		if l.NanoCPUs > 0 {
			if err := write(dir, "cpu.max", fmt.Sprintf("%d 100000", l.NanoCPUs*100000/1e9)); err != nil {
				return err
			}
		}
		if l.PidsLimit > 0 {
			if err := write(dir, "pids.max", strconv.FormatInt(l.PidsLimit, 10)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range []string{"memory", "cpu", "pids"} {
		if err := mkdirCgroup(filepath.Join(cgroupRoot, c, path)); err != nil {
			return err
		}
	}
	if l.Memory > 0 {
		if err := write(filepath.Join(cgroupRoot, "memory", path), "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
			return err
		}
	}
	if l.NanoCPUs > 0 {
		d := filepath.Join(cgroupRoot, "cpu", path)
		if err := write(d, "cpu.cfs_period_us", "100000"); err != nil {
			return err
		}
		if err := write(d, "cpu.cfs_quota_us", strconv.FormatInt(l.NanoCPUs*100000/1e9, 10)); err != nil {
			return err
		}
	}
	if l.PidsLimit > 0 {
		if err := write(filepath.Join(cgroupRoot, "pids", path), "pids.max", strconv.FormatInt(l.PidsLimit, 10)); err != nil {
			return err
		}
	}
	return nil
}

func mkdirCgroup(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pod cgroup %s: %w", dir, err)
	}
	return nil
}

// enableControllers turns on, in every cgroup from the root down to dir's
// parent and in dir, the controllers the limits use.
func enableControllers(dir string) error {
	rel := strings.TrimPrefix(dir, cgroupRoot)
	p := cgroupRoot
	for _, part := range append([]string{""}, strings.Split(strings.Trim(rel, "/"), "/")...) {
		if part != "" {
			p = filepath.Join(p, part)
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.controllers"))
		if err != nil {
			return fmt.Errorf("pod cgroup %s: %w", p, err)
		}
		var want []string
		for _, c := range strings.Fields(string(b)) {
			if c == "memory" || c == "cpu" || c == "pids" {
				want = append(want, "+"+c)
			}
		}
		if len(want) > 0 {
			os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte(strings.Join(want, " ")), 0)
		}
	}
	return nil
}

// RemoveCgroup removes the pod's cgroup (empty once its members are
// gone) from every hierarchy: on v1 the members' runtimes made the pod's
// directory in each controller they use, not only in the three the
// limits need.
func RemoveCgroup(path string) error {
	var dirs []string
	if unified() {
		dirs = []string{filepath.Join(cgroupRoot, path)}
	} else {
		ents, _ := os.ReadDir(cgroupRoot)
		for _, e := range ents {
			// Co-mounted controllers appear twice (cpu -> cpu,cpuacct):
			// once through the symlink, once as the directory.
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), path))
			}
		}
	}
	var errs []error
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && err != unix.ENOENT {
			errs = append(errs, fmt.Errorf("pod cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
