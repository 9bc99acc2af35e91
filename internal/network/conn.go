package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// nsConn holds the calling thread's network namespace and the netlink
// sockets opened in it. Sockets stay bound to the namespace they were created
// in, so once here returns, work through them is correct whichever thread
// runs it; only /proc/sys writes still depend on the thread (see sysctl).
type nsConn struct {
	ns  *os.File
	nl  *netlink.Handle
	nft *nftables.Conn
}

// here pins the goroutine to its thread (released by close) and opens
// handles on that thread's network namespace. Pinning matters for callers
// that moved their thread into a test namespace and for the sysctl writes,
// which the kernel resolves against the writing thread's namespace.
func here() (*nsConn, error) {
	runtime.LockOSThread()
	ns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open the calling thread's network namespace: %w", err)
	}
	// No namespace arguments below: both sockets are created synchronously
	// by this locked thread, so they are born in the right namespace. Passing
	// the fd instead makes each library hop to another thread and setns
	// twice, about 0.2 ms per call. The root tests' host guard would catch a
	// library change that broke this (rules would land in the host).
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	nft, err := nftables.New(nftables.AsLasting())
	if err != nil {
		nl.Close()
		ns.Close()
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	return &nsConn{ns: ns, nl: nl, nft: nft}, nil
}

func (c *nsConn) close() {
	c.nft.CloseLasting()
	c.nl.Close()
	c.ns.Close()
	runtime.UnlockOSThread()
}

// sameNetns reports whether two namespace files name the same namespace.
func sameNetns(a, b *os.File) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(int(a.Fd()), &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(int(b.Fd()), &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// linkByName returns the link, or nil without error when it does not exist.
func linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err == nil {
		return l, nil
	}
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	return nil, fmt.Errorf("look up link %s: %w", name, err)
}

// linkList retries a dump the kernel interrupted because links changed
// meanwhile (netlink returns ErrDumpInterrupted with partial results).
func linkList(h *netlink.Handle) ([]netlink.Link, error) {
	var err error
	for range 5 {
		var ls []netlink.Link
		ls, err = h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return ls, err
		}
	}
	return nil, err
}

// sysctl sets a /proc/sys/net knob of the calling thread's network
// namespace (the caller holds the thread locked, see here). It reads first and
// writes only on a change: writing ip_forward or forwarding walks every
// device, and a read-only /proc/sys with the right value already set is fine.
func sysctl(path, value string) error {
	full := "/proc/sys/" + path
	f, err := os.OpenFile(full, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", path, err)
	}
	defer f.Close()
	// A verified handle: the write must land in procfs, not in whatever a
	// bind mount over /proc/sys might have put there.
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("sysctl %s: %s is not on procfs", path, full)
	}
	buf := make([]byte, 64)
	n, _ := f.Read(buf)
	if strings.TrimSpace(string(buf[:n])) == value {
		return nil
	}
	if _, err := f.WriteAt([]byte(value), 0); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", path, value, err)
	}
	return nil
}
