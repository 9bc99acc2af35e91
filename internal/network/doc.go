// Package network is warren's bridge networking: IPAM (pure, in ipam.go),
// Linux bridges and veth pairs over rtnetlink (vishvananda/netlink), and
// nftables rules over nfnetlink (google/nftables). Nothing on the hot path
// runs ip or nft.
//
// # Which network namespace
//
// Setup, Teardown, Attach, Detach and EndpointRules act in the network
// namespace of the calling OS thread (Attach also acts in the endpoint's
// namespace, named by path). In production that is the engine's own namespace,
// the host's, as with docker, and callers need do nothing. To act in another
// namespace (tests, or an engine kept off the host network) call them from
// inside InNetns, or from a goroutine that holds runtime.LockOSThread and has
// setns'd its thread; each function locks the thread for its own duration
// but cannot undo a migration that happened before it was entered. Every
// function is safe for concurrent use; rule edits are serialised within the
// process.
//
// NewNetns/DeleteNetns pin namespaces under a directory (DefaultNetnsDir for
// `ip netns` to see them) and never move the calling thread.
//
// # What it changes in that namespace
//
//   - links it owns: bridges (named by Network.Bridge, BridgeName derives
//     "wrn-…") and host-side veths ("wrv-…", VethName); their addresses, and
//     per bridge net.ipv4.conf.<bridge>.route_localnet=1 and
//     net.ipv6.conf.<bridge>.disable_ipv6=0;
//   - net.ipv4.ip_forward=1 and net.ipv6.conf.all.forwarding=1 (per namespace
//     knobs; turned on by Setup, never turned off). Note that IPv6
//     forwarding makes the kernel ignore router advertisements on interfaces
//     with accept_ra=1, as it does under docker: a host that configures its
//     uplink by SLAAC needs accept_ra=2 there;
//   - nftables table "inet warren", and nothing else: see nft.go for its
//     layout. Per-network rules carry the comment "warren-net:<bridge>",
//     per-endpoint rules "warren-ep:<id>", both visible in `nft list ruleset`.
//
// Host-side veths are put in bridge hairpin mode: with br_netfilter active
// (bridge-nf-call-iptables=1, the kernel default wherever it is built in) a
// container that dials its own published port is DNATed in the bridge and
// must be sent back out of the port it came in by.
//
// # Known limits
//
//   - Published ports on the IPv6 loopback ([::1]:port) do not work: Linux
//     has no route_localnet for IPv6. 127.0.0.1:port does.
//   - warren's forward chain accepts, but another table's forward chain with
//     policy drop (firewalld, docker's iptables FORWARD DROP) still drops
//     container traffic; such hosts need an accept rule of their own.
//   - Two endpoints publishing the same host port are not detected here; the
//     first rule in the chain wins. The engine must refuse the second.
//   - Detach costs ~20 ms, nearly all of it the kernel unregistering the
//     veth pair (RCU grace periods under RTNL; `ip link del` costs the same).
package network
