package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Endpoint is a container's or pod's interface on a network.
type Endpoint struct {
	Network   *Network
	ID        string           // owner id (container or pod); names the host veth and tags the nft rules
	NetnsPath string           // the netns to put the interface in (a pinned file or /proc/PID/ns/net)
	IfName    string           // in the netns; "eth0" if empty
	Addr4     netip.Addr       // from Network.Subnet4, if any
	Addr6     netip.Addr       // from Network.Subnet6, if any
	MAC       net.HardwareAddr // optional; derived from Addr4 (or ID) if empty
	Ports     []PortMapping
}

// PortMapping publishes ContainerPort of the endpoint on HostPort of the
// namespace the bridge lives in.
type PortMapping struct {
	HostIP        netip.Addr // zero: every local address (both families)
	HostPort      uint16
	ContainerPort uint16
	Proto         string // "tcp" (default) or "udp"
}

// VethName is the host-side interface name of endpoint id: "wrv-" and 11 hex
// digits of the id's SHA-256. Deterministic so that Detach and crash recovery
// find it from the id alone; the "wrv-" prefix keeps it apart from bridges.
func VethName(id string) string {
	h := sha256.Sum256([]byte(id))
	return "wrv-" + hex.EncodeToString(h[:])[:11]
}

// EndpointMAC is the MAC Attach gives an endpoint that has none: 02:42 and
// the IPv4 address, as docker does, so the MAC is stable across restarts and
// unique on the bridge as the address is. Without IPv4 it is 02:43 and four
// bytes of the id's SHA-256.
func EndpointMAC(id string, addr4 netip.Addr) net.HardwareAddr {
	if addr4.Is4() {
		b := addr4.As4()
		return net.HardwareAddr{0x02, 0x42, b[0], b[1], b[2], b[3]}
	}
	h := sha256.Sum256([]byte(id))
	return net.HardwareAddr{0x02, 0x43, h[0], h[1], h[2], h[3]}
}

// normalized returns a copy of e with defaults filled in, or the first
// problem found, named.
func (e *Endpoint) normalized() (*Endpoint, error) {
	if err := validID(e.ID); err != nil {
		return nil, err
	}
	if e.Network == nil {
		return nil, fmt.Errorf("endpoint %s: no network: %w", e.ID, errdefs.ErrInvalid)
	}
	n := *e.Network
	if err := n.normalize(); err != nil {
		return nil, fmt.Errorf("endpoint %s: %w", e.ID, err)
	}
	c := *e
	c.Network = &n
	if c.IfName == "" {
		c.IfName = "eth0"
	}
	if err := validIfName(c.IfName); err != nil {
		return nil, fmt.Errorf("endpoint %s: ifname: %w", e.ID, err)
	}
	if c.NetnsPath == "" {
		return nil, fmt.Errorf("endpoint %s: no netns path: %w", e.ID, errdefs.ErrInvalid)
	}
	c.Addr4, c.Addr6 = c.Addr4.Unmap(), c.Addr6.Unmap()
	if !c.Addr4.IsValid() && !c.Addr6.IsValid() {
		return nil, fmt.Errorf("endpoint %s: needs an address: %w", e.ID, errdefs.ErrInvalid)
	}
	check := func(a netip.Addr, s netip.Prefix, gw netip.Addr, fam string) error {
		if !a.IsValid() {
			return nil
		}
		if !s.IsValid() || !s.Contains(a) {
			return fmt.Errorf("endpoint %s: %s address %s is not in network %s's %s subnet %s: %w", e.ID, fam, a, n.Name, fam, s, errdefs.ErrInvalid)
		}
		if a == gw || a == s.Addr() || (a.Is4() && a == lastAddr(s)) {
			return fmt.Errorf("endpoint %s: address %s is the gateway, network or broadcast address of %s: %w", e.ID, a, s, errdefs.ErrInvalid)
		}
		return nil
	}
	if err := check(c.Addr4, n.Subnet4, n.Gateway4, "IPv4"); err != nil {
		return nil, err
	}
	if err := check(c.Addr6, n.Subnet6, n.Gateway6, "IPv6"); err != nil {
		return nil, err
	}
	if len(c.MAC) == 0 {
		c.MAC = EndpointMAC(c.ID, c.Addr4)
	} else if len(c.MAC) != 6 || c.MAC[0]&1 != 0 {
		return nil, fmt.Errorf("endpoint %s: mac %s: want a 6-byte unicast address: %w", e.ID, c.MAC, errdefs.ErrInvalid)
	}
	c.Ports = make([]PortMapping, len(e.Ports))
	for i, p := range e.Ports {
		if p.Proto == "" {
			p.Proto = "tcp"
		}
		p.HostIP = p.HostIP.Unmap()
		switch {
		case p.Proto != "tcp" && p.Proto != "udp":
			return nil, fmt.Errorf("endpoint %s: ports[%d]: proto %q: want tcp or udp: %w", e.ID, i, p.Proto, errdefs.ErrInvalid)
		case p.HostPort == 0 || p.ContainerPort == 0:
			return nil, fmt.Errorf("endpoint %s: ports[%d]: host and container port must be 1-65535: %w", e.ID, i, errdefs.ErrInvalid)
		case p.HostIP.Is4() && !c.Addr4.IsValid(), p.HostIP.Is6() && !c.Addr6.IsValid():
			return nil, fmt.Errorf("endpoint %s: ports[%d]: host ip %s has no address of its family to forward to: %w", e.ID, i, p.HostIP, errdefs.ErrInvalid)
		}
		c.Ports[i] = p
	}
	return &c, nil
}

// Attach connects e to its network, acting in the calling thread's network
// namespace (where the bridge is) and in e.NetnsPath: a veth pair whose host
// end joins the bridge and whose peer is created directly inside the target
// namespace as IfName (no move, no rename: one RTM_NEWLINK), addresses, lo and
// the interface up, default routes via the gateways, then all of e's nftables
// rules in a single transaction. If the target already has a default route of
// that family (a pod on a second network), it is kept: the first network
// attached is the way out.
//
// Retrying is safe: a host veth left by an earlier attempt (or an earlier
// successful Attach) is deleted first, so the result is the same either way.
// On failure Attach undoes its work and the endpoint is left detached.
func Attach(e *Endpoint) (err error) {
	ep, err := e.normalized()
	if err != nil {
		return err
	}
	target, err := openNetns(ep.NetnsPath)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.ID, err)
	}
	defer target.Close()
	c, err := here()
	if err != nil {
		return err
	}
	defer c.close()
	// Attaching "into" the bridge's own namespace would put eth0 and a
	// default route into the host: refuse before anything is changed.
	if same, err := sameNetns(c.ns, target); err != nil {
		return fmt.Errorf("endpoint %s: compare netns %s with the bridge's: %w", ep.ID, ep.NetnsPath, err)
	} else if same {
		return fmt.Errorf("endpoint %s: netns %s is the namespace the bridge lives in, not a container's: %w", ep.ID, ep.NetnsPath, errdefs.ErrInvalid)
	}

	br, err := linkByName(c.nl, ep.Network.Bridge)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.ID, err)
	}
	if br == nil {
		return fmt.Errorf("endpoint %s: bridge %s of network %s not found (set the network up first): %w", ep.ID, ep.Network.Bridge, ep.Network.Name, errdefs.ErrNotFound)
	}
	veth := VethName(ep.ID)
	if err := deleteVeth(c.nl, veth); err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.ID, err)
	}

	defer func() {
		if err != nil {
			// Deleting the host end takes the peer with it; the rules go in
			// their own transaction (Attach's, if it ran, either applied
			// fully or not at all).
			_ = deleteVeth(c.nl, veth)
			nftMu.Lock() // runs after the deferred Unlock below
			_ = removeEndpointRules(c.nft, ep.ID)
			nftMu.Unlock()
		}
	}()

	mtu := br.Attrs().MTU
	link := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: veth, MasterIndex: br.Attrs().Index, MTU: mtu, Flags: net.FlagUp},
		PeerName:         ep.IfName,
		PeerHardwareAddr: ep.MAC,
		PeerNamespace:    netlink.NsFd(int(target.Fd())),
		PeerMTU:          uint32(mtu),
	}
	if err := c.nl.LinkAdd(link); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("endpoint %s: create veth %s: %s already exists in netns %s: %w", ep.ID, veth, ep.IfName, ep.NetnsPath, errdefs.ErrExists)
		}
		return fmt.Errorf("endpoint %s: create veth %s with peer %s in netns %s: %w", ep.ID, veth, ep.IfName, ep.NetnsPath, err)
	}
	// Hairpin: where br_netfilter is active (bridge-nf-call-iptables=1, the
	// default in every namespace when it is built in), a container reaching
	// its own published port is DNATed in the bridge's prerouting and then
	// bridged straight back out of the port it came in by, which a bridge
	// port only does in hairpin mode. docker sets it for the same reason.
	if err := c.nl.LinkSetHairpin(link, true); err != nil {
		return fmt.Errorf("endpoint %s: hairpin mode on veth %s: %w", ep.ID, veth, err)
	}
	if err := configurePeer(ep, target); err != nil {
		return fmt.Errorf("endpoint %s: in netns %s: %w", ep.ID, ep.NetnsPath, err)
	}

	rules := endpointRules(ep)
	nftMu.Lock()
	defer nftMu.Unlock()
	ok, err := tableExists(c.nft)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.ID, err)
	}
	if !ok {
		if len(rules) == 0 {
			return nil
		}
		return fmt.Errorf("endpoint %s: nftables table inet %s is missing (set network %s up first): %w", ep.ID, tableName, ep.Network.Name, errdefs.ErrNotFound)
	}
	// Rules of an earlier Attach go in the same transaction, also when the
	// endpoint publishes nothing now.
	stale, err := rulesWithComment(c.nft, endpointChains, epComment+ep.ID)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", ep.ID, err)
	}
	if len(stale) == 0 && len(rules) == 0 {
		return nil
	}
	for _, r := range stale {
		if err := c.nft.DelRule(r); err != nil {
			return fmt.Errorf("endpoint %s: nftables: %w", ep.ID, err)
		}
	}
	for _, r := range rules {
		c.nft.AddRule(r)
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("endpoint %s: nftables: publish ports: %w", ep.ID, err)
	}
	return nil
}

// configurePeer sets up the container side through a netlink socket opened
// in the target namespace; no thread of ours enters it for longer than the
// socket() call.
func configurePeer(ep *Endpoint, target interface{ Fd() uintptr }) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(int(target.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("look up lo: %w", err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("bring up lo: %w", err)
		}
	}
	peer, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("look up %s: %w", ep.IfName, err)
	}
	n := ep.Network
	if ep.Addr4.IsValid() {
		if err := h.AddrAdd(peer, nlAddr(netip.PrefixFrom(ep.Addr4, n.Subnet4.Bits()))); err != nil {
			return fmt.Errorf("add address %s to %s: %w", ep.Addr4, ep.IfName, err)
		}
	}
	if ep.Addr6.IsValid() {
		if err := h.AddrAdd(peer, nlAddr(netip.PrefixFrom(ep.Addr6, n.Subnet6.Bits()))); err != nil {
			return fmt.Errorf("add address %s to %s: %w", ep.Addr6, ep.IfName, err)
		}
	}
	// Up before the routes: the kernel refuses a gateway route over a
	// device that is down (fib_check_nh: "Nexthop device is not up").
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("bring up %s: %w", ep.IfName, err)
	}
	for _, gw := range []netip.Addr{n.Gateway4, n.Gateway6} {
		if (gw.Is4() && !ep.Addr4.IsValid()) || (gw.Is6() && !ep.Addr6.IsValid()) || !gw.IsValid() {
			continue
		}
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw.AsSlice(), Scope: netlink.SCOPE_UNIVERSE}
		if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add default route via %s: %w", gw, err)
		}
	}
	return nil
}

// Detach removes e's host veth (the peer in the container goes with it) and
// all of e's rules in one nftables transaction, acting in the calling thread's
// network namespace. Only e.ID is used. Missing pieces are not errors: crash
// recovery calls Detach for whatever it finds.
func Detach(e *Endpoint) error {
	if err := validID(e.ID); err != nil {
		return err
	}
	c, err := here()
	if err != nil {
		return err
	}
	defer c.close()
	// Rules first: published ports stop pointing at the container before its
	// interface goes, and the veth deletion (the slow part, ~20 ms of kernel
	// unregistering) is attempted even if the rules could not be removed.
	var errs []error
	nftMu.Lock()
	err = removeEndpointRules(c.nft, e.ID)
	nftMu.Unlock()
	if err != nil {
		errs = append(errs, err)
	}
	if err := deleteVeth(c.nl, VethName(e.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("endpoint %s: detach: %w", e.ID, err)
	}
	return nil
}

// removeEndpointRules deletes id's rules in one transaction. Callers hold
// nftMu.
func removeEndpointRules(c *nftables.Conn, id string) error {
	ok, err := tableExists(c)
	if err != nil || !ok {
		return err
	}
	rules, err := rulesWithComment(c, endpointChains, epComment+id)
	if err != nil || len(rules) == 0 {
		return err
	}
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove rules of endpoint %s: %w", id, err)
	}
	return nil
}

// deleteVeth deletes the host veth name if present. A link of that name that
// is not a veth is not ours (the name is a hash; a collision means somebody
// chose it by hand) and is reported rather than deleted.
func deleteVeth(h *netlink.Handle, name string) error {
	l, err := linkByName(h, name)
	if err != nil || l == nil {
		return err
	}
	if l.Type() != "veth" {
		return fmt.Errorf("link %s is a %s, not warren's veth: left alone: %w", name, l.Type(), errdefs.ErrExists)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete veth %s: %w", name, err)
	}
	return nil
}

// validID keeps ids printable and short enough to fit an nft comment, which
// is how Detach finds an endpoint's rules.
func validID(id string) error {
	if id == "" || len(id) > maxIDLength {
		return fmt.Errorf("endpoint id %q: want 1 to %d bytes: %w", id, maxIDLength, errdefs.ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= ' ' || b >= 0x7f || b == '"' || b == '\\' {
			return fmt.Errorf("endpoint id %q: only printable ASCII without blanks, quotes or backslashes: %w", id, errdefs.ErrInvalid)
		}
	}
	return nil
}
