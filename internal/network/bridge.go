package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// Network is a bridge network: one Linux bridge whose own addresses are the
// gateways of its subnets.
type Network struct {
	Name     string
	Bridge   string       // interface name, at most 15 bytes; Setup fills in BridgeName(Name) if empty
	Subnet4  netip.Prefix // optional
	Gateway4 netip.Addr   // Setup fills in DefaultGateway(Subnet4) if zero
	Subnet6  netip.Prefix // optional
	Gateway6 netip.Addr   // Setup fills in DefaultGateway(Subnet6) if zero
	Internal bool         // no outbound NAT, no forwarding to or from other interfaces (published ports still work)
}

// BridgeName derives a bridge interface name from a network name: "wrn-" and
// 11 hex digits of its SHA-256, 15 bytes, the most IFNAMSIZ allows.
func BridgeName(network string) string {
	h := sha256.Sum256([]byte(network))
	return "wrn-" + hex.EncodeToString(h[:])[:11]
}

// bridgeMAC is fixed per bridge: by default a bridge takes the lowest MAC of
// its ports, so every attach or detach could change the gateway's MAC under
// the containers' neighbour caches.
func bridgeMAC(bridge string) net.HardwareAddr {
	h := sha256.Sum256([]byte(bridge))
	return net.HardwareAddr{0x02, 0x57, h[0], h[1], h[2], h[3]} // locally administered, unicast
}

// normalize validates n and fills in the defaults documented on Network.
func (n *Network) normalize() error {
	if n.Bridge == "" {
		if n.Name == "" {
			return fmt.Errorf("network: no name and no bridge: %w", errdefs.ErrInvalid)
		}
		n.Bridge = BridgeName(n.Name)
	}
	if err := validIfName(n.Bridge); err != nil {
		return fmt.Errorf("network %s: bridge: %w", n.Name, err)
	}
	if !n.Subnet4.IsValid() && !n.Subnet6.IsValid() {
		return fmt.Errorf("network %s: needs an IPv4 or an IPv6 subnet: %w", n.Name, errdefs.ErrInvalid)
	}
	fix := func(fam string, s netip.Prefix, gw *netip.Addr, v4 bool) error {
		if !s.IsValid() {
			if gw.IsValid() {
				return fmt.Errorf("network %s: gateway %s given without an %s subnet: %w", n.Name, gw, fam, errdefs.ErrInvalid)
			}
			return nil
		}
		if s.Addr().Is4() != v4 {
			return fmt.Errorf("network %s: subnet %s is not %s: %w", n.Name, s, fam, errdefs.ErrInvalid)
		}
		if err := ValidateSubnet(s); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
		if !gw.IsValid() {
			*gw = DefaultGateway(s)
		}
		*gw = gw.Unmap()
		if !s.Contains(*gw) || *gw == s.Addr() || (v4 && *gw == lastAddr(s)) {
			return fmt.Errorf("network %s: gateway %s is not a host address of %s: %w", n.Name, gw, s, errdefs.ErrInvalid)
		}
		return nil
	}
	if err := fix("IPv4", n.Subnet4, &n.Gateway4, true); err != nil {
		return err
	}
	return fix("IPv6", n.Subnet6, &n.Gateway6, false)
}

// Setup makes n's bridge in the calling thread's network namespace and
// installs its rules. It is idempotent: an existing bridge is reused and fixed
// up (stray global addresses removed, gateways added, brought up), and the
// network's rules are replaced in one nftables transaction. It turns on
// IPv4/IPv6 forwarding in that namespace (as docker does) and never turns it
// off again, since other networks or software may rely on it.
func Setup(n *Network) error {
	if err := n.normalize(); err != nil {
		return err
	}
	c, err := here()
	if err != nil {
		return err
	}
	defer c.close()

	br, err := ensureBridge(c.nl, n.Bridge)
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := bridgeAddrs(c.nl, br, n); err != nil {
		return fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
	}
	if n.Subnet6.IsValid() {
		// A bridge made while IPv6 was off by default would reject the
		// gateway address; it is our interface, so make sure.
		if err := sysctl("net/ipv6/conf/"+n.Bridge+"/disable_ipv6", "0"); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	if err := c.nl.LinkSetUp(br); err != nil {
		return fmt.Errorf("network %s: bring up bridge %s: %w", n.Name, n.Bridge, err)
	}
	var knobs [][2]string
	if n.Subnet4.IsValid() {
		knobs = append(knobs,
			[2]string{"net/ipv4/ip_forward", "1"},
			// Lets a DNAT from 127.0.0.1:port route out of the bridge; the
			// prerouting-raw chain closes the hole it opens (CVE-2020-8558).
			[2]string{"net/ipv4/conf/" + n.Bridge + "/route_localnet", "1"})
	}
	if n.Subnet6.IsValid() {
		knobs = append(knobs, [2]string{"net/ipv6/conf/all/forwarding", "1"})
	}
	for _, k := range knobs {
		if err := sysctl(k[0], k[1]); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}

	nftMu.Lock()
	defer nftMu.Unlock()
	var stale []*nftables.Rule
	if ok, err := tableExists(c.nft); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	} else if ok {
		if stale, err = rulesWithComment(c.nft, networkChains, netComment+n.Bridge); err != nil {
			return fmt.Errorf("network %s: %w", n.Name, err)
		}
	}
	set, err := addSkeleton(c.nft)
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	if err := c.nft.SetAddElements(set, []nftables.SetElement{{Key: ifnameBytes(n.Bridge)}}); err != nil {
		return fmt.Errorf("network %s: nftables: add %s to set %s: %w", n.Name, n.Bridge, setBridges, err)
	}
	for _, r := range stale {
		if err := c.nft.DelRule(r); err != nil {
			return fmt.Errorf("network %s: nftables: %w", n.Name, err)
		}
	}
	for _, r := range networkRules(n, set) {
		c.nft.AddRule(r)
	}
	if err := c.nft.Flush(); err != nil {
		return fmt.Errorf("network %s: nftables: install rules for bridge %s: %w", n.Name, n.Bridge, err)
	}
	return nil
}

// ensureBridge returns the bridge named name, creating it if needed.
func ensureBridge(h *netlink.Handle, name string) (netlink.Link, error) {
	for range 2 {
		l, err := linkByName(h, name)
		if err != nil {
			return nil, err
		}
		if l != nil {
			if l.Type() != "bridge" {
				return nil, fmt.Errorf("link %s exists and is a %s, not a bridge: %w", name, l.Type(), errdefs.ErrExists)
			}
			return l, nil
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: bridgeMAC(name)}}
		if err := h.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		// EEXIST: another Setup won the race; look again.
	}
	return nil, fmt.Errorf("create bridge %s: it keeps disappearing: %w", name, errdefs.ErrState)
}

// bridgeAddrs makes the bridge's global addresses exactly the gateways.
// Link-local IPv6 addresses are the kernel's and are left alone.
func bridgeAddrs(h *netlink.Handle, br netlink.Link, n *Network) error {
	want := map[netip.Prefix]bool{}
	if n.Subnet4.IsValid() {
		want[netip.PrefixFrom(n.Gateway4, n.Subnet4.Bits())] = true
	}
	if n.Subnet6.IsValid() {
		want[netip.PrefixFrom(n.Gateway6, n.Subnet6.Bits())] = true
	}
	have, err := h.AddrList(br, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range have {
		p, ok := addrPrefix(a.IPNet)
		if !ok || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if want[p] {
			delete(want, p)
			continue
		}
		if err := h.AddrDel(br, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove stale address %s: %w", p, err)
		}
	}
	// Sorted so that errors and netlink traffic are deterministic.
	todo := make([]netip.Prefix, 0, len(want))
	for p := range want {
		todo = append(todo, p)
	}
	slices.SortFunc(todo, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range todo {
		if err := h.AddrReplace(br, nlAddr(p)); err != nil {
			return fmt.Errorf("add gateway address %s: %w", p, err)
		}
	}
	return nil
}

// nlAddr converts p to a netlink address. IPv6 addresses skip duplicate
// address detection: until DAD finishes (a second or more) the address is
// tentative and cannot be used, which would make the first packets of a new
// container fail, and on a private bridge there is nobody to collide with.
func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func addrPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// Teardown removes n's rules and its bridge from the calling thread's network
// namespace. Veths still enslaved to the bridge are deleted with it (their
// container ends vanish too); the engine should Detach endpoints first, which
// also removes their port rules. When no network is left, warren's table is
// deleted. Missing pieces are not errors.
func Teardown(n *Network) error {
	if n.Bridge == "" && n.Name != "" {
		n.Bridge = BridgeName(n.Name)
	}
	if err := validIfName(n.Bridge); err != nil {
		return fmt.Errorf("network %s: bridge: %w", n.Name, err)
	}
	c, err := here()
	if err != nil {
		return err
	}
	defer c.close()

	if err := teardownRules(c.nft, n.Bridge); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}

	br, err := linkByName(c.nl, n.Bridge)
	if err != nil || br == nil {
		return err
	}
	if br.Type() != "bridge" {
		return fmt.Errorf("network %s: link %s is a %s, not a bridge: left alone: %w", n.Name, n.Bridge, br.Type(), errdefs.ErrInvalid)
	}
	links, err := linkList(c.nl)
	if err != nil {
		return fmt.Errorf("network %s: list links: %w", n.Name, err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == br.Attrs().Index && l.Type() == "veth" {
			if err := c.nl.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
				return fmt.Errorf("network %s: delete veth %s: %w", n.Name, l.Attrs().Name, err)
			}
		}
	}
	if err := c.nl.LinkDel(br); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("network %s: delete bridge %s: %w", n.Name, n.Bridge, err)
	}
	return nil
}

// teardownRules removes bridge's rules and set element in one transaction,
// or the whole table when nothing else of warren's is left in it.
func teardownRules(c *nftables.Conn, bridge string) error {
	nftMu.Lock()
	defer nftMu.Unlock()
	ok, err := tableExists(c)
	if err != nil || !ok {
		return err
	}
	mine, err := rulesWithComment(c, networkChains, netComment+bridge)
	if err != nil {
		return err
	}
	set := bridgesSet()
	elems, err := c.GetSetElements(set)
	if err != nil {
		return fmt.Errorf("nftables: list set %s: %w", setBridges, err)
	}
	others, inSet := 0, false
	for _, e := range elems {
		if string(e.Key) == string(ifnameBytes(bridge)) {
			inSet = true
		} else {
			others++
		}
	}
	left := others
	if left == 0 {
		// Rules of other networks or of endpoints keep the table alive
		// even if the set lost track of their bridges.
		for _, chs := range [][]*nftables.Chain{networkChains, endpointChains} {
			for _, ch := range chs {
				rules, err := c.GetRules(tbl, ch)
				if err != nil {
					return fmt.Errorf("nftables: list chain inet %s %s: %w", tableName, ch.Name, err)
				}
				for _, r := range rules {
					if cm := comment(r.UserData); cm != netComment+bridge {
						left++
					}
				}
			}
		}
	}
	if left == 0 {
		c.DelTable(tbl)
	} else {
		for _, r := range mine {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("nftables: %w", err)
			}
		}
		if inSet {
			if err := c.SetDeleteElements(set, []nftables.SetElement{{Key: ifnameBytes(bridge)}}); err != nil {
				return fmt.Errorf("nftables: remove %s from set %s: %w", bridge, setBridges, err)
			}
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: remove rules of bridge %s: %w", bridge, err)
	}
	return nil
}

// validIfName checks an interface name the way the kernel's dev_valid_name
// does, so the error names the field instead of surfacing as EINVAL.
func validIfName(name string) error {
	if name == "" || len(name) >= unix.IFNAMSIZ || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: want 1 to 15 bytes: %w", name, errdefs.ErrInvalid)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("interface name %q: must not contain '/', ':' or blanks: %w", name, errdefs.ErrInvalid)
		}
	}
	return nil
}
