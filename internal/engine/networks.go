package engine

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/warren-runtime/warren/api"
	"github.com/warren-runtime/warren/internal/errdefs"
	"github.com/warren-runtime/warren/internal/network"
	"github.com/warren-runtime/warren/internal/store"
)

// The default network: podman's subnet, and a ULA /64 for IPv6.
const (
	DefaultNetwork = "warren"
	defaultSubnet4 = "10.88.0.0/16"
	defaultSubnet6 = "fd77:6172:7265::/64"
	netnsPrefix    = "warren-"
	resolvConfPath = "/etc/resolv.conf"
	fallbackDNS    = "8.8.8.8"
	hostsFile      = "hosts"
	resolvConfFile = "resolv.conf"
)

func toNetwork(n *store.NetworkRecord) *network.Network {
	out := &network.Network{Name: n.Name, Bridge: n.Bridge, Internal: n.Internal}
	out.Subnet4, _ = netip.ParsePrefix(n.Subnet)
	out.Gateway4, _ = netip.ParseAddr(n.Gateway)
	out.Subnet6, _ = netip.ParsePrefix(n.Subnet6)
	out.Gateway6, _ = netip.ParseAddr(n.Gateway6)
	return out
}

// CreateNetwork makes a bridge network: its record, then its bridge and
// rules (so a crash in between leaves a record recovery sets up).
func (e *Engine) CreateNetwork(cfg api.NetworkConfig) (*api.Network, error) {
	if !validName.MatchString(cfg.Name) || cfg.Name == "none" || cfg.Name == "host" || cfg.Name == "bridge" {
		return nil, fmt.Errorf("network name %q: use letters, digits, '_', '.', '-' (not none, host or bridge): %w", cfg.Name, errdefs.ErrInvalid)
	}
	if cfg.Subnet == "" && cfg.Subnet6 == "" {
		return nil, fmt.Errorf("network %s: give a subnet (--subnet), an IPv6 one (--subnet6) or both: %w", cfg.Name, errdefs.ErrInvalid)
	}
	n := &store.NetworkRecord{Network: api.Network{Name: cfg.Name, Internal: cfg.Internal, Created: time.Now().UTC(), Bridge: network.BridgeName(cfg.Name)}}
	others, err := e.db.Networks()
	if err != nil {
		return nil, err
	}
	for _, fam := range []struct {
		subnet, gateway string
		six             bool
		dst, dstGw      *string
	}{{cfg.Subnet, cfg.Gateway, false, &n.Subnet, &n.Gateway}, {cfg.Subnet6, cfg.Gateway6, true, &n.Subnet6, &n.Gateway6}} {
		if fam.subnet == "" {
			if fam.gateway != "" {
				return nil, fmt.Errorf("network %s: a gateway without its subnet: %w", cfg.Name, errdefs.ErrInvalid)
			}
			continue
		}
		p, err := netip.ParsePrefix(fam.subnet)
		if err != nil || p.Addr().Is6() != fam.six {
			want := "IPv4"
			if fam.six {
				want = "IPv6"
			}
			return nil, fmt.Errorf("network %s: subnet %q is not an %s CIDR: %w", cfg.Name, fam.subnet, want, errdefs.ErrInvalid)
		}
		if err := network.ValidateSubnet(p); err != nil {
			return nil, fmt.Errorf("network %s: %w", cfg.Name, err)
		}
		for _, o := range others {
			for _, os := range []string{o.Subnet, o.Subnet6} {
				if op, err := netip.ParsePrefix(os); err == nil && network.Overlaps(p, op) {
					return nil, fmt.Errorf("network %s: subnet %s overlaps network %s's %s: %w", cfg.Name, p, o.Name, op, errdefs.ErrInvalid)
				}
			}
		}
		gw := network.DefaultGateway(p)
		if fam.gateway != "" {
			if gw, err = netip.ParseAddr(fam.gateway); err != nil || !p.Contains(gw) {
				return nil, fmt.Errorf("network %s: gateway %q is not an address of %s: %w", cfg.Name, fam.gateway, p, errdefs.ErrInvalid)
			}
		}
		*fam.dst, *fam.dstGw = p.String(), gw.String()
	}
	if err := e.db.CreateNetwork(n); err != nil {
		return nil, err
	}
	if err := network.Setup(toNetwork(n)); err != nil {
		e.db.DeleteNetwork(n.Name)
		return nil, err
	}
	e.emit("network", "create", n.Name, n.Name, nil)
	return &n.Network, nil
}

// defaultNetwork returns the default network, making it on first use.
func (e *Engine) defaultNetwork() (*store.NetworkRecord, error) {
	if n, err := e.db.Network(DefaultNetwork); err == nil {
		return n, nil
	}
	e.netMu.Lock()
	defer e.netMu.Unlock()
	if n, err := e.db.Network(DefaultNetwork); err == nil {
		return n, nil
	}
	if _, err := e.CreateNetwork(api.NetworkConfig{Name: DefaultNetwork, Subnet: defaultSubnet4, Subnet6: defaultSubnet6}); err != nil && !errdefs.IsExists(err) {
		return nil, fmt.Errorf("default network: %w", err)
	}
	n, err := e.db.Network(DefaultNetwork)
	if err == nil {
		n.Default = true
	}
	return n, err
}

// resolveNetwork maps a network mode to a bridge network, or nil for the
// modes that are not one (none, host, container:X).
func (e *Engine) resolveNetwork(mode string) (*store.NetworkRecord, error) {
	switch {
	case mode == "none" || mode == "host" || mode == "private" || strings.HasPrefix(mode, "container:"):
		return nil, nil
	case mode == "" || mode == "bridge" || mode == DefaultNetwork:
		return e.defaultNetwork()
	}
	n, err := e.db.Network(mode)
	if err != nil {
		return nil, fmt.Errorf("--network %q: no such network (warrenctl network ls): %w", mode, errdefs.ErrNotFound)
	}
	return n, nil
}

// ListNetworks lists the networks.
func (e *Engine) ListNetworks() ([]api.Network, error) {
	ns, err := e.db.Networks()
	if err != nil {
		return nil, err
	}
	out := []api.Network{}
	for _, n := range ns {
		v := n.Network
		v.Default = n.Name == DefaultNetwork
		out = append(out, v)
	}
	return out, nil
}

// InspectNetwork returns a network with its endpoints.
func (e *Engine) InspectNetwork(name string) (*api.Network, error) {
	n, err := e.db.Network(name)
	if err != nil {
		return nil, err
	}
	v := n.Network
	v.Default = n.Name == DefaultNetwork
	ls, err := e.db.Leases(name)
	if err != nil {
		return nil, err
	}
	v.Endpoints = map[string][]string{}
	for _, l := range ls {
		v.Endpoints[l.Owner] = append(v.Endpoints[l.Owner], l.Addr.String())
	}
	return &v, nil
}

// RemoveNetwork removes a network no container or pod uses.
func (e *Engine) RemoveNetwork(name string) error {
	n, err := e.db.Network(name)
	if err != nil {
		return err
	}
	if err := e.db.DeleteNetwork(name); err != nil {
		return err
	}
	if err := network.Teardown(toNetwork(n)); err != nil {
		return err
	}
	e.emit("network", "remove", name, name, nil)
	return nil
}

// lease gives owner addresses on n (one per family the network has).
func (e *Engine) lease(n *store.NetworkRecord, owner string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, fam := range [][2]string{{n.Subnet, n.Gateway}, {n.Subnet6, n.Gateway6}} {
		if fam[0] == "" {
			continue
		}
		subnet, _ := netip.ParsePrefix(fam[0])
		gw, _ := netip.ParseAddr(fam[1])
		a, err := e.db.Lease(n.Name, owner, func(ls []store.Lease) (netip.Addr, error) {
			var cur []network.Lease
			for _, l := range ls {
				if subnet.Contains(l.Addr) {
					cur = append(cur, network.Lease{Addr: l.Addr, Owner: l.Owner})
				}
			}
			return network.Allocate(subnet, gw, cur, owner)
		})
		if err != nil {
			e.db.ReleaseOwner(owner)
			return nil, fmt.Errorf("network %s: %w", n.Name, err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// endpoint is owner's interface on n in the namespace at netns.
func endpoint(n *store.NetworkRecord, owner, netns string, addrs []string, ports []api.PortMapping) (*network.Endpoint, error) {
	ep := &network.Endpoint{Network: toNetwork(n), ID: owner, NetnsPath: netns}
	for _, s := range addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			continue
		}
		if a.Is4() {
			ep.Addr4 = a
		} else {
			ep.Addr6 = a
		}
	}
	for _, p := range ports {
		m := network.PortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Proto: p.Protocol}
		if p.HostIP != "" {
			a, err := netip.ParseAddr(p.HostIP)
			if err != nil {
				return nil, fmt.Errorf("port %d: host address %q: %w", p.HostPort, p.HostIP, errdefs.ErrInvalid)
			}
			m.HostIP = a
		}
		ep.Ports = append(ep.Ports, m)
	}
	return ep, nil
}

func validatePorts(ports []api.PortMapping) error {
	seen := map[string]bool{}
	for _, p := range ports {
		if p.HostPort == 0 || p.ContainerPort == 0 {
			return fmt.Errorf("port %d:%d: both ports must be 1-65535: %w", p.HostPort, p.ContainerPort, errdefs.ErrInvalid)
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			return fmt.Errorf("port %d: protocol %q: use tcp or udp: %w", p.HostPort, p.Protocol, errdefs.ErrInvalid)
		}
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(p.HostIP); err != nil {
				return fmt.Errorf("port %d: host address %q: %w", p.HostPort, p.HostIP, errdefs.ErrInvalid)
			}
		}
		k := fmt.Sprintf("%s/%d/%s", p.HostIP, p.HostPort, p.Protocol)
		if seen[k] {
			return fmt.Errorf("port %d published twice: %w", p.HostPort, errdefs.ErrInvalid)
		}
		seen[k] = true
	}
	return nil
}

// portInUse reports another owner publishing the same host port.
func (e *Engine) portInUse(ports []api.PortMapping, self string) error {
	if len(ports) == 0 {
		return nil
	}
	rs, _ := e.db.List()
	pods, _ := e.db.Pods()
	check := func(owner, name string, theirs []api.PortMapping) error {
		for _, p := range ports {
			for _, q := range theirs {
				if owner != self && p.HostPort == q.HostPort && protoOf(p) == protoOf(q) && (p.HostIP == "" || q.HostIP == "" || p.HostIP == q.HostIP) {
					return fmt.Errorf("host port %d/%s is already published by %s: %w", p.HostPort, protoOf(p), name, errdefs.ErrExists)
				}
			}
		}
		return nil
	}
	for _, r := range rs {
		if err := check(r.ID, "container "+r.Name, r.Config.Ports); err != nil {
			return err
		}
	}
	for _, p := range pods {
		if err := check(p.ID, "pod "+p.Name, p.Config.Ports); err != nil {
			return err
		}
	}
	return nil
}

func protoOf(p api.PortMapping) string {
	if p.Protocol == "" {
		return "tcp"
	}
	return p.Protocol
}

// netnsName is the `ip netns` name of a container's or pod's namespace.
func netnsName(kind, name string) string { return netnsPrefix + kind + "-" + name }

// newNetns pins a network namespace (an existing pinned one is reused:
// recovery and restarts) with lo up.
func (e *Engine) newNetns(name string) (string, error) {
	path, err := network.NewNetns(e.cfg.NetnsDir, name)
	if errdefs.IsExists(err) {
		path, err = filepath.Join(e.cfg.NetnsDir, name), nil
	}
	if err != nil {
		return "", err
	}
	err = network.InNetns(path, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		network.DeleteNetns(e.cfg.NetnsDir, name)
		return "", fmt.Errorf("network namespace %s: lo: %w", path, err)
	}
	return path, nil
}

// writeNetFiles writes the hosts and resolv.conf a container or pod on a
// network gets (bind-mounted over the image's).
func writeNetFiles(dir, self string, addrs []string, peers map[string][]netip.Addr) error {
	var mine []netip.Addr
	for _, s := range addrs {
		if a, err := netip.ParseAddr(s); err == nil {
			mine = append(mine, a)
		}
	}
	// Written in place (not renamed): the file is bind-mounted, and a
	// rename would leave the container with the old inode.
	if err := writeInPlace(filepath.Join(dir, hostsFile), network.HostsFile(self, mine, peers)); err != nil {
		return err
	}
	host, _ := os.ReadFile(resolvConfPath)
	return writeInPlace(filepath.Join(dir, resolvConfFile), network.ResolvConf(host, []string{fallbackDNS}))
}

func writeInPlace(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// netMembers returns, for network, every owner's name and addresses
// (containers and pods with a lease), read once.
func (e *Engine) netMembers(netName string) (names map[string]string, addrs map[string][]netip.Addr) {
	ls, _ := e.db.Leases(netName)
	names, addrs = map[string]string{}, map[string][]netip.Addr{}
	all := map[string]string{}
	if rs, err := e.db.List(); err == nil {
		for _, r := range rs {
			all[r.ID] = r.Name
		}
	}
	if ps, err := e.db.Pods(); err == nil {
		for _, p := range ps {
			all[p.ID] = p.Name
		}
	}
	for _, l := range ls {
		if n := all[l.Owner]; n != "" {
			names[l.Owner] = n
			addrs[l.Owner] = append(addrs[l.Owner], l.Addr)
		}
	}
	return names, addrs
}

// peersOf is every member of the network but self, by name.
func peersOf(names map[string]string, addrs map[string][]netip.Addr, self string) map[string][]netip.Addr {
	peers := make(map[string][]netip.Addr, len(names))
	for id, n := range names {
		if id != self {
			peers[n] = append(peers[n], addrs[id]...)
		}
	}
	return peers
}

// peersOn lists the names and addresses of everything with a lease on
// network (containers by name, pods by name), but self.
func (e *Engine) peersOn(netName, self string) map[string][]netip.Addr {
	names, addrs := e.netMembers(netName)
	return peersOf(names, addrs, self)
}

// refreshHosts rewrites the hosts files of every container and pod on
// network, so names resolve as members come and go. The store is read
// once per call (not once per member: with 200 pods that made each pod
// create five times slower than the first).
func (e *Engine) refreshHosts(netName string) {
	names, addrs := e.netMembers(netName)
	rs, _ := e.db.List()
	for _, r := range rs {
		if _, ok := names[r.ID]; ok && r.Network == netName && r.Config.Pod == "" {
			if err := writeNetFiles(r.Dir, r.Name, r.Addresses, peersOf(names, addrs, r.ID)); err != nil && !errors.Is(err, os.ErrNotExist) {
				e.log.Warn("hosts file", "id", r.ID, "err", err)
			}
		}
	}
	ps, _ := e.db.Pods()
	for _, p := range ps {
		if _, ok := names[p.ID]; ok {
			writeNetFiles(p.Dir, p.Name, p.Addresses, peersOf(names, addrs, p.ID))
		}
	}
}

// connect gives a container on a bridge network its namespace and
// interface, before its runtime creates it there.
func (e *Engine) connect(r *store.Record) error {
	if r.Netns == "" {
		return nil
	}
	n, err := e.db.Network(r.Network)
	if err != nil {
		return err
	}
	path, err := e.newNetns(filepath.Base(r.Netns))
	if err != nil {
		return err
	}
	ep, err := endpoint(n, r.ID, path, r.Addresses, r.Config.Ports)
	if err == nil {
		err = network.Attach(ep)
	}
	if err != nil {
		network.DeleteNetns(e.cfg.NetnsDir, filepath.Base(r.Netns))
		return err
	}
	return nil
}

// disconnect undoes connect; what is gone already is fine.
func (e *Engine) disconnect(r *store.Record) {
	if r.Netns == "" {
		return
	}
	if n, err := e.db.Network(r.Network); err == nil {
		if ep, err := endpoint(n, r.ID, r.Netns, r.Addresses, r.Config.Ports); err == nil {
			if err := network.Detach(ep); err != nil {
				e.log.Warn("detaching from the network", "id", r.ID, "err", err)
			}
		}
	}
	if err := network.DeleteNetns(e.cfg.NetnsDir, filepath.Base(r.Netns)); err != nil {
		e.log.Warn("removing the network namespace", "id", r.ID, "err", err)
	}
}
