package network

import (
	"net/netip"
	"testing"
)

func TestHostsFile(t *testing.T) {
	a := netip.MustParseAddr
	got := string(HostsFile("web",
		[]netip.Addr{a("fd00::2"), a("10.88.0.2")},
		map[string][]netip.Addr{
			"db":    {a("10.88.0.3")},
			"cache": {a("fd00::4"), a("10.88.0.4"), a("10.88.0.4")},
			"web":   {a("10.88.0.99")}, // self is not repeated as a peer
			"bad x": {a("10.88.0.5")},  // would become two names: dropped
		}))
	want := "127.0.0.1\tlocalhost\n" +
		"::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::\tip6-localnet\n" +
		"ff00::\tip6-mcastprefix\n" +
		"ff02::1\tip6-allnodes\n" +
		"ff02::2\tip6-allrouters\n" +
		"10.88.0.2\tweb\n" +
		"fd00::2\tweb\n" +
		"10.88.0.4\tcache\n" +
		"fd00::4\tcache\n" +
		"10.88.0.3\tdb\n"
	if got != want {
		t.Errorf("HostsFile =\n%s\nwant\n%s", got, want)
	}
	// Deterministic: map order must not leak into the output.
	for i := 0; i < 20; i++ {
		again := string(HostsFile("web", []netip.Addr{a("10.88.0.2"), a("fd00::2")}, map[string][]netip.Addr{
			"db": {a("10.88.0.3")}, "cache": {a("10.88.0.4"), a("fd00::4")}, "web": nil, "bad x": nil,
		}))
		if again != want {
			t.Fatalf("HostsFile not deterministic:\n%s", again)
		}
	}
	if got := string(HostsFile("solo", nil, nil)); got != want[:len("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")] {
		t.Errorf("HostsFile without addresses =\n%s", got)
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name     string
		host     string
		fallback []string
		want     string
	}{
		{
			name:     "systemd-resolved stub falls back",
			host:     "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.com\n",
			fallback: []string{"8.8.8.8", "2001:4860:4860::8888"},
			want:     "# generated\noptions edns0 trust-ad\nsearch example.com\nnameserver 8.8.8.8\nnameserver 2001:4860:4860::8888\n",
		},
		{
			name:     "real nameservers kept, loopback ones dropped",
			host:     "nameserver 192.0.2.53\nnameserver ::1\nnameserver 127.0.0.1\nnameserver 2001:db8::53\nsearch corp\n",
			fallback: []string{"8.8.8.8"},
			want:     "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch corp\n",
		},
		{
			name:     "empty host file",
			host:     "",
			fallback: []string{"1.1.1.1"},
			want:     "nameserver 1.1.1.1\n",
		},
		{
			name:     "no fallback given",
			host:     "nameserver 127.0.0.53\n",
			fallback: nil,
			want:     "",
		},
		{
			name:     "loopback and garbage fallbacks ignored",
			host:     "nameserver ::ffff:127.0.0.1\n",
			fallback: []string{"127.0.0.1", "nonsense", "9.9.9.9"},
			want:     "nameserver 9.9.9.9\n",
		},
		{
			name:     "no trailing newline",
			host:     "search x\nnameserver 10.0.0.53",
			fallback: []string{"8.8.8.8"},
			want:     "search x\nnameserver 10.0.0.53\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(ResolvConf([]byte(tc.host), tc.fallback)); got != tc.want {
				t.Errorf("ResolvConf =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	for _, s := range []string{"", "a", "a-very-long-network-name-that-goes-on"} {
		if b := BridgeName(s); len(b) != 15 || b[:4] != "wrn-" {
			t.Errorf("BridgeName(%q) = %q", s, b)
		}
		if v := VethName(s); len(v) != 15 || v[:4] != "wrv-" {
			t.Errorf("VethName(%q) = %q", s, v)
		}
	}
	if VethName("a") != VethName("a") || VethName("a") == VethName("b") {
		t.Error("VethName is not a deterministic function of the id")
	}
	if m := EndpointMAC("x", netip.MustParseAddr("10.88.0.2")).String(); m != "02:42:0a:58:00:02" {
		t.Errorf("EndpointMAC from 10.88.0.2 = %s", m)
	}
	if m := EndpointMAC("x", netip.Addr{}); m[0] != 0x02 || m[1] != 0x43 {
		t.Errorf("EndpointMAC without IPv4 = %s", m)
	}
	for _, bad := range []string{"", "has space", `q"uote`, "ctl\n", string(make([]byte, 101))} {
		if err := validID(bad); err == nil {
			t.Errorf("validID(%q) = nil", bad)
		}
	}
	for _, bad := range []string{"", "sixteen-bytes-xx", "a/b", "a:b", ".", "a b"} {
		if err := validIfName(bad); err == nil {
			t.Errorf("validIfName(%q) = nil", bad)
		}
	}
}

func TestComment(t *testing.T) {
	ud := withComment(epComment + "abc")
	if got := comment(ud); got != epComment+"abc" {
		t.Errorf("comment round trip = %q", got)
	}
	// Truncated or foreign user data must not panic.
	for _, ud := range [][]byte{nil, {0}, {0, 10, 'a'}, {5, 1, 'x', 0, 2, 'h', 0}} {
		_ = comment(ud)
	}
	if got := comment([]byte{5, 1, 'x', 0, 2, 'h', 0}); got != "h" {
		t.Errorf("comment after another TLV = %q", got)
	}
}
