package network

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/warren-runtime/warren/internal/errdefs"
)

// ErrExhausted is returned (wrapped, together with errdefs.ErrState) when a
// subnet has no free address left. errdefs has no "exhausted" class; ErrState
// is the closest one (the request is fine, the pool's current state refuses
// it), so the API maps it to 409 while callers can still test for ErrExhausted.
var ErrExhausted = errors.New("address pool exhausted")

// Lease is one address handed out from a subnet. The engine persists leases in
// its store; this package only computes with them.
type Lease struct {
	Addr  netip.Addr
	Owner string
}

// Allocate returns the lowest free address of subnet for owner. It skips the
// network address (for IPv6 the subnet-router anycast address, RFC 4291
// 2.6.1), the gateway and, for IPv4, the broadcast address. leases are the
// current leases (of any subnet: those outside subnet are ignored); an owner
// that already holds a lease in subnet gets that lease back, so a retried
// create does not leak addresses.
func Allocate(subnet netip.Prefix, gateway netip.Addr, leases []Lease, owner string) (netip.Addr, error) {
	if err := ValidateSubnet(subnet); err != nil {
		return netip.Addr{}, err
	}
	if owner == "" {
		return netip.Addr{}, fmt.Errorf("allocate an address in %s: empty owner: %w", subnet, errdefs.ErrInvalid)
	}
	gateway = gateway.Unmap()
	if gateway.IsValid() && !subnet.Contains(gateway) {
		return netip.Addr{}, fmt.Errorf("gateway %s is outside subnet %s: %w", gateway, subnet, errdefs.ErrInvalid)
	}
	used := make(map[netip.Addr]bool, len(leases))
	for _, l := range leases {
		a := l.Addr.Unmap()
		if !subnet.Contains(a) {
			continue
		}
		if l.Owner == owner {
			return a, nil
		}
		used[a] = true
	}
	network := subnet.Addr()
	var broadcast netip.Addr
	if network.Is4() {
		broadcast = lastAddr(subnet)
	}
	// The loop visits at most len(used)+3 addresses before it finds a free
	// one, so even a /64 costs no more than the leases it holds.
	for a := network.Next(); a.IsValid() && subnet.Contains(a); a = a.Next() {
		if a == gateway || a == broadcast || used[a] {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("subnet %s has no free address for %s (release one or use a larger subnet): %w: %w",
		subnet, owner, ErrExhausted, errdefs.ErrState)
}

// DefaultGateway returns the first host address of subnet, the convention for
// a bridge's own address. It returns the zero Addr for an invalid prefix.
func DefaultGateway(subnet netip.Prefix) netip.Addr {
	if !subnet.IsValid() {
		return netip.Addr{}
	}
	a := subnet.Masked().Addr().Next()
	if !subnet.Contains(a) {
		return netip.Addr{}
	}
	return a
}

// Ranges a container subnet must not touch: packets to or from them are
// martians, loopback-only or not unicast, so a bridge on them cannot work
// (RFC 6890 special-purpose registries).
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"), // includes 255.255.255.255
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::ffff:0:0/96"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// ValidateSubnet checks that s can be a bridge network's subnet: masked (no
// host bits, so two spellings cannot name one network), room for a gateway and
// at least one container (IPv4 at most /30, IPv6 at most /126), and clear of
// loopback, link-local, multicast and the other special ranges.
func ValidateSubnet(s netip.Prefix) error {
	if !s.IsValid() {
		return fmt.Errorf("subnet %s: not a valid prefix: %w", s, errdefs.ErrInvalid)
	}
	if s.Addr().Zone() != "" {
		return fmt.Errorf("subnet %s: must not carry an IPv6 zone: %w", s, errdefs.ErrInvalid)
	}
	if s.Addr().Is4In6() {
		return fmt.Errorf("subnet %s: IPv4-mapped IPv6: write it as an IPv4 prefix: %w", s, errdefs.ErrInvalid)
	}
	if m := s.Masked(); m != s {
		return fmt.Errorf("subnet %s has host bits set: use %s: %w", s, m, errdefs.ErrInvalid)
	}
	if s.Addr().Is4() && s.Bits() > 30 {
		return fmt.Errorf("subnet %s is too small: an IPv4 subnet needs at least a /30: %w", s, errdefs.ErrInvalid)
	}
	if s.Addr().Is6() && s.Bits() > 126 {
		return fmt.Errorf("subnet %s is too small: an IPv6 subnet needs at least a /126: %w", s, errdefs.ErrInvalid)
	}
	for _, r := range reserved {
		if s.Overlaps(r) {
			return fmt.Errorf("subnet %s overlaps the reserved range %s: %w", s, r, errdefs.ErrInvalid)
		}
	}
	return nil
}

// Overlaps reports whether a and b share an address. Prefixes of different
// families never overlap; host bits are ignored.
func Overlaps(a, b netip.Prefix) bool {
	if !a.IsValid() || !b.IsValid() {
		return false
	}
	return a.Masked().Overlaps(b.Masked())
}

// lastAddr returns the highest address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
