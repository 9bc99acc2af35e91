package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// DefaultNetnsDir is where iproute2 looks for named network namespaces; pinning
// them there makes `ip netns list` and `ip netns exec` work on warren's pods.
const DefaultNetnsDir = "/run/netns"

// NewNetns creates a network namespace and pins it with a bind mount at
// dir/name, the way `ip netns add` does, and returns that path. The namespace
// lives until DeleteNetns removes the mount and the last process in it exits.
// Its loopback device is down, as in any new namespace; Attach brings it up.
//
// The calling thread's namespaces are not changed: the namespace is created on
// a separate locked thread that switches back before it is released.
func NewNetns(dir, name string) (string, error) {
	if err := validNetnsName(name); err != nil {
		return "", err
	}
	if err := ensureNetnsDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0)
	switch {
	case err == nil:
		f.Close()
	case errors.Is(err, os.ErrExist):
		// An empty file is what a crash between create and mount leaves;
		// reuse it. A pinned namespace is somebody's: do not shadow it.
		if pinned, perr := isNetnsMount(path); perr != nil {
			return "", perr
		} else if pinned {
			return "", fmt.Errorf("network namespace %s already exists: %w", path, errdefs.ErrExists)
		}
	default:
		return "", fmt.Errorf("create network namespace file %s: %w", path, err)
	}
	err = onLockedThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("create network namespace %s: unshare: %w", path, err)
		}
		// thread-self, not self: only this thread is in the new namespace.
		if err := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin network namespace at %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// DeleteNetns unpins dir/name: it detaches the bind mount and removes the
// file. A namespace that is not there, or a file that is not mounted, is fine:
// crash recovery calls this for whatever it finds.
func DeleteNetns(dir, name string) error {
	if err := validNetnsName(name); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	// MNT_DETACH as iproute2 does: a process still holding the file open
	// (ip netns exec, nsenter) must not make the delete fail.
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount network namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove network namespace file %s: %w", path, err)
	}
	return nil
}

// InNetns runs fn on a locked OS thread that has joined the network namespace
// at path (a pinned file or /proc/PID/ns/net). Sockets fn opens belong to that
// namespace, and this package's functions called from fn act in it. Goroutines
// fn starts do not inherit the namespace. The caller's own thread is never
// moved; if the thread cannot switch back afterwards it is discarded rather
// than returned to the scheduler in the wrong namespace.
func InNetns(path string, fn func() error) error {
	ns, err := openNetns(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return onLockedThread(func() error {
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a fresh locked thread and restores the thread's
// original network namespace afterwards. Go reuses threads for any goroutine,
// so a thread left in another namespace would silently move unrelated work
// there; when the restore fails the goroutine exits still locked, which makes
// the runtime terminate the thread (runtime.LockOSThread docs).
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("return to the original network namespace: %w", err))
			return // still locked: the thread dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// openNetns opens path and checks that it is a network namespace, so a typo
// in a path cannot make Attach configure some other file's namespace.
func openNetns(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("network namespace %s: %w", path, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || t != unix.CLONE_NEWNET {
		f.Close()
		return nil, fmt.Errorf("%s is not a network namespace: %w", path, errdefs.ErrInvalid)
	}
	return f, nil
}

// ensureNetnsDir makes dir a mount point with shared propagation, as iproute2
// does for /run/netns: the pins made under it then also appear in mount
// namespaces that were copied from this one after dir was set up, instead of
// those holding a stale, private copy of the directory.
func ensureNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create network namespace directory %s: %w", dir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		// EINVAL: dir is not a mount point yet. Bind it onto itself once.
		if err != unix.EINVAL || bound {
			return fmt.Errorf("make %s a shared mount: %w", dir, err)
		}
		if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s onto itself: %w", dir, err)
		}
	}
}

func isNetnsMount(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

func validNetnsName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("network namespace name %q: want a single path element: %w", name, errdefs.ErrInvalid)
	}
	return nil
}
