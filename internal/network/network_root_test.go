package network

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

var (
	mp = netip.MustParsePrefix
	ma = netip.MustParseAddr
)

func net1() *Network {
	return &Network{Name: "net1", Subnet4: mp("10.88.0.0/24"), Subnet6: mp("fd88::/64")}
}

func TestBridgeEndToEnd(t *testing.T) { endToEnd(t, true) }

// Without br_netfilter, traffic between ports of a bridge never meets the
// IP hooks and hairpin traffic is routed rather than bridged back: the same
// rules must work on hosts of both kinds.
func TestBridgeEndToEndNoBrNetfilter(t *testing.T) { endToEnd(t, false) }

func endToEnd(t *testing.T, brNetfilter bool) {
	e := newEnv(t)
	haveTools(t, "nsenter", "nft", "/bin/busybox")
	if !brNetfilter {
		// Per-netns knobs (kernel 5.3+); this is the test's own namespace.
		for _, k := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"} {
			if err := os.WriteFile("/proc/sys/net/bridge/"+k, []byte("0"), 0); err != nil {
				t.Skipf("cannot turn off br_netfilter in the test netns: %v", err)
			}
		}
	}
	ext := e.uplink()
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if n.Bridge != BridgeName("net1") || n.Gateway4 != ma("10.88.0.1") || n.Gateway6 != ma("fd88::1") {
		t.Fatalf("Setup filled in bridge %q, gateways %s %s", n.Bridge, n.Gateway4, n.Gateway6)
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/" + n.Bridge + "/route_localnet"} {
		if b, _ := os.ReadFile("/proc/sys/" + k); strings.TrimSpace(string(b)) != "1" {
			t.Errorf("in the test netns %s = %q, want 1", k, b)
		}
	}

	nsA, nsB := e.netns("a"), e.netns("b")
	epA := &Endpoint{Network: n, ID: "ctr-a", NetnsPath: nsA, Addr4: ma("10.88.0.2"), Addr6: ma("fd88::2"), Ports: []PortMapping{
		{HostPort: 8080, ContainerPort: 80},
		{HostPort: 5353, ContainerPort: 53, Proto: "udp"},
		{HostIP: upHost4, HostPort: 8081, ContainerPort: 80},
	}}
	epB := &Endpoint{Network: n, ID: "ctr-b", NetnsPath: nsB, Addr4: ma("10.88.0.3"), Addr6: ma("fd88::3")}
	for _, ep := range []*Endpoint{epA, epB} {
		if err := Attach(ep); err != nil {
			t.Fatalf("Attach %s: %v", ep.ID, err)
		}
	}

	// Seen from inside A: eth0 with both addresses, its MAC, lo up, and
	// default routes via the gateways.
	checkInside(t, nsA, "eth0", "02:42:0a:58:00:02", []string{"10.88.0.2/24", "fd88::2/64"}, n.Gateway4, n.Gateway6)
	if v := linkIn(t, e.host, VethName("ctr-a")); v == nil || v.Attrs().MasterIndex != linkIn(t, e.host, n.Bridge).Attrs().Index {
		t.Errorf("host veth %s missing or not on bridge %s", VethName("ctr-a"), n.Bridge)
	}

	serveTCP(t, nsA, 80, "A")
	serveUDP(t, nsA, 53, "A")
	serveTCP(t, nsB, 80, "B")
	serveTCP(t, ext, 9000, "ext")

	// Container to container by IP, both families, no NAT in between.
	mustReach(t, nsA, "tcp", ap("10.88.0.3", 80), "B", ma("10.88.0.2"))
	mustReach(t, nsA, "tcp", ap("fd88::3", 80), "B", ma("fd88::2"))
	for _, a := range []string{"10.88.0.3", "fd88::3"} {
		if err := ping(nsA, ma(a)); err != nil {
			t.Error(err)
		}
	}

	// Outbound: masqueraded to the uplink address, else ext could not answer.
	mustReach(t, nsA, "tcp", netip.AddrPortFrom(upExt4, 9000), "ext", upHost4)
	mustReach(t, nsA, "tcp", netip.AddrPortFrom(upExt6, 9000), "ext", upHost6)

	// Published ports from the bridge's netns itself (output hook).
	mustReach(t, e.host, "tcp", netip.AddrPortFrom(upHost4, 8080), "A", upHost4)
	mustReach(t, e.host, "tcp", netip.AddrPortFrom(upHost6, 8080), "A", upHost6)
	mustReach(t, e.host, "tcp", ap("10.88.0.1", 8080), "A", ma("10.88.0.1"))
	mustReach(t, e.host, "tcp", ap("127.0.0.1", 8080), "A", ma("10.88.0.1")) // route_localnet + masquerade
	mustReach(t, e.host, "tcp", netip.AddrPortFrom(upHost4, 8081), "A", upHost4)
	mustNotReach(t, e.host, "tcp", ap("127.0.0.1", 8081)) // 8081 is published on the uplink address only
	mustNotReach(t, e.host, "tcp", ap("::1", 8080))       // documented: no DNAT from IPv6 loopback
	mustReach(t, e.host, "udp", netip.AddrPortFrom(upHost4, 5353), "A", upHost4)
	mustReach(t, e.host, "udp", ap("127.0.0.1", 5353), "A", ma("10.88.0.1"))

	// Published ports from outside (prerouting): the client address is kept.
	mustReach(t, ext, "tcp", netip.AddrPortFrom(upHost4, 8080), "A", upExt4)
	mustReach(t, ext, "tcp", netip.AddrPortFrom(upHost6, 8080), "A", upExt6)
	mustReach(t, ext, "tcp", netip.AddrPortFrom(upHost4, 8081), "A", upExt4)
	mustReach(t, ext, "udp", netip.AddrPortFrom(upHost4, 5353), "A", upExt4)
	mustReach(t, ext, "udp", netip.AddrPortFrom(upHost6, 5353), "A", upExt6)

	// Hairpin: B, on the same bridge, through the host's addresses; A to
	// itself. The answer comes back only because the source was rewritten
	// to the gateway.
	mustReach(t, nsB, "tcp", ap("10.88.0.1", 8080), "A", ma("10.88.0.1"))
	mustReach(t, nsB, "tcp", ap("fd88::1", 8080), "A", ma("fd88::1"))
	mustReach(t, nsB, "tcp", netip.AddrPortFrom(upHost4, 8080), "A", ma("10.88.0.1"))
	mustReach(t, nsA, "tcp", netip.AddrPortFrom(upHost4, 8080), "A", ma("10.88.0.1"))
	mustReach(t, nsB, "udp", netip.AddrPortFrom(upHost4, 5353), "A", ma("10.88.0.1"))

	// Rules: 8080 and 5353 in both families, 8081 IPv4 only.
	rules, err := EndpointRules()
	if err != nil {
		t.Fatal(err)
	}
	if rules["ctr-a"] != 5 || rules["ctr-b"] != 0 || len(rules) != 1 {
		t.Errorf("EndpointRules = %v, want map[ctr-a:5]", rules)
	}
	if rs := nftRuleset(t, e.host); !strings.Contains(rs, `comment "warren-ep:ctr-a"`) {
		t.Errorf("nft list ruleset does not show ctr-a's rules:\n%s", rs)
	}

	// Detach A: its veth, its eth0 and every one of its rules are gone.
	if err := Detach(epA); err != nil {
		t.Fatalf("Detach: %v", err)
	}
	if l := linkIn(t, e.host, VethName("ctr-a")); l != nil {
		t.Errorf("veth %s still there after Detach", VethName("ctr-a"))
	}
	if l := linkIn(t, nsA, "eth0"); l != nil {
		t.Error("eth0 still in A's netns after Detach")
	}
	if rules, _ := EndpointRules(); rules["ctr-a"] != 0 {
		t.Errorf("EndpointRules after Detach = %v", rules)
	}
	if rs := nftRuleset(t, e.host); strings.Contains(rs, "ctr-a") || strings.Contains(rs, "10.88.0.2") || strings.Contains(rs, "8080") {
		t.Errorf("nft list ruleset still mentions ctr-a after Detach:\n%s", rs)
	}
	mustNotReach(t, ext, "tcp", netip.AddrPortFrom(upHost4, 8080))
	if err := Detach(epA); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	mustReach(t, e.host, "tcp", ap("10.88.0.3", 80), "B", ma("10.88.0.1")) // B unaffected

	if err := Detach(epB); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(n); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if l := linkIn(t, e.host, n.Bridge); l != nil {
		t.Errorf("bridge %s still there after Teardown", n.Bridge)
	}
	if rs := nftRuleset(t, e.host); strings.Contains(rs, "warren") {
		t.Errorf("nft ruleset after the last Teardown:\n%s", rs)
	}
	if err := Teardown(n); err != nil {
		t.Errorf("second Teardown: %v", err)
	}

	if err := DeleteNetns(e.dir, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(nsA); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after DeleteNetns: %v", nsA, err)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), nsA) {
		t.Errorf("%s still mounted after DeleteNetns", nsA)
	}
}

// checkInside asserts what a container would see on its interface.
func checkInside(t *testing.T, ns, ifname, mac string, addrs []string, gws ...netip.Addr) {
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
	l, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatalf("%s in %s: %v", ifname, ns, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 || l.Attrs().HardwareAddr.String() != mac {
		t.Errorf("%s: up=%v mac=%s, want up and %s", ifname, l.Attrs().Flags&net.FlagUp != 0, l.Attrs().HardwareAddr, mac)
	}
	have := map[string]bool{}
	as, _ := h.AddrList(l, netlink.FAMILY_ALL)
	for _, a := range as {
		have[a.IPNet.String()] = true
	}
	for _, a := range addrs {
		if !have[a] {
			t.Errorf("%s has addresses %v, want %s among them", ifname, have, a)
		}
	}
	lo, _ := h.LinkByName("lo")
	if lo == nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is not up")
	}
	routes, _ := h.RouteList(nil, netlink.FAMILY_ALL)
	for _, gw := range gws {
		found := false
		for _, r := range routes {
			if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(gw.AsSlice()) && r.LinkIndex == l.Attrs().Index {
				found = true
			}
		}
		if !found {
			t.Errorf("no default route via %s dev %s in %v", gw, ifname, routes)
		}
	}
}

func TestIsolation(t *testing.T) {
	e := newEnv(t)
	haveTools(t, "nsenter", "/bin/busybox")
	ext := e.uplink()
	n1 := net1()
	n2 := &Network{Name: "net2", Subnet4: mp("10.89.0.0/24"), Subnet6: mp("fd89::/64")}
	n3 := &Network{Name: "net3", Subnet4: mp("10.90.0.0/24"), Subnet6: mp("fd90::/64"), Internal: true}
	for _, n := range []*Network{n1, n2, n3} {
		if err := Setup(n); err != nil {
			t.Fatalf("Setup %s: %v", n.Name, err)
		}
	}
	x := &Endpoint{Network: n1, ID: "x", NetnsPath: e.netns("x"), Addr4: ma("10.88.0.2"), Addr6: ma("fd88::2"),
		Ports: []PortMapping{{HostPort: 8080, ContainerPort: 80}}}
	y := &Endpoint{Network: n2, ID: "y", NetnsPath: e.netns("y"), Addr4: ma("10.89.0.2"), Addr6: ma("fd89::2")}
	z := &Endpoint{Network: n3, ID: "z", NetnsPath: e.netns("z"), Addr4: ma("10.90.0.2"), Addr6: ma("fd90::2")}
	for _, ep := range []*Endpoint{x, y, z} {
		if err := Attach(ep); err != nil {
			t.Fatalf("Attach %s: %v", ep.ID, err)
		}
		serveTCP(t, ep.NetnsPath, 80, ep.ID)
	}
	serveTCP(t, ext, 9000, "ext")

	// Across networks, both directions, both families: nothing gets through.
	for _, c := range []struct {
		from *Endpoint
		to   netip.Addr
	}{
		{x, y.Addr4}, {x, y.Addr6}, {y, x.Addr4}, {y, x.Addr6},
		{x, z.Addr4}, {x, z.Addr6}, {z, x.Addr4}, {z, x.Addr6},
		{y, z.Addr4}, {z, y.Addr6},
	} {
		mustNotReach(t, c.from.NetnsPath, "tcp", netip.AddrPortFrom(c.to, 80))
	}
	// ICMP too (each failed ping costs its full one-second timeout).
	for _, to := range []netip.Addr{y.Addr4, y.Addr6} {
		if err := ping(x.NetnsPath, to); err == nil {
			t.Errorf("ping %s from x got through", to)
		}
	}
	// The same endpoints do reach the outside, except the internal one.
	mustReach(t, x.NetnsPath, "tcp", netip.AddrPortFrom(upExt4, 9000), "ext", upHost4)
	mustReach(t, y.NetnsPath, "tcp", netip.AddrPortFrom(upExt6, 9000), "ext", upHost6)
	mustNotReach(t, z.NetnsPath, "tcp", netip.AddrPortFrom(upExt4, 9000))
	mustNotReach(t, z.NetnsPath, "tcp", netip.AddrPortFrom(upExt6, 9000))
	// A published port is public, so another network reaches it through the
	// host's address like anyone else would.
	// The client leaves its own bridge, so it is masqueraded to the address
	// of the bridge it goes out by.
	mustReach(t, y.NetnsPath, "tcp", netip.AddrPortFrom(upHost4, 8080), "x", n1.Gateway4)

	// Tearing one network down leaves the others' rules working.
	if err := Detach(y); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(n2); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, z.NetnsPath, "tcp", netip.AddrPortFrom(x.Addr4, 80))
	mustReach(t, x.NetnsPath, "tcp", netip.AddrPortFrom(upExt4, 9000), "ext", upHost4)
	for _, ep := range []*Endpoint{x, z} {
		if err := Detach(ep); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*Network{n1, n3} {
		if err := Teardown(n); err != nil {
			t.Fatal(err)
		}
	}
}

// nftEvents subscribes to nftables change notifications in the calling
// thread's netns and returns a function that collects what arrived.
func nftEvents(t *testing.T) func() []uint16 {
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{Groups: 1 << (unix.NFNLGRP_NFTABLES - 1)})
	if err != nil {
		t.Fatalf("nftables monitor: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return func() []uint16 {
		var types []uint16
		for {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			msgs, err := c.Receive()
			if err != nil {
				return types
			}
			for _, m := range msgs {
				types = append(types, uint16(m.Header.Type)&0xff)
			}
		}
	}
}

// generations splits monitor events at NFT_MSG_NEWGEN (sent once per
// committed transaction) and counts the given message type in each.
func generations(types []uint16, count uint16) []int {
	var gens []int
	cur := 0
	for _, ty := range types {
		switch ty {
		case unix.NFT_MSG_NEWGEN:
			gens = append(gens, cur)
			cur = 0
		case count:
			cur++
		}
	}
	if cur != 0 {
		gens = append(gens, -cur) // events after the last NEWGEN: not committed together
	}
	return gens
}

func TestAttachIsOneTransaction(t *testing.T) {
	e := newEnv(t)
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	ep := &Endpoint{Network: n, ID: "tx", NetnsPath: e.netns("tx"), Addr4: ma("10.88.0.9"), Addr6: ma("fd88::9"), Ports: []PortMapping{
		{HostPort: 1001, ContainerPort: 1}, {HostPort: 1002, ContainerPort: 2, Proto: "udp"}, {HostPort: 1003, ContainerPort: 3},
	}}
	events := nftEvents(t)
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	if g := generations(events(), unix.NFT_MSG_NEWRULE); len(g) != 1 || g[0] != 6 {
		t.Errorf("Attach: new rules per nftables generation = %v, want [6] (one transaction)", g)
	}
	// A retry replaces the rules, again in one transaction.
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	evs := events()
	if g := generations(evs, unix.NFT_MSG_NEWRULE); len(g) != 1 || g[0] != 6 {
		t.Errorf("second Attach: new rules per generation = %v, want [6]", g)
	}
	if g := generations(evs, unix.NFT_MSG_DELRULE); len(g) != 1 || g[0] != 6 {
		t.Errorf("second Attach: deleted rules per generation = %v, want [6]", g)
	}
	if r, _ := EndpointRules(); r["tx"] != 6 {
		t.Errorf("after a retried Attach EndpointRules = %v, want tx:6", r)
	}
	// Re-attached with fewer ports: the old rules go, atomically with the
	// new ones going in.
	ep.Ports = ep.Ports[:1]
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	evs = events()
	if g := generations(evs, unix.NFT_MSG_DELRULE); len(g) != 1 || g[0] != 6 {
		t.Errorf("Attach with one port: deleted rules per generation = %v, want [6]", g)
	}
	if r, _ := EndpointRules(); r["tx"] != 2 {
		t.Errorf("after Attach with one port EndpointRules = %v, want tx:2", r)
	}
	ep.Ports = nil
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	if r, _ := EndpointRules(); r["tx"] != 0 {
		t.Errorf("after Attach with no ports EndpointRules = %v, want none", r)
	}
	ep.Ports = []PortMapping{{HostPort: 1001, ContainerPort: 1}, {HostPort: 1002, ContainerPort: 2, Proto: "udp"}, {HostPort: 1003, ContainerPort: 3}}
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	events()
	if err := Detach(ep); err != nil {
		t.Fatal(err)
	}
	if g := generations(events(), unix.NFT_MSG_DELRULE); len(g) != 1 || g[0] != 6 {
		t.Errorf("Detach: deleted rules per generation = %v, want [6]", g)
	}
	if err := Teardown(n); err != nil {
		t.Fatal(err)
	}
}

func TestAttachFailuresLeaveNothing(t *testing.T) {
	e := newEnv(t)
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	ports := []PortMapping{{HostPort: 8080, ContainerPort: 80}}
	clean := func(what, id string) {
		t.Helper()
		if l := linkIn(t, e.host, VethName(id)); l != nil {
			t.Errorf("%s: veth %s left behind", what, VethName(id))
		}
		if r, _ := EndpointRules(); r[id] != 0 {
			t.Errorf("%s: rules left behind: %v", what, r)
		}
	}

	// No such netns.
	err := Attach(&Endpoint{Network: n, ID: "f1", NetnsPath: e.dir + "/nope", Addr4: ma("10.88.0.2"), Ports: ports})
	if !errdefs.IsNotFound(err) {
		t.Errorf("Attach into a missing netns: %v, want ErrNotFound", err)
	}
	clean("missing netns", "f1")

	// The bridge's own netns: must be refused before anything changes.
	err = Attach(&Endpoint{Network: n, ID: "f2", NetnsPath: e.host, Addr4: ma("10.88.0.2"), Ports: ports})
	if !errdefs.IsInvalid(err) {
		t.Errorf("Attach into the bridge's netns: %v, want ErrInvalid", err)
	}
	if l := linkIn(t, e.host, "eth0"); l != nil {
		t.Error("Attach into the bridge's netns created eth0 there")
	}
	clean("own netns", "f2")

	// eth0 already taken in the target.
	busy := e.netns("busy")
	err = InNetns(busy, func() error {
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = Attach(&Endpoint{Network: n, ID: "f3", NetnsPath: busy, Addr4: ma("10.88.0.3"), Ports: ports})
	if !errdefs.IsExists(err) {
		t.Errorf("Attach with eth0 taken: %v, want ErrExists", err)
	}
	clean("eth0 taken", "f3")
	if l := linkIn(t, busy, "eth0"); l == nil || l.Type() != "bridge" {
		t.Error("the target's own eth0 was touched")
	}

	// Failing late (IPv6 address refused inside the target) after an
	// earlier successful Attach: everything goes, old rules included.
	late := e.netns("late")
	ep := &Endpoint{Network: n, ID: "f4", NetnsPath: late, Addr4: ma("10.88.0.4"), Addr6: ma("fd88::4"), Ports: ports}
	if err := Attach(ep); err != nil {
		t.Fatal(err)
	}
	err = InNetns(late, func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(ep); err == nil {
		t.Error("Attach with IPv6 disabled in the target succeeded")
	} else {
		t.Logf("late failure, as expected: %v", err)
	}
	clean("late failure", "f4")
	if l := linkIn(t, late, "eth0"); l != nil {
		t.Error("eth0 left in the target after a failed Attach")
	}

	// Invalid input is refused up front, naming the problem.
	for _, bad := range []*Endpoint{
		{Network: n, ID: "", NetnsPath: late, Addr4: ma("10.88.0.5")},
		{Network: n, ID: "b", NetnsPath: late},
		{Network: n, ID: "b", NetnsPath: late, Addr4: ma("10.99.0.5")},
		{Network: n, ID: "b", NetnsPath: late, Addr4: ma("10.88.0.1")},
		{Network: n, ID: "b", NetnsPath: late, Addr4: ma("10.88.0.5"), Ports: []PortMapping{{HostPort: 1, ContainerPort: 1, Proto: "sctp"}}},
		{Network: &Network{Name: "v4only", Subnet4: mp("10.70.0.0/24")}, ID: "b", NetnsPath: late, Addr4: ma("10.70.0.5"),
			Ports: []PortMapping{{HostIP: ma("2001:db8::1"), HostPort: 1, ContainerPort: 1}}},
	} {
		if err := Attach(bad); !errdefs.IsInvalid(err) {
			t.Errorf("Attach(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := Teardown(n); err != nil {
		t.Fatal(err)
	}
}

func TestSetupIdempotentAndFixesUp(t *testing.T) {
	e := newEnv(t)
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	rs1 := nftRulesetOrSkip(t, e.host)
	if err := Setup(n); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if rs2 := nftRulesetOrSkip(t, e.host); rs2 != rs1 {
		t.Errorf("second Setup changed the ruleset:\n%s\nthen:\n%s", rs1, rs2)
	}
	br := linkIn(t, e.host, n.Bridge)
	// A stray address, and the bridge down: Setup puts both right.
	if err := netlink.AddrAdd(br, nlAddr(mp("10.77.0.1/24"))); err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetDown(br); err != nil {
		t.Fatal(err)
	}
	n.Subnet4, n.Gateway4 = mp("10.88.1.0/24"), netip.Addr{}
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	br = linkIn(t, e.host, n.Bridge)
	as, _ := netlink.AddrList(br, netlink.FAMILY_ALL)
	var got []string
	for _, a := range as {
		if !a.IP.IsLinkLocalUnicast() {
			got = append(got, a.IPNet.String())
		}
	}
	if strings.Join(got, " ") != "10.88.1.1/24 fd88::1/64" || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("after a fixing Setup: addresses %v, up=%v; want 10.88.1.1/24 fd88::1/64, up", got, br.Attrs().Flags&net.FlagUp != 0)
	}
	if rs := nftRulesetOrSkip(t, e.host); strings.Contains(rs, "10.88.0.0/24") || !strings.Contains(rs, "10.88.1.0/24") {
		t.Errorf("rules not moved to the new subnet:\n%s", rs)
	}
	// Something else with the bridge's name (a veth here) is not taken over.
	other := &Network{Name: "other", Bridge: "dummy0", Subnet4: mp("10.66.0.0/24")}
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "dummy0"}, PeerName: "dummy0p"}); err != nil {
		t.Fatal(err)
	}
	if err := Setup(other); !errdefs.IsExists(err) {
		t.Errorf("Setup over a veth: %v, want ErrExists", err)
	}
	if err := Teardown(n); err != nil {
		t.Fatal(err)
	}
	// Bad networks are refused up front.
	for _, bad := range []*Network{
		{Name: "none"},
		{Name: "bits", Subnet4: mp("10.1.0.5/24")},
		{Name: "gw", Subnet4: mp("10.1.0.0/24"), Gateway4: ma("10.2.0.1")},
		{Name: "fam", Subnet4: mp("fd00::/64")},
		{Name: "long", Bridge: "much-too-long-name", Subnet4: mp("10.1.0.0/24")},
	} {
		if err := Setup(bad); !errdefs.IsInvalid(err) {
			t.Errorf("Setup(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}

func nftRulesetOrSkip(t *testing.T, ns string) string {
	t.Helper()
	haveTools(t, "nsenter", "nft")
	return nftRuleset(t, ns)
}

func TestConcurrentAttach(t *testing.T) {
	e := newEnv(t)
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	const k = 12
	eps := make([]*Endpoint, k)
	for i := range eps {
		addr, err := Allocate(n.Subnet4, n.Gateway4, leasesOf(eps[:i]), string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = &Endpoint{Network: n, ID: string(rune('a' + i)), NetnsPath: e.netns(string(rune('a' + i))), Addr4: addr,
			Ports: []PortMapping{{HostPort: uint16(9000 + i), ContainerPort: 80}}}
	}
	// How the engine calls in from arbitrary goroutines when the bridge does
	// not live in its own netns (in production it does, and no InNetns is
	// needed).
	run := func(f func(*Endpoint) error) {
		var wg sync.WaitGroup
		errs := make(chan error, k)
		for _, ep := range eps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- InNetns(e.host, func() error { return f(ep) })
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	run(Attach)
	r, err := EndpointRules()
	if err != nil || len(r) != k {
		t.Fatalf("EndpointRules after %d concurrent Attach = %v, %v", k, r, err)
	}
	run(Detach)
	if r, _ := EndpointRules(); len(r) != 0 {
		t.Errorf("EndpointRules after concurrent Detach = %v", r)
	}
	if err := Teardown(n); err != nil {
		t.Fatal(err)
	}
}

func leasesOf(eps []*Endpoint) []Lease {
	var ls []Lease
	for _, ep := range eps {
		ls = append(ls, Lease{Addr: ep.Addr4, Owner: ep.ID})
	}
	return ls
}

func TestNamedNetns(t *testing.T) {
	e := newEnv(t)
	before, _ := os.Open("/proc/thread-self/ns/net")
	defer before.Close()
	p, err := NewNetns(e.dir, "pinned")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := isNetnsMount(p); err != nil || !ok {
		t.Errorf("%s is not an nsfs mount: %v", p, err)
	}
	after, _ := os.Open("/proc/thread-self/ns/net")
	defer after.Close()
	if same, _ := sameNetns(before, after); !same {
		t.Error("NewNetns moved the calling thread to another netns")
	}
	pf, _ := os.Open(p)
	if same, _ := sameNetns(pf, after); same {
		t.Error("NewNetns pinned the caller's netns, not a new one")
	}
	pf.Close()
	// The directory is a shared mount point, as iproute2 makes /run/netns.
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var dirLine string
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 6 && f[4] == e.dir {
			dirLine = l
		}
	}
	if !strings.Contains(dirLine, "shared:") {
		t.Errorf("%s is not a shared mount point: %q", e.dir, dirLine)
	}
	if _, err := NewNetns(e.dir, "pinned"); !errdefs.IsExists(err) {
		t.Errorf("NewNetns over a pinned one: %v, want ErrExists", err)
	}
	// A leftover empty file (crash between create and mount) is reused.
	if err := os.WriteFile(e.dir+"/leftover", nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := NewNetns(e.dir, "leftover"); err != nil {
		t.Errorf("NewNetns over an empty leftover file: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := NewNetns(e.dir, bad); !errdefs.IsInvalid(err) {
			t.Errorf("NewNetns(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := exec.LookPath("nsenter"); err == nil {
		if out, err := exec.Command("nsenter", "--net="+p, "/bin/busybox", "ip", "link").CombinedOutput(); err != nil || !strings.Contains(string(out), "lo") {
			t.Errorf("entering %s: %v: %s", p, err, out)
		}
	}
	for _, name := range []string{"pinned", "leftover", "pinned", "never-existed"} {
		if err := DeleteNetns(e.dir, name); err != nil {
			t.Errorf("DeleteNetns %s: %v", name, err)
		}
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there: %v", p, err)
	}
	if err := InNetns(p, func() error { return nil }); !errdefs.IsNotFound(err) {
		t.Errorf("InNetns on a deleted netns: %v, want ErrNotFound", err)
	}
}

// TestAttachDetachTiming logs the cost of an endpoint's life; no timed
// assertions (DESIGN.md: benchmarks are not tests).
func TestAttachDetachTiming(t *testing.T) {
	e := newEnv(t)
	n := net1()
	if err := Setup(n); err != nil {
		t.Fatal(err)
	}
	const rounds = 50
	ports := []PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 5353, ContainerPort: 53, Proto: "udp"}}
	ns := e.netns("bench")
	ep := &Endpoint{Network: n, ID: "bench", NetnsPath: ns, Addr4: ma("10.88.0.50"), Addr6: ma("fd88::50"), Ports: ports}
	var attach, detach time.Duration
	for range rounds {
		t0 := time.Now()
		if err := Attach(ep); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := Detach(ep); err != nil {
			t.Fatal(err)
		}
		attach += t1.Sub(t0)
		detach += time.Since(t1)
	}
	t.Logf("per endpoint (v4+v6, 2 ports = 4 rules), avg of %d: Attach %v + Detach %v = %v",
		rounds, attach/rounds, detach/rounds, (attach+detach)/rounds)

	var full time.Duration
	for i := range rounds {
		t0 := time.Now()
		p, err := NewNetns(e.dir, "b")
		if err != nil {
			t.Fatal(err)
		}
		ep := &Endpoint{Network: n, ID: "b", NetnsPath: p, Addr4: ma("10.88.0.51"), Addr6: ma("fd88::51"), Ports: ports}
		if err := Attach(ep); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := Detach(ep); err != nil {
			t.Fatal(err)
		}
		if err := DeleteNetns(e.dir, "b"); err != nil {
			t.Fatal(err)
		}
		full += time.Since(t0)
	}
	t.Logf("with NewNetns/DeleteNetns around it, avg of %d: %v", rounds, full/rounds)
	if err := Teardown(n); err != nil {
		t.Fatal(err)
	}
}
