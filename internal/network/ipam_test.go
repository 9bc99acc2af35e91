package network

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/warren-runtime/warren/internal/errdefs"
)

func TestAllocate(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	leases := func(kv ...string) []Lease {
		var ls []Lease
		for i := 0; i < len(kv); i += 2 {
			ls = append(ls, Lease{Addr: a(kv[i]), Owner: kv[i+1]})
		}
		return ls
	}
	tests := []struct {
		name    string
		subnet  string
		gw      string
		leases  []Lease
		owner   string
		want    string
		wantErr error
	}{
		{"first after gateway", "10.0.0.0/24", "10.0.0.1", nil, "c1", "10.0.0.2", nil},
		{"no gateway: first host", "10.0.0.0/24", "", nil, "c1", "10.0.0.1", nil},
		{"gateway elsewhere in subnet", "10.0.0.0/24", "10.0.0.254", nil, "c1", "10.0.0.1", nil},
		{"skips gateway in the middle", "10.0.0.0/24", "10.0.0.3", leases("10.0.0.1", "a", "10.0.0.2", "b"), "c", "10.0.0.4", nil},
		{"lowest free fills a hole", "10.0.0.0/24", "10.0.0.1", leases("10.0.0.2", "a", "10.0.0.4", "b"), "c", "10.0.0.3", nil},
		{"same owner gets its lease", "10.0.0.0/24", "10.0.0.1", leases("10.0.0.2", "a", "10.0.0.7", "c"), "c", "10.0.0.7", nil},
		{"owner's lease in another subnet is ignored", "10.0.0.0/24", "10.0.0.1", leases("10.9.0.5", "c"), "c", "10.0.0.2", nil},
		{"leases of other subnets do not block", "10.0.0.0/24", "10.0.0.1", leases("10.0.1.2", "a", "fd00::2", "b"), "c", "10.0.0.2", nil},
		{"mapped lease counts as IPv4", "10.0.0.0/24", "10.0.0.1", leases("::ffff:10.0.0.2", "a"), "c", "10.0.0.3", nil},
		{"/30 has one host", "10.0.0.0/30", "10.0.0.1", nil, "c1", "10.0.0.2", nil},
		{"/30 exhausted: broadcast never handed out", "10.0.0.0/30", "10.0.0.1", leases("10.0.0.2", "a"), "b", "", ErrExhausted},
		{"/29 last host before broadcast", "10.0.0.0/29", "10.0.0.1", leases("10.0.0.2", "a", "10.0.0.3", "b", "10.0.0.4", "c", "10.0.0.5", "d"), "e", "10.0.0.6", nil},
		{"/29 exhausted", "10.0.0.0/29", "10.0.0.1", leases("10.0.0.2", "a", "10.0.0.3", "b", "10.0.0.4", "c", "10.0.0.5", "d", "10.0.0.6", "e"), "f", "", ErrExhausted},
		{"exhausted but owner already has one", "10.0.0.0/30", "10.0.0.1", leases("10.0.0.2", "a"), "a", "10.0.0.2", nil},
		{"v6 /120 first", "fd00:1::/120", "fd00:1::1", nil, "c", "fd00:1::2", nil},
		{"v6 /120 after leases", "fd00:1::/120", "fd00:1::1", leases("fd00:1::2", "a", "fd00:1::3", "b"), "c", "fd00:1::4", nil},
		{"v6 /120 last address is usable (no broadcast)", "fd00:1::/120", "fd00:1::1", v6Full("fd00:1::", 2, 254), "z", "fd00:1::ff", nil},
		{"v6 /126 two hosts", "fd00:1::/126", "fd00:1::1", leases("fd00:1::2", "a"), "b", "fd00:1::3", nil},
		{"v6 /126 exhausted", "fd00:1::/126", "fd00:1::1", leases("fd00:1::2", "a", "fd00:1::3", "b"), "c", "", ErrExhausted},
		{"v6 /64 fast", "fd00:1::/64", "fd00:1::1", nil, "c", "fd00:1::2", nil},
		{"invalid: unmasked", "10.0.0.1/24", "10.0.0.1", nil, "c", "", errdefs.ErrInvalid},
		{"invalid: /31", "10.0.0.0/31", "", nil, "c", "", errdefs.ErrInvalid},
		{"invalid: gateway outside", "10.0.0.0/24", "10.0.1.1", nil, "c", "", errdefs.ErrInvalid},
		{"invalid: empty owner", "10.0.0.0/24", "10.0.0.1", nil, "", "", errdefs.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var gw netip.Addr
			if tc.gw != "" {
				gw = a(tc.gw)
			}
			got, err := Allocate(p(tc.subnet), gw, tc.leases, tc.owner)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Allocate = %v, %v; want error %v", got, err, tc.wantErr)
				}
				if tc.wantErr == ErrExhausted && !errdefs.IsState(err) {
					t.Errorf("exhaustion error %v is not errdefs.ErrState", err)
				}
				return
			}
			if err != nil || got != a(tc.want) {
				t.Fatalf("Allocate = %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

// v6Full leases prefix+first .. prefix+last (hex host part) to distinct owners.
func v6Full(prefix string, first, last int) []Lease {
	base := netip.MustParseAddr(prefix)
	for i := 0; i < first; i++ {
		base = base.Next()
	}
	var ls []Lease
	for i := first; i <= last; i++ {
		ls = append(ls, Lease{Addr: base, Owner: "o" + base.String()})
		base = base.Next()
	}
	return ls
}

// TestAllocateSequence fills a /28 one owner at a time: every address is
// handed out once, in order, and the 14th request fails.
func TestAllocateSequence(t *testing.T) {
	s := netip.MustParsePrefix("192.168.5.0/28")
	gw := DefaultGateway(s)
	var leases []Lease
	seen := map[netip.Addr]bool{gw: true}
	for i := 0; i < 13; i++ {
		owner := string(rune('a' + i))
		addr, err := Allocate(s, gw, leases, owner)
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if seen[addr] || addr == s.Addr() || addr == netip.MustParseAddr("192.168.5.15") {
			t.Fatalf("allocation %d: %s reused or reserved", i, addr)
		}
		seen[addr] = true
		leases = append(leases, Lease{Addr: addr, Owner: owner})
		if again, _ := Allocate(s, gw, leases, owner); again != addr {
			t.Fatalf("owner %s asked again and got %s, want %s", owner, again, addr)
		}
	}
	if _, err := Allocate(s, gw, leases, "late"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("14th allocation: %v, want ErrExhausted", err)
	}
}

func TestDefaultGateway(t *testing.T) {
	for in, want := range map[string]string{
		"10.88.0.0/16":  "10.88.0.1",
		"10.88.0.0/30":  "10.88.0.1",
		"10.88.0.77/24": "10.88.0.1", // host bits ignored
		"fd00:1::/64":   "fd00:1::1",
	} {
		if got := DefaultGateway(netip.MustParsePrefix(in)); got != netip.MustParseAddr(want) {
			t.Errorf("DefaultGateway(%s) = %s, want %s", in, got, want)
		}
	}
	if got := DefaultGateway(netip.Prefix{}); got.IsValid() {
		t.Errorf("DefaultGateway(zero) = %s, want zero", got)
	}
}

func TestValidateSubnet(t *testing.T) {
	ok := []string{"10.88.0.0/16", "172.17.0.0/16", "192.168.1.0/24", "10.0.0.0/30", "100.64.0.0/10", "fd00::/64", "fd00:1::/126", "2001:db8::/48"}
	bad := []string{
		"10.0.0.1/24",    // host bits
		"10.0.0.0/31",    // too small
		"10.0.0.0/32",    // too small
		"fd00::/127",     // too small
		"127.0.0.0/8",    // loopback
		"127.1.0.0/16",   // inside loopback
		"0.0.0.0/0",      // everything
		"0.0.0.0/8",      // "this network"
		"169.254.0.0/16", // link-local
		"224.0.0.0/24",   // multicast
		"240.0.0.0/4",    // reserved, broadcast
		"::/0",           // everything
		"::1/128",        // loopback, and too small
		"fe80::/64",      // link-local
		"ff02::/16",      // multicast
		"::ffff:0:0/104", // v4-mapped
		"::ffff:10.0.0.0/120",
	}
	for _, s := range ok {
		if err := ValidateSubnet(netip.MustParsePrefix(s)); err != nil {
			t.Errorf("ValidateSubnet(%s) = %v, want ok", s, err)
		}
	}
	for _, s := range bad {
		err := ValidateSubnet(netip.MustParsePrefix(s))
		if !errdefs.IsInvalid(err) {
			t.Errorf("ValidateSubnet(%s) = %v, want ErrInvalid", s, err)
		}
	}
	if err := ValidateSubnet(netip.Prefix{}); !errdefs.IsInvalid(err) {
		t.Errorf("ValidateSubnet(zero) = %v, want ErrInvalid", err)
	}
}

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"10.0.0.0/24", "10.0.0.0/24", true},
		{"10.0.0.0/16", "10.0.5.0/24", true},
		{"10.0.5.0/24", "10.0.0.0/16", true},
		{"10.0.0.0/24", "10.0.1.0/24", false},
		{"10.0.0.0/23", "10.0.1.0/24", true},
		{"10.0.0.7/24", "10.0.0.200/25", true}, // host bits ignored
		{"10.0.0.0/25", "10.0.0.128/25", false},
		{"fd00::/64", "fd00::/48", true},
		{"fd00:0:0:1::/64", "fd00::/64", false},
		{"10.0.0.0/8", "fd00::/8", false}, // families never overlap
	}
	for _, tc := range tests {
		if got := Overlaps(netip.MustParsePrefix(tc.a), netip.MustParsePrefix(tc.b)); got != tc.want {
			t.Errorf("Overlaps(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if Overlaps(netip.Prefix{}, netip.MustParsePrefix("10.0.0.0/8")) {
		t.Error("Overlaps(zero, 10/8) = true")
	}
}
