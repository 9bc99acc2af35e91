#!/usr/bin/env python3
"""warren's engine (warrend + warren-monitor) vs podman (+ conmon), side by side.

Builds a busybox OCI image by hand (one layer: /bin/busybox and the
sh, true and sleep links), imports the same layout into a private warrend
(own --root, --run-root and socket) and into a private podman storage
(own --root, --runroot, --tmpdir), then measures in one run:

  run --rm   `warrenctl run --rm IMAGE true` vs
             `podman run --rm --network none IMAGE true`, BENCH_RUNS times
             each (default 50) after one warm-up each, in alternating
             blocks of BENCH_BLOCK (default 5; who goes first in a pair of
             blocks is drawn at random): median per run and total
  idle memory  BENCH_CONTAINERS (default 200) detached `sleep 3600`
             containers per engine (`run -d`), one engine after the other:
             Pss and Rss (/proc/PID/smaps_rollup) of the per-container
             monitors (warren-monitor; podman's conmon) summed and divided
             by N, and warrend's own Pss (podman has no daemon). The
             containers' own processes are not counted.

Each engine only touches what it created (a private store for each, and a
label on every container); everything is removed at the end.

Usage: bench/engine.py [BINDIR]   (root; BINDIR holds warren, warrenctl,
       warrend and warren-monitor, default bin; `make bench-engine`)
Environment: BENCH_RUNS, BENCH_BLOCK, BENCH_CONTAINERS, BENCH_ONLY
(warren or podman: run one half alone).
"""
import glob
import gzip
import hashlib
import io
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

RUNS = int(os.environ.get("BENCH_RUNS", "50"))
BLOCK = max(1, int(os.environ.get("BENCH_BLOCK", "5")))
N = int(os.environ.get("BENCH_CONTAINERS", "200"))
ONLY = os.environ.get("BENCH_ONLY", "")
LABEL = f"warren-bench-engine={os.getpid()}"
PROG = "bench/engine.py"


class Failed(Exception):
    """A command failed; .why is its last line of error output."""

    def __init__(self, msg, why=None):
        super().__init__(msg)
        self.why = why or msg.splitlines()[-1]


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit(f"{PROG}: missing " + ", ".join(missing) + " (apt-get install podman runc busybox-static)")


def sh(*args, timeout=120, out=False):
    """Run args; stdout (returned when out) and stderr to files, not pipes:
    a detached container or its monitor may keep an inherited pipe open."""
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        try:
            r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=o, stderr=e, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failed(f"{' '.join(args)}: no exit after {timeout} s", f"{args[0]}: no exit after {timeout} s")
        o.seek(0)
        e.seek(0)
        if r.returncode != 0:
            msg = e.read().decode(errors="replace").strip() or o.read().decode(errors="replace").strip()
            last = msg.splitlines()[-1] if msg else f"exit status {r.returncode}"
            raise Failed(f"{' '.join(args)} exited {r.returncode}: {msg[-2000:]}", last[-300:])
        return o.read().decode() if out else None


# --- the image ------------------------------------------------------------

def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def build_layout(layout):
    """An OCI layout with one image, ref busybox: a gzip layer of busybox."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        def add(name, kind, mode, data=b"", link=""):
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, 1_600_000_000, link
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data else None)
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp"):
            add(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755)
        add("bin/busybox", tarfile.REGTYPE, 0o755, open(shutil.which("busybox"), "rb").read())
        for a in ("sh", "true", "sleep"):
            add("bin/" + a, tarfile.SYMTYPE, 0o777, link="busybox")
        add("etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/:/bin/sh\n")
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\n")
    tar = raw.getvalue()
    ld, ls = write_blob(layout, gzip.compress(tar, mtime=0))
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}
    cd, cs = write_blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}]}
    md, ms = write_blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "busybox"}}]}
    json.dump(index, open(os.path.join(layout, "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(layout, "oci-layout"), "w"))


# --- /proc ------------------------------------------------------------------

def rollup(pid):
    """(Pss, Rss) in KiB from /proc/PID/smaps_rollup; None if it is gone."""
    v = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, rest = line.partition(":")
                if k in ("Pss", "Rss"):
                    v[k] = int(rest.split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return v.get("Pss", 0), v.get("Rss", 0)


def processes():
    """pid -> (ppid, argv) of every process."""
    ps = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
            argv = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        ps[int(p)] = (ppid, [a.decode(errors="replace") for a in argv if a])
    return ps


def exe(pid):
    """The executable's path (as it was, if it has since been replaced)."""
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return ""


def memory_of(pids):
    """Sum of Pss and of Rss (KiB) over pids; the number measured."""
    pss = rss = n = 0
    for p in pids:
        r = rollup(p)
        if r:
            pss, rss, n = pss + r[0], rss + r[1], n + 1
    return pss, rss, n


def unmount_under(path):
    """Lazily unmount every mount at or below path, deepest first."""
    path = os.path.realpath(path)
    mps = []
    for line in open("/proc/self/mountinfo"):
        mp = line.split()[4].encode().decode("unicode_escape")
        if mp == path or mp.startswith(path + "/"):
            mps.append(mp)
    for mp in sorted(mps, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


# --- the engines -------------------------------------------------------------

class Warren:
    name = "warren"

    def __init__(self, bindir, work):
        self.bin = {b: os.path.join(bindir, b) for b in ("warren", "warrenctl", "warrend", "warren-monitor")}
        self.dir = os.path.join(work, "warren")
        self.sock = os.path.join(self.dir, "api.sock")
        self.daemon = None
        self.ids = []
        self.log = open(os.path.join(work, "warrend.log"), "w+")
        self.image = "busybox"

    def setup(self, layout):
        for p in self.bin.values():
            if not os.access(p, os.X_OK):
                raise Failed(f"{p} missing (make warren warrenctl warrend warren-monitor)")
        os.makedirs(self.dir)
        sh(self.bin["warrenctl"], "--root", self.dir, "image", "import", "--progress", "none",
           "--name", self.image, f"oci:{layout}:busybox")
        self.start_daemon()

    def start_daemon(self):
        self.daemon = subprocess.Popen(
            [self.bin["warrend"], "--root", self.dir, "--run-root", os.path.join(self.dir, "run"),
             "--socket", self.sock, "--monitor", self.bin["warren-monitor"],
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

    def ctl(self, *args):
        return [self.bin["warrenctl"], "--host", "unix://" + self.sock, *args]

    def describe(self):
        v = [sh(self.bin[b], "--version", out=True).strip().splitlines()[0] for b in ("warrend", "warren")]
        return f"{'; '.join(v)}; monitor {self.bin['warren-monitor']}"

    def run_true(self):
        sh(*self.ctl("run", "--rm", "--network", "none", "-l", LABEL, self.image, "true"))

    def run_sleeper(self):
        i = sh(*self.ctl("run", "-d", "--network", "none", "-l", LABEL, self.image, "sleep", "3600"), out=True).strip()
        self.ids.append(i)

    def monitors(self):
        """The warren-monitor of each container: state.monitorPid from
        inspect, else (older engines) warrend's warren-monitor children."""
        pids = []
        for k in range(0, len(self.ids), 50):
            for c in json.loads(sh(*self.ctl("inspect", *self.ids[k:k + 50]), out=True)):
                pids.append(c.get("state", {}).get("monitorPid", 0))
        mon = os.path.realpath(self.bin["warren-monitor"])
        if pids and all(pids):
            return [p for p in pids if exe(p) == mon]
        return self.children()

    def children(self):
        mon = os.path.realpath(self.bin["warren-monitor"])
        return [p for p, (pp, _) in processes().items() if pp == self.daemon.pid and exe(p) == mon]

    def daemon_pids(self):
        return [self.daemon.pid]

    def remove_all(self):
        for k in range(0, len(self.ids), 50):
            sh(*self.ctl("rm", "-f", *self.ids[k:k + 50]), timeout=300)
        self.ids = []

    def close(self):
        """Remove what is left, even if the engine misbehaves."""
        if self.daemon and self.daemon.poll() is None:
            try:
                ids = sh(*self.ctl("ps", "-a", "-q"), out=True).split()
                if ids:
                    self.ids = ids
                    self.remove_all()
            except Failed as e:
                print(f"{PROG}: warren cleanup: {e}", file=sys.stderr)
        orphans = []
        if self.daemon:
            orphans = self.children()
            if self.daemon.poll() is None:
                self.daemon.send_signal(signal.SIGTERM)
                try:
                    self.daemon.wait(10)
                except subprocess.TimeoutExpired:
                    self.daemon.kill()
                    self.daemon.wait()
        # Containers the engine could not remove: through the runtime.
        rroot = os.path.join(self.dir, "run", "warren")
        if os.path.isdir(rroot):
            try:
                for i in sh(self.bin["warren"], "--root", rroot, "list", "-q", out=True).split():
                    subprocess.run([self.bin["warren"], "--root", rroot, "delete", "--force", i],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except Failed:
                pass
        for p in orphans:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


class Podman:
    name = "podman"

    def __init__(self, work):
        self.dir = os.path.join(work, "podman")
        self.base = ["podman", "--root", os.path.join(self.dir, "storage"), "--runroot", os.path.join(self.dir, "run"),
                     "--tmpdir", os.path.join(self.dir, "tmp"), "--storage-driver", "overlay"]
        self.image = "localhost/warren-bench-busybox"
        self.ids = []
        self.gopts = self.runopts = []
        self.errs = []
        # podman's shared cgroup parent (cgroupfs manager): removed at the
        # end if this run made it and it is empty.
        self.cgparents = [d for d in (os.path.join(c, "libpod_parent") for c in glob.glob("/sys/fs/cgroup/*"))
                          if not os.path.exists(d)]

    def setup(self, layout):
        sh(*self.base, "pull", "-q", f"oci:{layout}:busybox", timeout=300)
        img = sh(*self.base, "images", "-q", "--no-trunc", out=True).split()[0]
        sh(*self.base, "tag", img, self.image)
        # What podman needs on this host, found by trying, least first:
        # crun 1.8 refuses a hybrid cgroup layout (runc does not), and as
        # root podman asks for nofile and nproc limits of 1048576 and up,
        # above this process's hard limits when it lacks CAP_SYS_RESOURCE
        # (podman itself caps its nproc at kernel.pid_max). Without
        # systemd podman picks cgroupfs and the file event log by itself;
        # the last set names them in case it does not.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        pid_max = int(open("/proc/sys/kernel/pid_max").read())
        if nproc == resource.RLIM_INFINITY or nproc > pid_max:
            nproc = pid_max
        runc = ["--runtime", "runc"]
        ulimits = ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]
        cgfs = ["--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        for self.gopts, self.runopts in (([], []), (runc, []), ([], ulimits), (runc, ulimits), (cgfs + runc, ulimits)):
            try:
                self.run_true()
                break
            except Failed as e:
                self.errs.append((" ".join(self.gopts + self.runopts) or "no option") + ": " + e.why)
                self.cleanup_containers()
        else:
            raise Failed("podman run fails with every option set tried:\n  " + "\n  ".join(self.errs))
        rt, info = sh(*self.cmd("info", "--format", "{{.Host.OCIRuntime.Path}}|cgroups {{.Host.CgroupsVersion}} "
                                "{{.Host.CgroupManager}}, events {{.Host.EventLogger}}, log {{.Host.LogDriver}}, "
                                "{{.Host.Conmon.Version}}"), out=True).strip().split("|", 1)
        self.info = "; ".join([sh("podman", "--version", out=True).strip(),
                               sh(rt, "--version", out=True).splitlines()[0], info.replace("\n", " ")])

    def cmd(self, *args):
        return [*self.base, *self.gopts, *args]

    def describe(self):
        return self.info

    def options(self):
        return " ".join(self.gopts + self.runopts) or "none"

    def run_true(self):
        sh(*self.cmd("run", *self.runopts, "--rm", "--network", "none", "--label", LABEL, self.image, "true"))

    def run_sleeper(self):
        i = sh(*self.cmd("run", *self.runopts, "-d", "--network", "none", "--label", LABEL, self.image, "sleep", "3600"),
               out=True).strip()
        self.ids.append(i)

    def monitors(self):
        """The conmon of each container this run started (-c ID)."""
        ids = set(self.ids)
        mons = []
        for p, (_, argv) in processes().items():
            if argv and os.path.basename(argv[0]) == "conmon":
                for k, a in enumerate(argv[:-1]):
                    if a in ("-c", "--cid") and argv[k + 1] in ids:
                        mons.append(p)
                        break
        return mons

    def daemon_pids(self):
        return []

    def remove_all(self):
        sh(*self.cmd("rm", "-f", "-t", "0", "--filter", "label=" + LABEL), timeout=600)
        self.ids = []

    def cleanup_containers(self):
        subprocess.run(self.cmd("rm", "-f", "-t", "0", "--filter", "label=" + LABEL),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)

    def close(self):
        if os.path.isdir(self.dir):
            self.cleanup_containers()
        for d in self.cgparents:
            if os.path.isdir(d):
                for sub, _, _ in sorted(os.walk(d), key=lambda w: -len(w[0])):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass


# --- the measures ------------------------------------------------------------

def time_runs(engines, errors):
    """Seconds of each `run --rm true`, alternating blocks of BLOCK runs.
    An engine that fails is reported and left out; the others go on."""
    times = {e.name: [] for e in engines}
    live = []
    for e in engines:  # warm-up: caches, first-use directories
        try:
            e.run_true()
            live.append(e)
        except Failed as x:
            errors.setdefault(e.name, "run --rm: " + str(x))
    while live and any(len(times[e.name]) < RUNS for e in live):
        for e in random.sample(live, len(live)):
            try:
                for _ in range(min(BLOCK, RUNS - len(times[e.name]))):
                    t = time.perf_counter()
                    e.run_true()
                    times[e.name].append(time.perf_counter() - t)
            except Failed as x:
                errors.setdefault(e.name, f"run --rm (after {len(times[e.name])} runs): {x}")
                times[e.name] = []
                live.remove(e)
    return times


def idle_memory(e):
    """N detached sleepers; monitors' and daemon's memory; then removes them."""
    before = memory_of(e.daemon_pids())[0]
    start = None
    t = time.perf_counter()
    try:
        for _ in range(N):
            e.run_sleeper()
        start = time.perf_counter() - t
        time.sleep(3)  # let the last ones settle
        samples = []
        for k in range(3):
            if k:
                time.sleep(1)
            samples.append((*memory_of(e.monitors()), memory_of(e.daemon_pids())[0]))
        pss, rss, n, dpss = (statistics.median(s) for s in zip(*samples))
        if n != N:
            raise Failed(f"{e.name}: found {n} monitors for {N} containers")
    finally:
        t = time.perf_counter()
        e.remove_all()
        rm = time.perf_counter() - t
    return {"start": start, "rm": rm, "mon_pss": pss, "mon_rss": rss, "n": n,
            "daemon": bool(e.daemon_pids()), "daemon_pss": dpss, "daemon_pss_before": before}


def main():
    if os.geteuid() != 0:
        sys.exit(f"{PROG}: run as root")
    if len(sys.argv) > 2:
        sys.exit(__doc__)
    bindir = os.path.abspath(sys.argv[1] if len(sys.argv) == 2 else "bin")
    need("busybox", *([] if ONLY == "warren" else ["podman"]))
    work = tempfile.mkdtemp(prefix="warren-engine-bench.")
    os.chmod(work, 0o755)
    made, engines, errors = [], [], {}
    try:
        layout = os.path.join(work, "layout")
        build_layout(layout)
        for e in (Warren(bindir, work), Podman(work)):
            if ONLY and e.name != ONLY:
                continue
            made.append(e)
            try:
                e.setup(layout)
                engines.append(e)
            except Failed as x:
                errors[e.name] = f"setup: {x}"
        if not engines:
            sys.exit(f"{PROG}: no engine works:\n" + "\n".join(f"{k}: {v}" for k, v in errors.items()))

        times = time_runs(engines, errors)
        mem = {}
        for e in random.sample(engines, len(engines)):
            try:
                mem[e.name] = idle_memory(e)
            except Failed as x:
                errors.setdefault(e.name, f"idle memory: {x}")
        report(engines, times, mem, errors)
    finally:
        for e in made:
            try:
                e.close()
            except Exception as x:  # keep cleaning up the others
                print(f"{PROG}: cleanup of {e.name}: {x}", file=sys.stderr)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    if errors:
        for k, v in errors.items():
            print(f"{PROG}: {k}: {v}", file=sys.stderr)
        sys.exit(1)


def report(engines, times, mem, errors):
    names = ("warren", "podman")

    def row(label, vals, fmt, ratio=True):
        w, p = vals
        cells = [f"{v:{fmt}}" if v is not None else ("fails" if n in errors else "-") for n, v in zip(names, vals)]
        r = f"{w / p:.2f}" if ratio and w is not None and p else "-"
        print(f"{label:42} {cells[0]:>10} {cells[1]:>10} {r:>7}")

    print(f"warren engine vs podman, kernel {os.uname().release}, {os.cpu_count()} CPUs")
    for e in engines:
        print(f"  {e.name}: {e.describe()}")
        if e.name == "podman":
            print(f"  podman options needed on this host: {e.options()}")
            for x in e.errs:
                print(f"    with {x}")
    for n, x in errors.items():
        print(f"  {n} FAILED: {x[:400]}")
    print(f"{'measure':42} {'warren':>10} {'podman':>10} {'w/p':>7}")
    if times:
        row("run --rm IMAGE true: median per run (ms)",
            [statistics.median(times[n]) * 1000 if times.get(n) else None for n in names], ".1f")
        row(f"run --rm IMAGE true: total of {RUNS} (s)", [sum(times[n]) if times.get(n) else None for n in names], ".2f")

    def m(f):
        return [f(mem[n]) if n in mem else None for n in names]
    if mem:
        row(f"run -d IMAGE sleep 3600: {N} in a row (s)", m(lambda v: v["start"]), ".2f")
        row("monitor Pss per container (KiB)", m(lambda v: v["mon_pss"] / v["n"]), ".0f")
        row("monitor Rss per container (KiB)", m(lambda v: v["mon_rss"] / v["n"]), ".0f")
        row(f"monitors' Pss, sum of {N} (MiB)", m(lambda v: v["mon_pss"] / 1024), ".1f")
        row(f"monitors' Rss, sum of {N} (MiB)", m(lambda v: v["mon_rss"] / 1024), ".1f")
        row("daemon Pss, no container (MiB)", m(lambda v: v["daemon_pss_before"] / 1024 if v["daemon"] else None), ".1f", False)
        row(f"daemon Pss, {N} running (MiB)", m(lambda v: v["daemon_pss"] / 1024 if v["daemon"] else None), ".1f", False)
        row("(monitors + daemon) Pss per container (KiB)", m(lambda v: (v["mon_pss"] + v["daemon_pss"]) / v["n"]), ".0f")
        row(f"rm -f of the {N} (s)", m(lambda v: v["rm"]), ".2f")
    print("Pss and Rss from /proc/PID/smaps_rollup, median of 3 samples 1 s apart; the containers' own")
    print("processes are not counted; podman has no daemon (-).")


if __name__ == "__main__":
    main()
