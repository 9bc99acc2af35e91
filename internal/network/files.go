package network

import (
	"bufio"
	"bytes"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// HostsFile renders /etc/hosts for a container or pod: the localhost lines
// every resolver expects, then self's addresses, then each peer's, peers in
// name order and each name's addresses in address order (IPv4 first), so the
// same inputs always give the same bytes and the engine can skip a rewrite.
func HostsFile(self string, selfAddrs []netip.Addr, peers map[string][]netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::\tip6-localnet\n")
	b.WriteString("ff00::\tip6-mcastprefix\n")
	b.WriteString("ff02::1\tip6-allnodes\n")
	b.WriteString("ff02::2\tip6-allrouters\n")
	writeHost := func(name string, addrs []netip.Addr) {
		if name == "" || strings.ContainsAny(name, " \t\r\n#") {
			// A name with blanks would turn into several aliases, one
			// with '#' into a comment; neither is what the caller meant.
			return
		}
		as := slices.Clone(addrs)
		slices.SortFunc(as, func(x, y netip.Addr) int { return x.Compare(y) })
		as = slices.Compact(as)
		for _, a := range as {
			if !a.IsValid() {
				continue
			}
			b.WriteString(a.Unmap().String())
			b.WriteByte('\t')
			b.WriteString(name)
			b.WriteByte('\n')
		}
	}
	writeHost(self, selfAddrs)
	names := make([]string, 0, len(peers))
	for n := range peers {
		if n != self {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		writeHost(n, peers[n])
	}
	return b.Bytes()
}

// ResolvConf renders /etc/resolv.conf for a container from the host's. A
// loopback nameserver (systemd-resolved's 127.0.0.53, a local dnsmasq, ::1)
// means the host's own loopback, which is a different interface inside the
// container's network namespace, so those lines are dropped. If no nameserver
// is left, the given fallback nameservers are used. search, options and any
// other lines are kept as they are.
func ResolvConf(hostResolv []byte, nameservers []string) []byte {
	var out bytes.Buffer
	kept := 0
	sc := bufio.NewScanner(bytes.NewReader(hostResolv))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.Unmap().IsLoopback() {
				continue
			}
			kept++
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	if kept == 0 {
		for _, ns := range nameservers {
			if a, err := netip.ParseAddr(ns); err == nil && !a.Unmap().IsLoopback() {
				out.WriteString("nameserver " + a.String() + "\n")
			}
		}
	}
	return out.Bytes()
}
