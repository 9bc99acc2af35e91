package network

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// hostNS is the network namespace the test binary started in: the real
// host's. Root tests never act in it; guardHost checks that they did not.
var hostNS *os.File

func TestMain(m *testing.M) {
	// Before any test runs every thread is still in the host namespace.
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		fmt.Fprintln(os.Stderr, "open host network namespace:", err)
		os.Exit(1)
	}
	hostNS = f
	os.Exit(m.Run())
}

// hostSnapshot is what a root test must leave unchanged in the host netns.
func hostSnapshot(t *testing.T) string {
	t.Helper()
	h, err := netlink.NewHandleAt(netns.NsHandle(int(hostNS.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("guard: rtnetlink in host netns: %v", err)
	}
	defer h.Close()
	var lines []string
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("guard: host links: %v", err)
	}
	for _, l := range links {
		a := l.Attrs()
		lines = append(lines, fmt.Sprintf("link %d %s %s up=%v master=%d mtu=%d mac=%s",
			a.Index, a.Name, l.Type(), a.Flags&net.FlagUp != 0, a.MasterIndex, a.MTU, a.HardwareAddr))
	}
	addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatalf("guard: host addresses: %v", err)
	}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("addr %d %s", a.LinkIndex, a.IPNet))
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatalf("guard: host routes: %v", err)
	}
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table=%d dst=%v gw=%v dev=%d", r.Table, r.Dst, r.Gw, r.LinkIndex))
	}
	nft, err := nftables.New(nftables.WithNetNSFd(int(hostNS.Fd())))
	if err != nil {
		t.Fatalf("guard: nftables in host netns: %v", err)
	}
	tables, err := nft.ListTables()
	if err != nil {
		t.Fatalf("guard: host nftables tables: %v", err)
	}
	for _, tb := range tables {
		lines = append(lines, fmt.Sprintf("nft table %d %s", tb.Family, tb.Name))
	}
	err = InNetns(fmt.Sprintf("/proc/self/fd/%d", hostNS.Fd()), func() error {
		for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
			"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"} {
			b, err := os.ReadFile("/proc/sys/" + k)
			if errors.Is(err, os.ErrNotExist) {
				continue // no br_netfilter in this kernel
			}
			if err != nil {
				return err
			}
			lines = append(lines, "sysctl "+k+"="+strings.TrimSpace(string(b)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("guard: host sysctls: %v", err)
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// guardHost fails the test if the host's links, addresses, routes, nftables
// tables or forwarding sysctls differ after the test from before it.
func guardHost(t *testing.T) {
	before := hostSnapshot(t)
	t.Cleanup(func() {
		if after := hostSnapshot(t); after != before {
			t.Errorf("the host network namespace changed during the test:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// env is a root test's private world: the test goroutine's thread lives in
// a fresh "host" netns (where bridges and rules go) for the rest of the test,
// and every other namespace is pinned under a temp dir, not /run/netns.
type env struct {
	t    *testing.T
	dir  string
	host string
}

func newEnv(t *testing.T) *env {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, bridges, veths and nftables rules (inside a private netns)")
	}
	guardHost(t) // first, so its check runs after every other cleanup
	dir := t.TempDir()
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) }) // before TempDir's RemoveAll
	// Never unlocked: when the test goroutine exits, the runtime kills the
	// thread, and with it the last reference to the test's namespace.
	runtime.LockOSThread()
	host, err := NewNetns(dir, "host")
	if err != nil {
		t.Fatalf("NewNetns host: %v", err)
	}
	t.Cleanup(func() { DeleteNetns(dir, "host") })
	f, err := os.Open(host)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("enter test netns: %v", err)
	}
	cur, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if same, err := sameNetns(cur, hostNS); err != nil || same {
		t.Fatalf("test thread is still in the host network namespace (err %v): refusing to go on", err)
	}
	if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "lo"}}); err != nil {
		t.Fatalf("lo up in test netns: %v", err)
	}
	return &env{t: t, dir: dir, host: host}
}

func (e *env) netns(name string) string {
	e.t.Helper()
	p, err := NewNetns(e.dir, name)
	if err != nil {
		e.t.Fatalf("NewNetns %s: %v", name, err)
	}
	e.t.Cleanup(func() { DeleteNetns(e.dir, name) })
	return p
}

// Addresses of the test's fake uplink: "ext" stands for the outside world,
// reachable from the test host netns only over the veth up0 <-> eth0, and
// with no route to any container subnet (so a reply only gets back if the
// request was masqueraded).
var (
	upHost4 = netip.MustParseAddr("198.51.100.1")
	upExt4  = netip.MustParseAddr("198.51.100.2")
	upHost6 = netip.MustParseAddr("2001:db8:1::1")
	upExt6  = netip.MustParseAddr("2001:db8:1::2")
)

func (e *env) uplink() string {
	e.t.Helper()
	ext := e.netns("ext")
	f, err := os.Open(ext)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0", Flags: net.FlagUp}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(f.Fd()))}
	if err := netlink.LinkAdd(v); err != nil {
		e.t.Fatalf("uplink veth: %v", err)
	}
	up0, err := netlink.LinkByName("up0")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range []netip.Prefix{netip.PrefixFrom(upHost4, 24), netip.PrefixFrom(upHost6, 64)} {
		if err := netlink.AddrAdd(up0, nlAddr(p)); err != nil {
			e.t.Fatalf("uplink address %s: %v", p, err)
		}
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(int(f.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		e.t.Fatal(err)
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, p := range []netip.Prefix{netip.PrefixFrom(upExt4, 24), netip.PrefixFrom(upExt6, 64)} {
		if err := h.AddrAdd(eth0, nlAddr(p)); err != nil {
			e.t.Fatalf("ext address %s: %v", p, err)
		}
	}
	for _, name := range []string{"eth0", "lo"} {
		l, _ := h.LinkByName(name)
		if err := h.LinkSetUp(l); err != nil {
			e.t.Fatal(err)
		}
	}
	return ext
}

// serveTCP answers every connection on port in netns ns with
// "<name> <remote addr>", so a test sees both who answered and whom the
// answerer thought it was talking to (which reveals any NAT on the way).
func serveTCP(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var ln net.Listener
	err := InNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen tcp :%d in %s: %v", port, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s", name, c.RemoteAddr())
			c.Close()
		}
	}()
}

// serveUDP echoes "<name> <remote addr>" to every datagram on port in ns.
func serveUDP(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var pc net.PacketConn
	err := InNetns(ns, func() (err error) {
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("listen udp :%d in %s: %v", port, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(fmt.Sprintf("%s %s", name, from)), from)
		}
	}()
}

// dial connects from netns ns to addr ("tcp" or "udp") and returns what the
// server said.
func dial(ns, network string, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var out string
	err := InNetns(ns, func() error {
		c, err := net.DialTimeout(network, addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if network == "udp" {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			out = string(buf[:n])
			return err
		}
		b, err := io.ReadAll(c)
		out = string(b)
		return err
	})
	return out, err
}

// mustReach asserts that a connection from ns to addr is answered by want,
// and, if fromHost is valid, that the server saw it come from fromHost.
func mustReach(t *testing.T, ns, network string, addr netip.AddrPort, want string, from netip.Addr) {
	t.Helper()
	got, err := dial(ns, network, addr, 3*time.Second)
	if err != nil {
		t.Errorf("%s %s from %s: %v", network, addr, ns, err)
		return
	}
	f := strings.Fields(got)
	if len(f) != 2 || f[0] != want {
		t.Errorf("%s %s from %s: answered %q, want %s", network, addr, ns, got, want)
		return
	}
	if from.IsValid() {
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil || ap.Addr().Unmap() != from {
			t.Errorf("%s %s from %s: server saw the client as %s, want %s", network, addr, ns, f[1], from)
		}
	}
}

// mustNotReach asserts that nothing answers.
func mustNotReach(t *testing.T, ns, network string, addr netip.AddrPort) {
	t.Helper()
	if got, err := dial(ns, network, addr, 400*time.Millisecond); err == nil {
		t.Errorf("%s %s from %s: answered %q, want no connection", network, addr, ns, got)
	}
}

// ping runs busybox ping inside ns, as `ip netns exec` would.
func ping(ns string, a netip.Addr) error {
	out, err := exec.Command("nsenter", "--net="+ns, "/bin/busybox", "ping", "-c", "1", "-W", "1", a.String()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s in %s: %v: %s", a, ns, err, bytes.TrimSpace(out))
	}
	return nil
}

func haveTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// nftRuleset is `nft list ruleset` as seen inside ns.
func nftRuleset(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+ns, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset in %s: %v: %s", ns, err, out)
	}
	return string(out)
}

// linkIn returns the named link in ns, or nil.
func linkIn(t *testing.T, ns, name string) netlink.Link {
	t.Helper()
	f, err := os.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := netlink.NewHandleAt(netns.NsHandle(int(f.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	if err != nil {
		t.Fatalf("look up %s in %s: %v", name, ns, err)
	}
	return l
}

func ap(a string, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(a), port)
}
