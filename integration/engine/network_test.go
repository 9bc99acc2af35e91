package engine

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/warren-runtime/warren/api"
)

// serve is a pod member answering on TCP port 8080 with body. (nc, not
// httpd+wget: busybox-static's wget crashes in glibc's static resolver.)
func serve(d *daemon, pod, name, body string) {
	d.t.Helper()
	d.ctlOK("run", "-d", "--pod", pod, "--name", name, "busybox", "sh", "-c",
		"while true; do echo "+body+" | nc -l -p 8080; done")
}

// fetchScript connects to addr port 8080 (a few tries: the server
// listens again after each answer) and prints what it says.
func fetchScript(addr string) string {
	return "for i in 1 2 3 4 5; do nc -w 2 " + addr + " 8080 </dev/null && exit 0; sleep 0.2; done; exit 1"
}

func podOf(t *testing.T, d *daemon, name string) api.Pod {
	t.Helper()
	var p api.Pod
	if err := json.Unmarshal([]byte(d.ctlOK("pod", "inspect", name)), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func addrOf(p api.Pod, six bool) string {
	for _, a := range p.Addresses {
		if strings.Contains(a, ":") == six {
			return a
		}
	}
	return ""
}

// ruleset is the daemon's network namespace's nftables ruleset.
func ruleset(t *testing.T, d *daemon) string {
	out, err := d.inNet("nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list ruleset: %v: %s", err, out)
	}
	return string(out)
}

func links(t *testing.T, d *daemon) []string {
	out, err := d.inNet("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Pods on networks, entirely inside the daemon's own network namespace:
// reachability by address and by name (IPv4 and IPv6), a published port,
// isolation between networks, a pod without network, localhost and pid
// sharing inside a pod; then removal leaves no veth, rule, lease or
// namespace, and a SIGKILLed daemon comes back with the same rules.
func TestPodsAndNetworks(t *testing.T) {
	eachRuntime(t, func(t *testing.T, d *daemon) {
		baseLinks := links(t, d)
		d.ctlOK("network", "create", "--subnet", "10.201.0.0/24", "--subnet6", "fd00:201::/64", "net1")
		d.ctlOK("network", "create", "--subnet", "10.202.0.0/24", "--subnet6", "fd00:202::/64", "net2")
		if r := d.ctl("network", "create", "--subnet", "10.201.0.128/25", "clash"); r.code == 0 || !strings.Contains(r.stderr, "overlaps") {
			t.Errorf("an overlapping subnet: %d %q", r.code, r.stderr)
		}
		d.ctlOK("pod", "create", "--name", "p1", "--network", "net1", "-p", "18080:8080")
		d.ctlOK("pod", "create", "--name", "p2", "--network", "net1", "-m", "64m", "--pids-limit", "40")
		d.ctlOK("pod", "create", "--name", "p3", "--network", "net2")
		d.ctlOK("pod", "create", "--name", "p4", "--network", "none")
		d.ctlOK("pod", "create", "--name", "sp", "--network", "net2", "--share-pid")
		serve(d, "p1", "web", "hello-p1")
		p1 := podOf(t, d, "p1")
		v4, v6 := addrOf(p1, false), addrOf(p1, true)
		if !strings.HasPrefix(v4, "10.201.0.") || !strings.HasPrefix(v6, "fd00:201::") {
			t.Fatalf("p1's addresses %v", p1.Addresses)
		}
		get := func(pod, addr string) result {
			return d.ctl("run", "--rm", "--pod", pod, "busybox", "sh", "-c", fetchScript(addr))
		}
		waitFor(t, func() bool { return get("p2", v4).stdout == "hello-p1\n" }, "p2 reaching p1 by IPv4")
		if r := get("p2", "p1"); r.stdout != "hello-p1\n" {
			t.Errorf("p2 -> p1 by name: %d %q %q", r.code, r.stdout, r.stderr)
		}
		if r := get("p2", v6); r.stdout != "hello-p1\n" {
			t.Errorf("p2 -> p1 by IPv6: %d %q %q", r.code, r.stdout, r.stderr)
		}
		// p2's limits bound its members: their cgroups are below the
		// pod's, which has the limits.
		p2 := podOf(t, d, "p2")
		d.ctlOK("run", "-d", "--pod", "p2", "--name", "p2member", "busybox", "sleep", "60")
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", inspect(t, d, "p2member").State.Pid))
		if !strings.Contains(string(cg), "/warren/pod-"+p2.ID[:12]+"/") {
			t.Errorf("a member's cgroups are not below its pod's:\n%s", cg)
		}
		for file, want := range map[string]string{"memory/warren/pod-" + p2.ID[:12] + "/memory.limit_in_bytes": "67108864", "pids/warren/pod-" + p2.ID[:12] + "/pids.max": "40"} {
			if b, err := os.ReadFile("/sys/fs/cgroup/" + file); err == nil && strings.TrimSpace(string(b)) != want {
				t.Errorf("%s = %s, want %s", file, b, want)
			} else if err != nil {
				t.Logf("%s: %v (cgroup v2 host?)", file, err)
			}
		}
		d.ctlOK("rm", "-f", "p2member")
		// A pod made later is known to running members at once (the
		// pod's hosts file is rewritten in place).
		d.ctlOK("pod", "create", "--name", "late", "--network", "net1")
		if h := d.ctlOK("exec", "web", "cat", "/etc/hosts"); !strings.Contains(h, "\tlate") && !strings.Contains(h, " late") {
			t.Errorf("a running member does not know a later pod:\n%s", h)
		}
		d.ctlOK("pod", "rm", "late")
		if h := d.ctlOK("exec", "web", "cat", "/etc/hosts"); strings.Contains(h, "late") {
			t.Errorf("a removed pod is still in a member's hosts:\n%s", h)
		}
		// Members of one pod share localhost and the pod's host name.
		if r := get("p1", "127.0.0.1"); r.stdout != "hello-p1\n" {
			t.Errorf("localhost in p1: %d %q %q", r.code, r.stdout, r.stderr)
		}
		if h := d.ctlOK("run", "--rm", "--pod", "p1", "busybox", "hostname"); h != "p1\n" {
			t.Errorf("hostname in p1: %q", h)
		}
		// The published port answers on the daemon's side.
		gw := "10.201.0.1"
		if out := hostFetch(d, gw, "18080"); out != "hello-p1\n" {
			t.Errorf("published port %s:18080: %q", gw, out)
		}
		// Networks are isolated, both families (one try each: p1
		// answered p2 just now).
		once := func(pod, addr string) result {
			return d.ctl("run", "--rm", "--pod", pod, "busybox", "nc", "-w", "2", addr, "8080")
		}
		if r := once("p3", v4); r.code == 0 {
			t.Errorf("p3 (net2) reached p1 (net1) over IPv4: %q", r.stdout)
		}
		if r := once("p3", v6); r.code == 0 {
			t.Errorf("p3 (net2) reached p1 (net1) over IPv6: %q", r.stdout)
		}
		// A pod without network has only lo.
		if out := d.ctlOK("run", "--rm", "--pod", "p4", "busybox", "ls", "/sys/class/net"); strings.Fields(out)[0] != "lo" || len(strings.Fields(out)) != 1 {
			t.Errorf("pod with --network none: %q", out)
		}
		// --share-pid: members see each other's processes.
		d.ctlOK("run", "-d", "--pod", "sp", "--name", "sleeper", "busybox", "sleep", "600")
		ps := d.ctlOK("run", "--rm", "--pod", "sp", "busybox", "ps", "-o", "pid,args")
		if !strings.Contains(ps, "sleep 600") || !strings.Contains(ps, "pause") {
			t.Errorf("ps in a pid-sharing pod:\n%s", ps)
		}
		if ps := d.ctlOK("run", "--rm", "--pod", "p1", "busybox", "ps", "-o", "args"); strings.Contains(ps, "nc -l") {
			t.Errorf("a pod without --share-pid shares pids:\n%s", ps)
		}
		// The named network namespaces are there for ip netns.
		ents, _ := os.ReadDir(d.netnsDir())
		if len(ents) < 5 {
			t.Errorf("named network namespaces: %v", ents)
		}

		// SIGKILL the daemon: leases and rules survive as they were.
		before := ruleset(t, d)
		leases := d.ctlOK("network", "inspect", "net1")
		d.kill9()
		d.start()
		if after := ruleset(t, d); after != before {
			t.Errorf("ruleset changed across a daemon restart:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if l := d.ctlOK("network", "inspect", "net1"); l != leases {
			t.Errorf("leases changed across a daemon restart:\n%s\n%s", leases, l)
		}
		if out := hostFetch(d, gw, "18080"); out != "hello-p1\n" {
			t.Errorf("published port after the restart: %q", out)
		}
		if r := d.ctl("network", "rm", "net1"); r.code == 0 {
			t.Error("removed a network in use")
		}

		for _, p := range []string{"p1", "p2", "p3", "p4", "sp"} {
			d.ctlOK("pod", "rm", "-f", p)
		}
		d.ctlOK("network", "rm", "net1", "net2")
		if rs := ruleset(t, d); strings.Contains(rs, "10.201.") || strings.Contains(rs, "18080") || strings.Contains(rs, "fd00:201") {
			t.Errorf("rules left:\n%s", rs)
		}
		got := links(t, d)
		for _, l := range got {
			if strings.HasPrefix(l, "wrv-") {
				t.Errorf("veth %s left", l)
			}
		}
		if len(got) > len(baseLinks)+1 { // + the default network's bridge
			t.Errorf("links %v, before %v", got, baseLinks)
		}
		if ents, _ := os.ReadDir(d.netnsDir()); len(ents) != 0 {
			t.Errorf("network namespaces left: %v", ents)
		}
		noTraces(t, d)
	})
}

// Containers (not pods) on a bridge network: names resolve, ports
// publish, the lease goes with the container.
func TestContainersOnBridge(t *testing.T) {
	d := newDaemon(t, "warren")
	d.ctlOK("network", "create", "--subnet", "10.203.0.0/24", "front")
	d.ctlOK("run", "-d", "--name", "api", "--network", "front", "-p", "19090:8080", "busybox", "sh", "-c",
		"while true; do echo api-up | nc -l -p 8080; done")
	waitFor(t, func() bool {
		r := d.ctl("run", "--rm", "--network", "front", "busybox", "sh", "-c", fetchScript("api"))
		return r.stdout == "api-up\n"
	}, "api by name")
	if r := d.ctl("run", "-d", "--network", "front", "-p", "19090:80", "busybox", "true"); r.code == 0 || !strings.Contains(r.stderr, "19090") {
		t.Errorf("a host port published twice: %d %q", r.code, r.stderr)
	}
	c := inspect(t, d, "api")
	if c.Network != "front" || len(c.Addresses) != 1 || !strings.HasPrefix(c.Addresses[0], "10.203.0.") {
		t.Errorf("api on %q with %v", c.Network, c.Addresses)
	}
	if out := hostFetch(d, "10.203.0.1", "19090"); out != "api-up\n" {
		t.Errorf("published port: %q", out)
	}
	// Stopped, its namespace and veth go; started, they come back with
	// the same address.
	d.ctlOK("stop", "-t", "1", "api")
	if ents, _ := os.ReadDir(d.netnsDir()); len(ents) != 0 {
		t.Errorf("a stopped container keeps its network namespace: %v", ents)
	}
	d.ctlOK("start", "api")
	if c2 := inspect(t, d, "api"); c2.Addresses[0] != c.Addresses[0] {
		t.Errorf("address changed across a restart: %v -> %v", c.Addresses, c2.Addresses)
	}
	d.ctlOK("rm", "-f", "api")
	var n api.Network
	json.Unmarshal([]byte(d.ctlOK("network", "inspect", "front")), &n)
	if len(n.Endpoints) != 0 {
		t.Errorf("leases left: %v", n.Endpoints)
	}
	d.ctlOK("network", "rm", "front")
	noTraces(t, d)
}

// hostFetch connects from the daemon's network namespace.
func hostFetch(d *daemon, addr, port string) string {
	for i := 0; i < 10; i++ {
		out, err := d.inNet("/bin/busybox", "nc", "-w", "2", addr, port).Output()
		if err == nil && len(out) > 0 {
			return string(out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return ""
}
