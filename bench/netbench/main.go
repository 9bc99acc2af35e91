// Command netbench times per-container network setup and teardown: warren's
// own library (internal/network) next to the CNI reference plugins (bridge
// with host-local IPAM, portmap chained after it, loopback), invoked directly
// as a container runtime would per the CNI spec.
//
// Both sides get the same work per container: a fresh network namespace
// pinned under -dir (network.NewNetns for both, so that part is identical),
// an address from a /16, a veth on a bridge that is the gateway, outbound
// masquerade, hairpin, lo up and one published TCP port; then the reverse.
//
//	warren: NewNetns, Allocate, Attach (one port)  |  Detach, DeleteNetns
//	CNI:    NewNetns, loopback ADD, bridge ADD (host-local), portmap ADD
//	        (prevResult = bridge's result)  |  portmap DEL, bridge DEL,
//	        loopback DEL (prevResult = the chain's result, as libcni does),
//	        DeleteNetns
//
// Each side works in a "host" network namespace of its own, made here and
// pinned under -dir, so the two bridges can use the same subnet and neither
// sees the other's rules. It never touches the namespace it was started in
// beyond those pins, and refuses to run in the init process's network
// namespace at all: start it under `unshare --net` (bench/network.py does).
//
// Two measures:
//
//	per container  -n containers set up and torn down one at a time, in
//	               alternating blocks of -block (who goes first is drawn
//	               per pair of blocks), after one warm-up each
//	growth         -grow containers set up one after another and kept
//	               (host port 20000+i each; none, and no portmap, with
//	               -grow-ports=false), then torn down in the same order:
//	               does the n-th cost more than the first?
//
// Usage: netbench -dir DIR [-n N] [-block B] [-grow G] [-grow-ports=BOOL] [-cni /usr/lib/cni]
// (defaults from NETBENCH_N, NETBENCH_BLOCK, NETBENCH_GROW, NETBENCH_GROW_PORTS)
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	"github.com/warren-runtime/warren/internal/network"
)

const subnet = "10.210.0.0/16"

func main() {
	dir := flag.String("dir", "", "work directory (netns pins, host-local's data); required")
	n := flag.Int("n", envInt("NETBENCH_N", 100), "containers per side, one at a time")
	block := flag.Int("block", envInt("NETBENCH_BLOCK", 10), "containers per block (sides alternate by block)")
	grow := flag.Int("grow", envInt("NETBENCH_GROW", 200), "containers kept at once for the growth measure (0: skip)")
	growPorts := flag.Bool("grow-ports", os.Getenv("NETBENCH_GROW_PORTS") != "0", "publish a port per container in the growth measure (CNI: chain portmap)")
	cniPath := flag.String("cni", "/usr/lib/cni", "directory of the CNI plugins")
	flag.Parse()
	if *dir == "" || *n < 1 || *block < 1 || *grow < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, *cniPath, *n, *block, *grow, *growPorts); err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

// notHostNetns refuses to work in the network namespace the benchmark was
// started from: NETBENCH_OUTER_NETNS names it ("DEV:INO" of
// /proc/self/ns/net, set by bench/network.py before it unshares), and the
// init process's, where /proc/1/ns/net is readable, is refused too.
func notHostNetns() error {
	var self syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil {
		return err
	}
	here := fmt.Sprintf("%d:%d", self.Dev, self.Ino)
	outer := os.Getenv("NETBENCH_OUTER_NETNS")
	var init syscall.Stat_t
	initOK := syscall.Stat("/proc/1/ns/net", &init) == nil
	if outer == "" && !initOK {
		return errors.New("cannot tell the host's network namespace: set NETBENCH_OUTER_NETNS=DEV:INO of the host's /proc/self/ns/net, and run under `unshare --net` (bench/network.py does both)")
	}
	if here == outer || (initOK && self.Dev == init.Dev && self.Ino == init.Ino) {
		return errors.New("refusing to run in the host's network namespace: start under `unshare --net` (bench/network.py does)")
	}
	return nil
}

// sample is one container's timings; the parts add up to setup and teardown.
type sample struct {
	nsNew, attach, detach, nsDel time.Duration
	parts                        map[string]time.Duration // per plugin (CNI)
}

func (s sample) setup() time.Duration    { return s.nsNew + s.attach }
func (s sample) teardown() time.Duration { return s.detach + s.nsDel }

// side is one way of networking a container.
type side interface {
	name() string
	host() string // the side's "host" netns
	// up networks container id (netns dir/ns) publishing hostPort -> 80
	// (nothing if hostPort is 0).
	up(id, ns string, hostPort uint16, s *sample) error
	down(id, ns string, s *sample) error
	close() error
}

func run(dir, cniPath string, n, block, grow int, growPorts bool) error {
	if err := notHostNetns(); err != nil {
		return err
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniPath, p)); err != nil {
			return fmt.Errorf("CNI plugin %s: %w (apt-get install containernetworking-plugins)", p, err)
		}
	}
	nsDir := filepath.Join(dir, "netns")
	w, err := newWarren(nsDir)
	if err != nil {
		return err
	}
	defer w.close()
	c, err := newCNI(nsDir, cniPath, filepath.Join(dir, "cni-ipam"))
	if err != nil {
		return err
	}
	defer c.close()
	sides := []side{w, c}

	fmt.Printf("netbench: warren internal/network vs CNI plugins %s (%s), kernel %s, %d CPUs\n",
		cniPath, cniVersion(), uname(), runtime.NumCPU())
	fmt.Printf("  same per container: pinned netns, IPv4 on %s, veth on a gateway bridge, masquerade, hairpin, lo up, 1 tcp port\n", subnet)

	// Per container, alternating blocks after a warm-up each.
	res := map[string][]sample{}
	for _, sd := range sides {
		err := network.InNetns(sd.host(), func() error {
			_, err := cycle(sd, "warm", 18080)
			return err
		})
		if err != nil {
			return err
		}
	}
	for len(res[w.name()]) < n || len(res[c.name()]) < n {
		order := []side{w, c}
		if mrand.IntN(2) == 1 {
			order = []side{c, w}
		}
		for _, sd := range order {
			k := min(block, n-len(res[sd.name()]))
			err := network.InNetns(sd.host(), func() error {
				for range k {
					s, err := cycle(sd, fmt.Sprint(len(res[sd.name()])), 18080)
					if err != nil {
						return err
					}
					res[sd.name()] = append(res[sd.name()], s)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
	reportCycles(n, block, res[w.name()], res[c.name()])

	if grow > 0 {
		gw, err := growth(w, grow, growPorts)
		if err != nil {
			return err
		}
		gc, err := growth(c, grow, growPorts)
		if err != nil {
			return err
		}
		reportGrowth(grow, growPorts, gw, gc)
	}
	return nil
}

func newID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cycle sets up one container and tears it down, timing each step.
func cycle(sd side, tag string, port uint16) (sample, error) {
	var s sample
	id := newID()
	ns := sd.name()[:1] + "-" + tag
	if err := sd.up(id, ns, port, &s); err != nil {
		return s, err
	}
	return s, sd.down(id, ns, &s)
}

// newNetns and delNetns time the namespace part, the same for both sides.
func newNetns(dir, name string, s *sample) (string, error) {
	t := time.Now()
	p, err := network.NewNetns(dir, name)
	s.nsNew = time.Since(t)
	return p, err
}

func delNetns(dir, name string, s *sample) error {
	t := time.Now()
	err := network.DeleteNetns(dir, name)
	s.nsDel = time.Since(t)
	return err
}

// hostNetns makes a side's "host" namespace with lo up.
func hostNetns(dir, name string) (string, error) {
	p, err := network.NewNetns(dir, name)
	if err != nil {
		return "", err
	}
	err = network.InNetns(p, func() error {
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		return err
	})
	if err != nil {
		network.DeleteNetns(dir, name)
		return "", fmt.Errorf("netns %s: lo up: %w", p, err)
	}
	return p, nil
}

// --- warren ----------------------------------------------------------------

type warrenSide struct {
	dir, hostNS string
	net         *network.Network
	leases      []network.Lease
	eps         map[string]*network.Endpoint
}

func newWarren(dir string) (*warrenSide, error) {
	h, err := hostNetns(dir, "host-warren")
	if err != nil {
		return nil, err
	}
	w := &warrenSide{dir: dir, hostNS: h, eps: map[string]*network.Endpoint{},
		net: &network.Network{Name: "netbench", Subnet4: netip.MustParsePrefix(subnet)}}
	if err := network.InNetns(h, func() error { return network.Setup(w.net) }); err != nil {
		network.DeleteNetns(dir, "host-warren")
		return nil, fmt.Errorf("warren: setup: %w", err)
	}
	return w, nil
}

func (w *warrenSide) name() string { return "warren" }
func (w *warrenSide) host() string { return w.hostNS }

func (w *warrenSide) up(id, ns string, port uint16, s *sample) error {
	p, err := newNetns(w.dir, ns, s)
	if err != nil {
		return fmt.Errorf("warren: %w", err)
	}
	t := time.Now()
	a, err := network.Allocate(w.net.Subnet4, w.net.Gateway4, w.leases, id)
	if err != nil {
		return fmt.Errorf("warren: %w", err)
	}
	w.leases = append(w.leases, network.Lease{Addr: a, Owner: id})
	ep := &network.Endpoint{Network: w.net, ID: id, NetnsPath: p, Addr4: a}
	if port != 0 {
		ep.Ports = []network.PortMapping{{HostPort: port, ContainerPort: 80, Proto: "tcp"}}
	}
	if err := network.Attach(ep); err != nil {
		return fmt.Errorf("warren: %w", err)
	}
	s.attach = time.Since(t)
	w.eps[id] = ep
	return nil
}

func (w *warrenSide) down(id, ns string, s *sample) error {
	t := time.Now()
	if err := network.Detach(w.eps[id]); err != nil {
		return fmt.Errorf("warren: %w", err)
	}
	w.leases = slices.DeleteFunc(w.leases, func(l network.Lease) bool { return l.Owner == id })
	delete(w.eps, id)
	s.detach = time.Since(t)
	if err := delNetns(w.dir, ns, s); err != nil {
		return fmt.Errorf("warren: %w", err)
	}
	return nil
}

func (w *warrenSide) close() error {
	err := network.InNetns(w.hostNS, func() error { return network.Teardown(w.net) })
	return errors.Join(err, network.DeleteNetns(w.dir, "host-warren"))
}

// --- CNI ---------------------------------------------------------------------

type cniSide struct {
	dir, hostNS, plugins, dataDir string
	results                       map[string]json.RawMessage // the chain's result per container
	ports                         map[string]uint16
}

func newCNI(dir, plugins, dataDir string) (*cniSide, error) {
	h, err := hostNetns(dir, "host-cni")
	if err != nil {
		return nil, err
	}
	return &cniSide{dir: dir, hostNS: h, plugins: plugins, dataDir: dataDir,
		results: map[string]json.RawMessage{}, ports: map[string]uint16{}}, nil
}

func (c *cniSide) name() string { return "cni" }
func (c *cniSide) host() string { return c.hostNS }

// The conflist, plugin by plugin, as a runtime would build each one's
// stdin: name and cniVersion from the list, runtimeConfig for the declared
// capability, prevResult when chaining.
func (c *cniSide) bridgeConf() map[string]any {
	return map[string]any{"cniVersion": "1.0.0", "name": "netbench", "type": "bridge",
		"bridge": "cni-bench0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
		"ipam": map[string]any{"type": "host-local", "dataDir": c.dataDir,
			"ranges": [][]map[string]string{{{"subnet": subnet}}},
			"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}}
}

func (c *cniSide) portmapConf(port uint16) map[string]any {
	return map[string]any{"cniVersion": "1.0.0", "name": "netbench", "type": "portmap",
		"capabilities": map[string]bool{"portMappings": true}, "snat": true,
		"runtimeConfig": map[string]any{"portMappings": []map[string]any{
			{"hostPort": port, "containerPort": 80, "protocol": "tcp"}}}}
}

func loopbackConf() map[string]any {
	return map[string]any{"cniVersion": "1.0.0", "name": "lo", "type": "loopback"}
}

// invoke runs one plugin per the CNI spec and returns its stdout. It forks
// from the calling thread, so the plugin starts in that thread's network
// namespace (the side's host namespace, under InNetns).
func (c *cniSide) invoke(cmd, id, netns, ifname string, conf map[string]any, prev json.RawMessage) (json.RawMessage, time.Duration, error) {
	if prev != nil {
		conf["prevResult"] = prev
	}
	in, err := json.Marshal(conf)
	if err != nil {
		return nil, 0, err
	}
	x := exec.Command(filepath.Join(c.plugins, conf["type"].(string)))
	x.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + netns, "CNI_IFNAME=" + ifname,
		"CNI_PATH=" + c.plugins, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	x.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	x.Stdout, x.Stderr = &out, &errb
	t := time.Now()
	err = x.Run()
	d := time.Since(t)
	if err != nil {
		return nil, d, fmt.Errorf("cni: %s %s (%s): %w: %s %s", conf["type"], cmd, id[:12], err,
			strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()))
	}
	return json.RawMessage(bytes.TrimSpace(out.Bytes())), d, nil
}

func (c *cniSide) up(id, ns string, port uint16, s *sample) error {
	p, err := newNetns(c.dir, ns, s)
	if err != nil {
		return fmt.Errorf("cni: %w", err)
	}
	s.parts = map[string]time.Duration{}
	t := time.Now()
	_, d, err := c.invoke("ADD", id, p, "lo", loopbackConf(), nil)
	if err != nil {
		return err
	}
	s.parts["loopback ADD"] = d
	r, d, err := c.invoke("ADD", id, p, "eth0", c.bridgeConf(), nil)
	if err != nil {
		return err
	}
	s.parts["bridge ADD (+ host-local)"] = d
	if port != 0 {
		r, d, err = c.invoke("ADD", id, p, "eth0", c.portmapConf(port), r)
		if err != nil {
			return err
		}
		s.parts["portmap ADD"] = d
	}
	s.attach = time.Since(t)
	c.results[id], c.ports[id] = r, port
	return nil
}

func (c *cniSide) down(id, ns string, s *sample) error {
	p := filepath.Join(c.dir, ns)
	r, port := c.results[id], c.ports[id]
	if s.parts == nil {
		s.parts = map[string]time.Duration{}
	}
	t := time.Now()
	if port != 0 {
		_, d, err := c.invoke("DEL", id, p, "eth0", c.portmapConf(port), r)
		if err != nil {
			return err
		}
		s.parts["portmap DEL"] = d
	}
	_, d, err := c.invoke("DEL", id, p, "eth0", c.bridgeConf(), r)
	if err != nil {
		return err
	}
	s.parts["bridge DEL (+ host-local)"] = d
	_, d, err = c.invoke("DEL", id, p, "lo", loopbackConf(), nil)
	if err != nil {
		return err
	}
	s.parts["loopback DEL"] = d
	s.detach = time.Since(t)
	delete(c.results, id)
	delete(c.ports, id)
	if err := delNetns(c.dir, ns, s); err != nil {
		return fmt.Errorf("cni: %w", err)
	}
	return nil
}

func (c *cniSide) close() error {
	// Everything CNI made lives in the host-cni namespace (bridge, veths,
	// iptables-nft rules) and goes with it.
	return network.DeleteNetns(c.dir, "host-cni")
}

// --- growth ----------------------------------------------------------------

type growRes struct {
	up, down     []time.Duration
	upAll, dnAll time.Duration
	links, rules int // veths on the bridge and nft rules in the host netns with all containers up
	linksAfter   int
	rulesAfter   int
	rulesBefore  int
}

func growth(sd side, n int, ports bool) (*growRes, error) {
	g := &growRes{}
	ids := make([]string, n)
	err := network.InNetns(sd.host(), func() error {
		var err error
		if g.rulesBefore, err = countRules(); err != nil {
			return err
		}
		t0 := time.Now()
		for i := range n {
			ids[i] = newID()
			var s sample
			port := uint16(0)
			if ports {
				port = uint16(20000 + i)
			}
			if err := sd.up(ids[i], fmt.Sprintf("%s-g%d", sd.name()[:1], i), port, &s); err != nil {
				return fmt.Errorf("growth, container %d: %w", i+1, err)
			}
			g.up = append(g.up, s.setup())
		}
		g.upAll = time.Since(t0)
		if g.links, err = countVeths(); err != nil {
			return err
		}
		if g.rules, err = countRules(); err != nil {
			return err
		}
		t0 = time.Now()
		for i := range n {
			var s sample
			if err := sd.down(ids[i], fmt.Sprintf("%s-g%d", sd.name()[:1], i), &s); err != nil {
				return fmt.Errorf("growth, removing container %d: %w", i+1, err)
			}
			g.down = append(g.down, s.teardown())
		}
		g.dnAll = time.Since(t0)
		if g.linksAfter, err = countVeths(); err != nil {
			return err
		}
		g.rulesAfter, err = countRules()
		return err
	})
	return g, err
}

// countVeths counts veths in the calling thread's namespace.
func countVeths() (int, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return 0, err
	}
	k := 0
	for _, l := range ls {
		if l.Type() == "veth" {
			k++
		}
	}
	return k, nil
}

// countRules counts nftables rules (iptables-nft's included) in the calling
// thread's namespace.
func countRules() (int, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return 0, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return 0, err
	}
	k := 0
	for _, ch := range chains {
		rs, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return 0, err
		}
		k += len(rs)
	}
	return k, nil
}

// --- report ------------------------------------------------------------------

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func median(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return ms(s[len(s)/2])
	}
	return (ms(s[len(s)/2-1]) + ms(s[len(s)/2])) / 2
}

func mean(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return ms(t) / float64(len(ds))
}

func pick(ss []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func cell(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

func row(label string, w, c float64) {
	r := "-"
	if !math.IsNaN(w) && !math.IsNaN(c) && c > 0 {
		r = fmt.Sprintf("%.2f", w/c)
	}
	fmt.Printf("%-44s %10s %10s %8s\n", label, cell(w), cell(c), r)
}

func reportCycles(n, block int, w, c []sample) {
	fmt.Printf("\n1. Per container: set up, then tear down, one at a time; %d per side in alternating blocks of %d (ms)\n", n, block)
	fmt.Printf("%-44s %10s %10s %8s\n", "measure", "warren", "CNI", "w/CNI")
	for _, m := range []struct {
		name string
		f    func(sample) time.Duration
	}{
		{"setup", sample.setup},
		{"teardown", sample.teardown},
		{"total", func(s sample) time.Duration { return s.setup() + s.teardown() }},
	} {
		row(m.name+": median", median(pick(w, m.f)), median(pick(c, m.f)))
		row(m.name+": mean", mean(pick(w, m.f)), mean(pick(c, m.f)))
	}
	fmt.Println("  of which (median):")
	row("  netns create (NewNetns, same code)", median(pick(w, func(s sample) time.Duration { return s.nsNew })), median(pick(c, func(s sample) time.Duration { return s.nsNew })))
	row("  Attach | lo+bridge+portmap ADD", median(pick(w, func(s sample) time.Duration { return s.attach })), median(pick(c, func(s sample) time.Duration { return s.attach })))
	row("  Detach | portmap+bridge+lo DEL", median(pick(w, func(s sample) time.Duration { return s.detach })), median(pick(c, func(s sample) time.Duration { return s.detach })))
	row("  netns delete (DeleteNetns, same code)", median(pick(w, func(s sample) time.Duration { return s.nsDel })), median(pick(c, func(s sample) time.Duration { return s.nsDel })))
	for _, k := range []string{"loopback ADD", "bridge ADD (+ host-local)", "portmap ADD", "portmap DEL", "bridge DEL (+ host-local)", "loopback DEL"} {
		row("    CNI "+k, math.NaN(), median(pick(c, func(s sample) time.Duration { return s.parts[k] })))
	}
}

func reportGrowth(n int, ports bool, w, c *growRes) {
	k := min(20, n)
	what := "one port each"
	if !ports {
		what = "no port: CNI without portmap"
	}
	fmt.Printf("\n1b. Growth: %d containers set up and kept (%s), then torn down in the same order (ms)\n", n, what)
	fmt.Printf("%-44s %10s %10s %8s\n", "measure", "warren", "CNI", "w/CNI")
	for _, m := range []struct {
		name string
		f    func(*growRes) []time.Duration
		all  func(*growRes) time.Duration
	}{
		{"setup", func(g *growRes) []time.Duration { return g.up }, func(g *growRes) time.Duration { return g.upAll }},
		{"teardown", func(g *growRes) []time.Duration { return g.down }, func(g *growRes) time.Duration { return g.dnAll }},
	} {
		wf, wl := median(m.f(w)[:k]), median(m.f(w)[len(m.f(w))-k:])
		cf, cl := median(m.f(c)[:k]), median(m.f(c)[len(m.f(c))-k:])
		row(fmt.Sprintf("%s: median of the first %d", m.name, k), wf, cf)
		row(fmt.Sprintf("%s: median of the last %d", m.name, k), wl, cl)
		row(fmt.Sprintf("%s: last/first (x)", m.name), wl/wf, cl/cf)
		row(fmt.Sprintf("%s: all %d (s)", m.name, n), m.all(w).Seconds(), m.all(c).Seconds())
	}
	fmt.Printf("%-44s %10d %10d\n", "nft rules in the host netns: before", w.rulesBefore, c.rulesBefore)
	fmt.Printf("%-44s %10d %10d\n", fmt.Sprintf("nft rules in the host netns: %d up", n), w.rules, c.rules)
	fmt.Printf("%-44s %10d %10d\n", "nft rules in the host netns: after teardown", w.rulesAfter, c.rulesAfter)
	fmt.Printf("%-44s %10d %10d\n", fmt.Sprintf("veths in the host netns: %d up", n), w.links, c.links)
	fmt.Printf("%-44s %10d %10d\n", "veths in the host netns: after teardown", w.linksAfter, c.linksAfter)
}

func uname() string {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return "?"
	}
	b := make([]byte, 0, len(u.Release))
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// cniVersion is the plugins' Debian package version (the plugins themselves
// print only the spec versions they speak).
func cniVersion() string {
	out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "containernetworking-plugins").Output()
	if err != nil {
		return "version unknown"
	}
	return "containernetworking-plugins " + string(out)
}
