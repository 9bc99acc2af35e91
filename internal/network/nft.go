package network

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// The ruleset warren owns. Everything lives in one inet table (kernel 5.2+
// does NAT in inet tables), so one rule covers IPv4 and IPv6 where the match
// is family-neutral and nothing warren does touches another table:
//
//	table inet warren {
//	  set bridges { type ifname }                # every warren bridge
//	  chain forward { filter hook forward priority filter
//	    ct state established,related accept
//	    ct status dnat accept                    # published ports, from anywhere
//	    jump isolation }
//	  chain isolation {                          # per network, comment "warren-net:<bridge>"
//	    iifname B oifname @bridges oifname != B drop
//	    [internal] iifname B oifname != B drop; oifname B iifname != B drop }
//	  chain prerouting-raw { filter hook prerouting priority raw
//	    iifname @bridges ip daddr 127.0.0.0/8 drop }   # CVE-2020-8558
//	  chain prerouting { nat hook prerouting priority dstnat
//	    fib daddr type local jump ports }
//	  chain output { nat hook output priority dstnat
//	    ip6 daddr ::1 return                     # IPv6 cannot NAT from loopback
//	    fib daddr type local jump ports }
//	  chain ports {                              # per endpoint, comment "warren-ep:<id>"
//	    [ip daddr H] tcp dport P dnat ip to A:C }
//	  chain postrouting { nat hook postrouting priority srcnat
//	    oifname @bridges ip saddr 127.0.0.0/8 masquerade
//	    jump masquerade }
//	  chain masquerade {                         # per network, comment "warren-net:<bridge>"
//	    [not internal] ip saddr S oifname != B masquerade
//	    oifname B ct status dnat ip saddr S masquerade }   # hairpin
//	}
//
// Base chains hold only the fixed rules above and are rewritten whole by every
// Setup; per-network and per-endpoint rules live in regular chains and are
// found by their comment, which `nft list ruleset` shows.
const (
	tableName   = "warren"
	netComment  = "warren-net:"
	epComment   = "warren-ep:"
	setBridges  = "bridges"
	maxIDLength = 100 // nft prints comments up to 128 bytes
)

var (
	tbl = &nftables.Table{Name: tableName, Family: nftables.TableFamilyINet}

	policyAccept = nftables.ChainPolicyAccept

	chForward   = &nftables.Chain{Table: tbl, Name: "forward", Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policyAccept}
	chIsolation = &nftables.Chain{Table: tbl, Name: "isolation"}
	chRaw       = &nftables.Chain{Table: tbl, Name: "prerouting-raw", Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw, Policy: &policyAccept}
	chPre       = &nftables.Chain{Table: tbl, Name: "prerouting", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest}
	chOut       = &nftables.Chain{Table: tbl, Name: "output", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest}
	chPorts     = &nftables.Chain{Table: tbl, Name: "ports"}
	chPost      = &nftables.Chain{Table: tbl, Name: "postrouting", Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource}
	chMasq      = &nftables.Chain{Table: tbl, Name: "masquerade"}

	baseChains    = []*nftables.Chain{chForward, chRaw, chPre, chOut, chPost}
	regularChains = []*nftables.Chain{chIsolation, chPorts, chMasq}
	// The chains that hold per-network and per-endpoint rules. Detach only
	// looks at endpointChains, so a new kind of endpoint rule must go there.
	networkChains  = []*nftables.Chain{chIsolation, chMasq}
	endpointChains = []*nftables.Chain{chPorts}
)

// nftMu serialises warren's read-modify-write cycles on its table (list the
// rules with a comment, then delete them by handle) within this process. The
// kernel makes each batch atomic, but not the listing that precedes it.
var nftMu sync.Mutex

func bridgesSet() *nftables.Set {
	// Host byte order is what nft records for ifname sets; without it in
	// the set's user data `nft list` prints every element as "".
	return &nftables.Set{Table: tbl, Name: setBridges, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
}

// tableExists reports whether warren's table is present, telling "not there"
// (ENOENT) apart from a failure to ask.
func tableExists(c *nftables.Conn) (bool, error) {
	_, err := c.ListTableOfFamily(tableName, nftables.TableFamilyINet)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("nftables: look up table inet %s: %w", tableName, err)
}

// rulesWithComment returns the rules of the chains whose comment equals want.
func rulesWithComment(c *nftables.Conn, chains []*nftables.Chain, want string) ([]*nftables.Rule, error) {
	var out []*nftables.Rule
	for _, ch := range chains {
		rules, err := c.GetRules(tbl, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: list chain inet %s %s: %w", tableName, ch.Name, err)
		}
		for _, r := range rules {
			if comment(r.UserData) == want {
				r.Table, r.Chain = tbl, ch
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// comment extracts the nft comment from rule user data. It parses the TLVs
// itself because userdata.Get indexes before checking lengths and a rule
// added by hand with odd user data must not panic the engine.
func comment(ud []byte) string {
	for len(ud) >= 2 {
		typ, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return ""
		}
		if userdata.Type(typ) == userdata.TypeComment {
			return strings.TrimSuffix(string(ud[2:2+n]), "\x00")
		}
		ud = ud[2+n:]
	}
	return ""
}

func withComment(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

// EndpointRules returns, for every endpoint that has rules in warren's table
// of the calling thread's network namespace, how many it has. Tests use it to
// check Detach; the engine's recovery sweep uses it to find rules of
// endpoints it no longer knows and Detach them.
func EndpointRules() (map[string]int, error) {
	ns, err := here()
	if err != nil {
		return nil, err
	}
	defer ns.close()
	out := map[string]int{}
	ok, err := tableExists(ns.nft)
	if err != nil || !ok {
		return out, err
	}
	chains, err := ns.nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != tableName {
			continue
		}
		rules, err := ns.nft.GetRules(tbl, ch)
		if err != nil {
			return nil, fmt.Errorf("nftables: list chain inet %s %s: %w", tableName, ch.Name, err)
		}
		for _, r := range rules {
			if id, ok := strings.CutPrefix(comment(r.UserData), epComment); ok {
				out[id]++
			}
		}
	}
	return out, nil
}

// addSkeleton queues the table, the set and the chains (all idempotent adds)
// and rewrites the base chains' fixed rules. Flushing and refilling a base
// chain inside the same batch is atomic: no packet sees it empty.
func addSkeleton(c *nftables.Conn) (*nftables.Set, error) {
	c.AddTable(tbl)
	set := bridgesSet()
	if err := c.AddSet(set, nil); err != nil {
		return nil, fmt.Errorf("nftables: add set %s: %w", setBridges, err)
	}
	for _, ch := range regularChains {
		c.AddChain(ch)
	}
	for _, ch := range baseChains {
		c.AddChain(ch)
		c.FlushChain(ch)
	}
	add := func(ch *nftables.Chain, e ...[]expr.Any) {
		c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: cat(e...)})
	}
	add(chForward, ctStateIn(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), verdict(expr.VerdictAccept))
	add(chForward, ctStatusDNAT(), verdict(expr.VerdictAccept))
	add(chForward, jump(chIsolation))
	// route_localnet is on for warren bridges (so 127.0.0.1:port can be
	// DNATed to a container); without this drop a neighbour on the bridge
	// could then reach the host's loopback-only services (CVE-2020-8558).
	add(chRaw, ifnameIn(expr.MetaKeyIIFNAME, set), family(true), addrMatch(false, netip.MustParsePrefix("127.0.0.0/8")), verdict(expr.VerdictDrop))
	add(chPre, fibDaddrLocal(), jump(chPorts))
	// There is no route_localnet for IPv6: a packet from ::1 cannot leave lo,
	// so DNAT of [::1]:port would only turn "connection refused" into EINVAL.
	add(chOut, family(false), addrMatch(false, netip.MustParsePrefix("::1/128")), verdict(expr.VerdictReturn))
	add(chOut, fibDaddrLocal(), jump(chPorts))
	add(chPost, ifnameIn(expr.MetaKeyOIFNAME, set), family(true), addrMatch(true, netip.MustParsePrefix("127.0.0.0/8")), masq())
	add(chPost, jump(chMasq))
	return set, nil
}

// networkRules are the rules Setup installs for n.
func networkRules(n *Network, set *nftables.Set) []*nftables.Rule {
	br := n.Bridge
	var rs []*nftables.Rule
	add := func(ch *nftables.Chain, e ...[]expr.Any) {
		rs = append(rs, &nftables.Rule{Table: tbl, Chain: ch, Exprs: cat(e...), UserData: withComment(netComment + br)})
	}
	add(chIsolation, ifname(expr.MetaKeyIIFNAME, br, expr.CmpOpEq), ifnameIn(expr.MetaKeyOIFNAME, set), ifname(expr.MetaKeyOIFNAME, br, expr.CmpOpNeq), verdict(expr.VerdictDrop))
	if n.Internal {
		add(chIsolation, ifname(expr.MetaKeyIIFNAME, br, expr.CmpOpEq), ifname(expr.MetaKeyOIFNAME, br, expr.CmpOpNeq), verdict(expr.VerdictDrop))
		add(chIsolation, ifname(expr.MetaKeyOIFNAME, br, expr.CmpOpEq), ifname(expr.MetaKeyIIFNAME, br, expr.CmpOpNeq), verdict(expr.VerdictDrop))
	}
	for _, s := range []netip.Prefix{n.Subnet4, n.Subnet6} {
		if !s.IsValid() {
			continue
		}
		v4 := s.Addr().Is4()
		if !n.Internal {
			add(chMasq, family(v4), addrMatch(true, s), ifname(expr.MetaKeyOIFNAME, br, expr.CmpOpNeq), masq())
		}
		// Hairpin: a container reaching a published port of its own bridge
		// is DNATed back onto the bridge; without the masquerade the target
		// would answer it directly over L2 from an address it never dialled.
		add(chMasq, ifname(expr.MetaKeyOIFNAME, br, expr.CmpOpEq), ctStatusDNAT(), family(v4), addrMatch(true, s), masq())
	}
	return rs
}

// endpointRules are the DNAT rules for e's published ports, one per port and
// family (both families when HostIP is unset and e has both addresses).
func endpointRules(e *Endpoint) []*nftables.Rule {
	var rs []*nftables.Rule
	for _, p := range e.Ports {
		for _, to := range []netip.Addr{e.Addr4, e.Addr6} {
			if !to.IsValid() {
				continue
			}
			v4 := to.Is4()
			host := p.HostIP.Unmap()
			if host.IsValid() && host.Is4() != v4 {
				continue
			}
			var e0 [][]expr.Any
			e0 = append(e0, family(v4))
			if host.IsValid() {
				e0 = append(e0, addrMatch(false, netip.PrefixFrom(host, host.BitLen())))
			}
			e0 = append(e0, l4Dport(p.Proto, p.HostPort), dnat(to, p.ContainerPort))
			rs = append(rs, &nftables.Rule{Table: tbl, Chain: chPorts, Exprs: cat(e0...), UserData: withComment(epComment + e.ID)})
		}
	}
	return rs
}

// --- expression builders; register 1 holds the value under test, register 2
// the port for DNAT. ---

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func verdict(k expr.VerdictKind) []expr.Any { return []expr.Any{&expr.Verdict{Kind: k}} }

func jump(ch *nftables.Chain) []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: ch.Name}}
}

func masq() []expr.Any { return []expr.Any{&expr.Masq{}} }

// ifnameBytes pads name to IFNAMSIZ: an exact match, where nft would treat a
// shorter comparison as a "name*" prefix match.
func ifnameBytes(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func ifname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: ifnameBytes(name)},
	}
}

func ifnameIn(key expr.MetaKey, set *nftables.Set) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
	}
}

// family restricts a rule to IPv4 or IPv6; in an inet table a payload match
// on the IP header is only meaningful after it.
func family(v4 bool) []expr.Any {
	p := byte(unix.NFPROTO_IPV6)
	if v4 {
		p = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// addrMatch matches the source (src) or destination address against p.
func addrMatch(src bool, p netip.Prefix) []expr.Any {
	a := p.Masked().Addr()
	var off, n uint32
	switch {
	case a.Is4() && src:
		off, n = 12, 4
	case a.Is4():
		off, n = 16, 4
	case src:
		off, n = 8, 16
	default:
		off, n = 24, 16
	}
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if p.Bits() < int(n*8) {
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return append(out, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a.AsSlice()})
}

func ctStateIn(bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

func ctStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func l4Dport(proto string, port uint16) []expr.Any {
	p := byte(unix.IPPROTO_TCP)
	if proto == "udp" {
		p = unix.IPPROTO_UDP
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

func dnat(to netip.Addr, port uint16) []expr.Any {
	fam := uint32(unix.NFPROTO_IPV6)
	if to.Is4() {
		fam = unix.NFPROTO_IPV4
	}
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: to.AsSlice()},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}
