#!/usr/bin/env python3
"""warren's networking next to the CNI reference plugins, and 200 pods on one
bridge through the engine; everything inside a private network namespace.

The host's network (links, routes, sysctls, nftables, iptables) is never
touched: this script re-executes itself under `unshare --net --mount`
(private propagation) and refuses to go on if its network namespace is
still the one it was started in. warrend, warrenctl, the CNI plugins and
the namespaces the benchmark makes all live in that private namespace, and
the namespaces are pinned under a temporary directory, not /run/netns.

1.  bench/netbench (Go, built by `make bench-network`): per container,
    network setup + teardown with warren's internal/network (NewNetns,
    Allocate, Attach with one published port | Detach, DeleteNetns) vs the
    CNI plugins of Debian's containernetworking-plugins (loopback, bridge
    with isGateway, ipMasq, hairpinMode and host-local IPAM on the same
    /16, portmap chained with prevResult and one port) invoked per the CNI
    spec; NETBENCH_N (default 100) each, alternating blocks of
    NETBENCH_BLOCK (10); median and mean, ratio warren/CNI. Then 1b: the
    growth trend, NETBENCH_GROW (200) kept at once, each side, one port
    each (NETBENCH_GROW_PORTS=0: none, and CNI without portmap).
2.  The engine: a private warrend (--root, --run-root, --socket and
    --netns-dir in the temporary directory) with a busybox image imported
    (bench/engine.py's build_layout), `warrenctl network create --subnet
    10.210.0.0/16 benchnet`, then `warrenctl pod create --network benchnet
    --name pN` x NETBENCH_PODS (200), timed one by one; distinct addresses
    checked (pod ls --format json); pod-to-pod reachability (busybox nc
    from a container in the last pod to one in the first); `warrenctl pod
    rm` x200, timed; then nothing may be left: no wrv-* veth, no
    warren-ep rule in `nft list ruleset`, no pinned netns. Rounds
    (NETBENCH_ROUNDS, default "plain,publish"): plain is the command
    above; publish adds `-p 20000+N:8080` to each pod, so every pod adds
    a DNAT rule (and its published port is dialled through 127.0.0.1 in
    the reachability check).

Usage: bench/network.py [BINDIR [NETBENCH]]   (root; `make bench-network`)
       BINDIR holds warren, warrenctl, warrend, warren-monitor (default
       bin); NETBENCH is the built bench/netbench (default _build/netbench).
Environment: NETBENCH_N, NETBENCH_BLOCK, NETBENCH_GROW, NETBENCH_GROW_PORTS,
NETBENCH_PODS, NETBENCH_ROUNDS, NETBENCH_ONLY (netbench or engine: one part
alone). Takes about 5 minutes on 2 cores; the CNI side is most of part 1.
"""
import ipaddress
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # nothing left in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine import Failed, build_layout, sh, unmount_under  # noqa: E402

PROG = "bench/network.py"
PODS = int(os.environ.get("NETBENCH_PODS", "200"))
ROUNDS = [r for r in os.environ.get("NETBENCH_ROUNDS", "plain,publish").split(",") if r]
ONLY = os.environ.get("NETBENCH_ONLY", "")
SUBNET = "10.210.0.0/16"
NET = "benchnet"
INNER = "WARREN_NETBENCH_INNER"
OUTER = "NETBENCH_OUTER_NETNS"


def netns_id():
    st = os.stat("/proc/self/ns/net")
    return f"{st.st_dev}:{st.st_ino}"


def reexec():
    """Into a private network and mount namespace, or refuse."""
    if os.environ.get(INNER):
        if os.environ.get(OUTER, "") in ("", netns_id()):
            sys.exit(f"{PROG}: still in the host's network namespace: refusing")
        return
    for t in ("unshare", "ip", "nft", "busybox", "iptables"):
        if shutil.which(t) is None:
            sys.exit(f"{PROG}: missing {t} (apt-get install util-linux iproute2 nftables busybox-static iptables)")
    if not os.path.exists("/usr/lib/cni/bridge"):
        sys.exit(f"{PROG}: missing /usr/lib/cni/bridge (apt-get install containernetworking-plugins)")
    env = dict(os.environ, **{INNER: "1", OUTER: netns_id()})
    args = ["unshare", "--net", "--mount", "--propagation", "private", "--",
            sys.executable, os.path.abspath(__file__), *sys.argv[1:]]
    os.execvpe("unshare", args, env)


class Engine:
    def __init__(self, bindir, work):
        self.bin = {b: os.path.join(bindir, b) for b in ("warren", "warrenctl", "warrend", "warren-monitor")}
        self.dir = os.path.join(work, "warren")
        self.netns = os.path.join(work, "netns")
        self.sock = os.path.join(self.dir, "api.sock")
        self.log = open(os.path.join(work, "warrend.log"), "w+")
        self.daemon = None
        self.pod_ids = []

    def start(self, layout):
        for p in self.bin.values():
            if not os.access(p, os.X_OK):
                raise Failed(f"{p} missing (make warren warrenctl warrend warren-monitor)")
        os.makedirs(self.dir)
        sh(self.bin["warrenctl"], "--root", self.dir, "image", "import", "--progress", "none",
           "--name", "busybox", f"oci:{layout}:busybox")
        self.daemon = subprocess.Popen(
            [self.bin["warrend"], "--root", self.dir, "--run-root", os.path.join(self.dir, "run"),
             "--socket", self.sock, "--netns-dir", self.netns, "--monitor", self.bin["warren-monitor"],
             "--runtime", "warren=" + self.bin["warren"], "--default-runtime", "warren", "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                raise Failed(f"warrend exited {self.daemon.returncode}: {self.daemon_log()}")
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise Failed(f"warrend: no socket {self.sock} after 30 s: {self.daemon_log()}")

    def daemon_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-2000:].strip()

    def ctl(self, *args, timeout=120, out=False):
        return sh(self.bin["warrenctl"], "--host", "unix://" + self.sock, *args, timeout=timeout, out=out)

    def close(self):
        """Remove whatever is left, even if the engine misbehaves."""
        if self.daemon and self.daemon.poll() is None:
            try:
                ids = self.ctl("ps", "-a", "-q", out=True).split()
                if ids:
                    self.ctl("rm", "-f", *ids, timeout=300)
                pods = [p["name"] for p in json.loads(self.ctl("pod", "ls", "--format", "json", out=True) or "null") or []]
                for k in range(0, len(pods), 50):
                    self.ctl("pod", "rm", "-f", *pods[k:k + 50], timeout=300)
                if any(n.get("name") == NET for n in self.networks()):
                    self.ctl("network", "rm", NET)
            except (Failed, ValueError) as e:
                print(f"{PROG}: engine cleanup: {e}", file=sys.stderr)
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(10)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        rroot = os.path.join(self.dir, "run", "warren")
        if os.path.isdir(rroot):
            try:
                for i in sh(self.bin["warren"], "--root", rroot, "list", "-q", out=True).split():
                    subprocess.run([self.bin["warren"], "--root", rroot, "delete", "--force", i],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except Failed:
                pass
        # Pod cgroups that a crashed engine could not remove (empty ones only).
        for base, dirs, _ in os.walk("/sys/fs/cgroup"):
            if os.path.basename(base) == "warren":
                for d in dirs:
                    if any(d == "pod-" + i[:12] for i in self.pod_ids):
                        try:
                            os.rmdir(os.path.join(base, d))
                        except OSError:
                            pass
                dirs[:] = []
        self.log.close()

    def networks(self):
        return json.loads(self.ctl("network", "ls", "--format", "json", out=True) or "null") or []


def timed(f, *args, **kw):
    t = time.perf_counter()
    f(*args, **kw)
    return time.perf_counter() - t


def leftovers(netns_dir):
    """What a removed pod may leave: veths, endpoint rules, netns pins."""
    links = [ln.split(":")[1].strip().split("@")[0] for ln in
             subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()]
    veths = [n for n in links if n.startswith("wrv-")]
    rules = [ln.strip() for ln in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True,
                                                 check=True).stdout.splitlines() if "warren-ep" in ln]
    pins = sorted(os.listdir(netns_dir)) if os.path.isdir(netns_dir) else []
    return veths, rules, pins


def nft_rules():
    """Rules (lines with a verdict or statement) in this namespace's ruleset."""
    n = 0
    for ln in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout.splitlines():
        s = ln.strip()
        if s and not s.startswith(("table ", "chain ", "set ", "type ", "flags ", "elements ", "}", "policy ", "#")) \
                and not s.endswith("{"):
            n += 1
    return n


def reach(eng, first, last, addr, publish):
    """A container in pod `first` answers on 8080, one in pod `last` dials
    it with busybox nc; with publish, the host (this namespace) also dials
    127.0.0.1:<first's port>. Returns a list of what was checked."""
    done = []
    srv = eng.ctl("run", "-d", "--pod", first, "--name", "netbench-srv", "busybox",
                  "sh", "-c", "while true; do echo pong | busybox nc -l -p 8080; done", out=True).strip()
    try:
        got = ""
        for _ in range(20):
            try:
                got = eng.ctl("run", "--rm", "--pod", last, "busybox", "sh", "-c",
                              f"busybox nc -w 2 {addr} 8080 </dev/null", out=True, timeout=30)
            except Failed:
                got = ""
            if "pong" in got:
                break
            time.sleep(0.2)
        if "pong" not in got:
            raise Failed(f"pod {last} cannot reach pod {first} at {addr}:8080 (got {got!r})")
        done.append(f"pod {last} -> pod {first} {addr}:8080 (busybox nc): ok")
        if publish:
            port = publish
            data = b""
            for _ in range(20):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                        s.settimeout(2)
                        data = s.recv(16)
                except OSError:
                    data = b""
                if b"pong" in data:
                    break
                time.sleep(0.2)
            if b"pong" not in data:
                raise Failed(f"published port 127.0.0.1:{port} of pod {first} does not answer (got {data!r})")
            done.append(f"engine's netns 127.0.0.1:{port} -> pod {first}:8080 (published port, DNAT): ok")
    finally:
        eng.ctl("rm", "-f", srv)
    return done


def pod_round(eng, publish):
    """One round of PODS pods: create, check, reach, remove, check."""
    names = [f"p{i}" for i in range(1, PODS + 1)]
    creates, rms = [], []
    before = nft_rules()
    for i, n in enumerate(names, 1):
        args = ["pod", "create", "--network", NET, "--name", n]
        if publish:
            args += ["-p", f"{20000 + i}:8080"]
        creates.append(timed(eng.ctl, *args))
    pods = json.loads(eng.ctl("pod", "ls", "--format", "json", out=True))
    ours = [p for p in pods if p["name"] in set(names)]
    eng.pod_ids += [p["id"] for p in ours]
    addrs = [a for p in ours for a in p.get("addresses") or []]
    net = ipaddress.ip_network(SUBNET)
    if len(ours) != PODS or len(addrs) != PODS or len(set(addrs)) != PODS \
            or not all(ipaddress.ip_address(a) in net for a in addrs):
        raise Failed(f"want {PODS} pods with distinct addresses in {SUBNET}: {len(ours)} pods, "
                     f"{len(addrs)} addresses, {len(set(addrs))} distinct")
    rules_up = nft_rules()
    veths_up = len(leftovers(eng.netns)[0])
    by = {p["name"]: p for p in ours}
    checks = [f"{PODS} pods, {len(set(addrs))} distinct addresses in {SUBNET}: ok"]
    checks += reach(eng, names[0], names[-1], by[names[0]]["addresses"][0], 20001 if publish else 0)
    for n in names:
        rms.append(timed(eng.ctl, "pod", "rm", n))
    left = json.loads(eng.ctl("pod", "ls", "--format", "json", out=True) or "null") or []
    veths, rules, pins = leftovers(eng.netns)
    if left or veths or rules or pins:
        raise Failed(f"after pod rm: {len(left)} pods, veths {veths[:5]}, rules {rules[:5]}, netns pins {pins[:5]}")
    checks.append("after pod rm x%d: no pod, no wrv-* veth, no warren-ep rule, no netns pin: ok" % PODS)
    return {"create": creates, "rm": rms, "checks": checks, "rules": (before, rules_up, nft_rules()),
            "veths": veths_up}


def report_round(name, publish, r):
    k = min(20, PODS)
    cmd = "pod create --network benchnet --name pN" + (" -p 2000N:8080" if publish else "")
    print(f"\n2{'ab'[ROUNDS.index(name)] if len(ROUNDS) > 1 else ''}. Engine, round '{name}': "
          f"`warrenctl {cmd}` x{PODS}, then `warrenctl pod rm pN` x{PODS}")
    print(f"{'measure':44} {'create':>10} {'rm':>10}")

    def row(label, f, fmt=".1f"):
        print(f"{label:44} {f(r['create']):>10{fmt}} {f(r['rm']):>10{fmt}}")
    row(f"total of {PODS} (s)", sum, ".2f")
    row("per pod: median (ms)", lambda v: statistics.median(v) * 1000)
    row("per pod: mean (ms)", lambda v: statistics.mean(v) * 1000)
    row(f"per pod: median of the first {k} (ms)", lambda v: statistics.median(v[:k]) * 1000)
    row(f"per pod: median of the last {k} (ms)", lambda v: statistics.median(v[-k:]) * 1000)
    row(f"per pod: mean of the first {k} (ms)", lambda v: statistics.mean(v[:k]) * 1000)
    row(f"per pod: mean of the last {k} (ms)", lambda v: statistics.mean(v[-k:]) * 1000)
    row("last/first, medians (x)", lambda v: statistics.median(v[-k:]) / statistics.median(v[:k]), ".2f")
    for key in ("create", "rm"):
        buckets = [statistics.median(r[key][j:j + k]) * 1000 for j in range(0, PODS, k)]
        print(f"  {key} median per {k} pods (ms): " + " ".join(f"{b:.0f}" for b in buckets))
    b, up, after = r["rules"]
    print(f"  nft rules in the engine's netns: {b} before, {up} with {PODS} pods, {after} after; "
          f"{r['veths']} wrv-* veths with {PODS} pods")
    for c in r["checks"]:
        print("  " + c)


def engine_part(bindir, work):
    layout = os.path.join(work, "layout")
    build_layout(layout)
    eng = Engine(bindir, work)
    try:
        eng.start(layout)
        eng.ctl("network", "create", "--subnet", SUBNET, NET)
        for name in ROUNDS:
            if name not in ("plain", "publish"):
                raise Failed(f"NETBENCH_ROUNDS: unknown round {name!r} (plain, publish)")
            r = pod_round(eng, name == "publish")
            report_round(name, name == "publish", r)
        eng.ctl("network", "rm", NET)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
        if "wrn-" in links or "table inet warren" in ruleset:
            raise Failed("after network rm: a wrn-* bridge or table inet warren is left")
        print("  after network rm: no wrn-* bridge, no table inet warren: ok")
    finally:
        eng.close()


def main():
    if os.geteuid() != 0:
        sys.exit(f"{PROG}: run as root")
    if len(sys.argv) > 3:
        sys.exit(__doc__)
    reexec()
    bindir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "bin")
    netbench = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "_build/netbench")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work = tempfile.mkdtemp(prefix="warren-net-bench.")
    os.chmod(work, 0o755)
    failed = None
    try:
        if ONLY in ("", "netbench"):
            r = subprocess.run([netbench, "-dir", os.path.join(work, "netbench")], stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                failed = f"netbench exited {r.returncode}"
        sys.stdout.flush()
        if ONLY in ("", "engine"):
            print(f"\nwarrend in this benchmark's network namespace; --netns-dir {os.path.join(work, 'netns')}")
            sys.stdout.flush()
            engine_part(bindir, work)
    except Failed as e:
        failed = str(e)
    finally:
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(f"{PROG}: {failed}")


if __name__ == "__main__":
    main()
