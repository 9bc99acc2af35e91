#!/usr/bin/env python3
"""warren vs crun vs runc, measured side by side in one run.

Run through bench/bench.sh (root, private mount namespace). Every
repetition runs N iterations of each loop for every runtime, interleaved:
within an iteration the loops and the runtimes come in a shuffled order, so
drift on the machine hits all of them alike; the table shows the median
repetition and the ratio to crun and runc.

  lifecycle  create -> start -> state -> delete --force, N times (/bin/true)
  run        foreground `run` of /bin/true, N times
  exec       `exec <id> /bin/true` into one running container, N times
  peak RSS   largest resident set of any process of one `run` (getrusage
             of the waited-for process tree: the runtime and the helpers
             it forks, the container's init included), through the small
             static launcher bench/maxrss.c
  min mem    smallest linux.resources.memory.limit (binary search, 64 KiB
             steps) at which `run /bin/true` exits 0

Environment: BENCH_N (default 100), BENCH_REPS (default 5).
"""
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("BENCH_N", "100"))
KEEP = set()
REPS = int(os.environ.get("BENCH_REPS", "5"))


def sh(*args, check=True):
    # stderr to a file, not a pipe: a detached container keeps it open.
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=err)
        if check and r.returncode != 0:
            err.seek(0)
            sys.exit(f"bench: {' '.join(args)} exited {r.returncode}: {err.read().decode(errors='replace').strip()}")
        return r


def make_bundle(work, name, args, limit=None):
    b = os.path.join(work, name)
    root = os.path.join(b, "rootfs")
    for d in ("bin", "proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(shutil.which("busybox"), os.path.join(root, "bin", "busybox"))
    for a in ("true", "sleep", "sh"):
        os.symlink("busybox", os.path.join(root, "bin", a))
    subprocess.run([WARREN, "spec", "--bundle", b], check=True)
    p = os.path.join(b, "config.json")
    c = json.load(open(p))
    c["process"]["terminal"] = False
    c["process"]["args"] = args
    c["ociVersion"] = "1.0.2"  # crun 1.8 rejects newer versions
    if limit is not None:
        c["linux"].setdefault("resources", {})["memory"] = {"limit": limit}
    json.dump(c, open(p, "w"))
    return b


def set_limit(b, limit):
    p = os.path.join(b, "config.json")
    c = json.load(open(p))
    c["linux"].setdefault("resources", {})["memory"] = {"limit": limit}
    json.dump(c, open(p, "w"))


class Runtime:
    def __init__(self, name, binary, work):
        self.name, self.bin = name, binary
        self.root = os.path.join(work, "state-" + name)
        self.n = 0

    def cmd(self, *args):
        return [self.bin, "--root", self.root, *args]

    def next_id(self):
        self.n += 1
        return f"b{self.name[0]}{os.getpid()}x{self.n}"


def lifecycle(rt, b):
    i = rt.next_id()
    sh(*rt.cmd("create", "--bundle", b, i))
    sh(*rt.cmd("start", i))
    subprocess.run(rt.cmd("state", i), check=True, stdout=subprocess.DEVNULL)
    sh(*rt.cmd("delete", "--force", i))


def run_once(rt, b):
    sh(*rt.cmd("run", "--bundle", b, rt.next_id()))


def exec_once(rt, i):
    sh(*rt.cmd("exec", i, "/bin/true"))


def timed(fn, *a):
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def sweep_scratch():
    scratch = os.environ.get("BENCH_SCRATCH_UNIFIED")
    if scratch:  # the private tmpfs bench.sh put there, not a cgroup fs
        for e in os.listdir(scratch):
            if not any(k in e for k in KEEP):  # the running exec targets
                shutil.rmtree(os.path.join(scratch, e), ignore_errors=True)


def peak_rss_kib(rt, b):
    """Peak RSS of the largest process of one `run` (bench/maxrss.c)."""
    out = subprocess.run([MAXRSS, *rt.cmd("run", "--bundle", b, rt.next_id())],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    return int(out.split()[-1])


def min_memory(rt, b):
    def ok(limit):
        set_limit(b, limit)
        i = rt.next_id()
        r = subprocess.run(rt.cmd("run", "--bundle", b, i), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        subprocess.run(rt.cmd("delete", "--force", i), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0
    step = 64 << 10
    lo, hi = 0, 256 << 20  # lo fails (or untested), hi succeeds
    if not ok(hi):
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if mid <= lo:
            mid = lo + step
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def main():
    global WARREN, MAXRSS
    WARREN = os.path.abspath(sys.argv[1])
    MAXRSS = sys.argv[2]
    work = tempfile.mkdtemp(prefix="warren-bench.")
    os.chmod(work, 0o755)
    try:
        rts = [Runtime("warren", WARREN, work), Runtime("crun", shutil.which("crun"), work), Runtime("runc", shutil.which("runc"), work)]
        true_b = make_bundle(work, "true", ["/bin/true"])
        sleep_b = make_bundle(work, "sleep", ["/bin/sleep", "3600"])
        mem_b = {rt.name: make_bundle(work, "mem-" + rt.name, ["/bin/true"], limit=256 << 20) for rt in rts}

        sleepers = {}
        for rt in rts:
            i = rt.next_id()
            sh(*rt.cmd("run", "-d", "--bundle", sleep_b, i))
            sleepers[rt.name] = i
            KEEP.add(i)

        try:
            loops = measure_loops(rts, true_b, sleepers)
        finally:
            for rt in rts:
                sh(*rt.cmd("delete", "--force", sleepers[rt.name]), check=False)
        results(rts, loops, true_b, mem_b)
    finally:
        subprocess.run(["rm", "-rf", work])


def measure_loops(rts, true_b, sleepers):
    """Each repetition times N iterations of each loop for every runtime.
    Within an iteration the runtimes and the loops come in a shuffled
    order, so that drift on the machine (a small VM's neighbours come and
    go within seconds) hits every runtime alike; a loop's time is the sum
    of its N iterations."""
    loops = {"lifecycle": {}, "run": {}, "exec": {}}
    for rt in rts:  # warm-up: caches, first-use directories
        sh(*rt.cmd("run", "--bundle", true_b, rt.next_id()))
    steps = {
        "lifecycle": lambda rt: timed(lifecycle, rt, true_b),
        "run": lambda rt: timed(run_once, rt, true_b),
        "exec": lambda rt: timed(exec_once, rt, sleepers[rt.name]),
    }
    for _ in range(REPS):
        tot = {name: {rt.name: 0.0 for rt in rts} for name in steps}
        for _ in range(N):
            for name in random.sample(list(steps), len(steps)):
                for rt in random.sample(rts, len(rts)):
                    tot[name][rt.name] += steps[name](rt)
        sweep_scratch()
        for name in steps:
            for rt in rts:
                loops[name].setdefault(rt.name, []).append(tot[name][rt.name])
    return loops


def results(rts, loops, true_b, mem_b):
    rss = {rt.name: statistics.median(peak_rss_kib(rt, true_b) for _ in range(5)) for rt in rts}
    mem = {rt.name: min_memory(rt, mem_b[rt.name]) for rt in rts}

    print(f"warren vs crun vs runc, {REPS} repetitions of {N} each (median repetition), kernel {os.uname().release}")
    print(f"{'measure':36} {'warren':>10} {'crun':>10} {'runc':>10} {'w/crun':>8} {'w/runc':>8}")
    for name, label in (("lifecycle", "create-start-state-delete"), ("run", "run /bin/true"), ("exec", "exec /bin/true")):
        m = {k: statistics.median(v) for k, v in loops[name].items()}
        print(f"{label + ' x' + str(N) + ' (s)':36} {m['warren']:10.2f} {m['crun']:10.2f} {m['runc']:10.2f} "
              f"{m['warren']/m['crun']:8.2f} {m['warren']/m['runc']:8.2f}")
    print(f"{'peak RSS of one run (MiB)':36} {rss['warren']/1024:10.1f} {rss['crun']/1024:10.1f} {rss['runc']/1024:10.1f} "
          f"{rss['warren']/rss['crun']:8.2f} {rss['warren']/rss['runc']:8.2f}")

    def kib(v):
        return "fails" if v is None else f"{v >> 10} KiB"
    print(f"{'min memory limit for run':36} {kib(mem['warren']):>10} {kib(mem['crun']):>10} {kib(mem['runc']):>10}")


if __name__ == "__main__":
    main()
