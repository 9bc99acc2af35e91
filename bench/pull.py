#!/usr/bin/env python3
"""Image pull + unpack: warrenctl vs skopeo+umoci vs podman, side by side.

Builds a multi-layer OCI image (busybox plus layers of small and large
files), serves it from Debian's docker-registry on a loopback port, and
times, in a shuffled order each repetition, from an empty store each time:

  warrenctl  warrenctl image pull (fetch, verify, unpack every layer)
  skopeo+umoci  skopeo copy docker:// -> oci: layout, then umoci unpack
  podman     podman pull into a fresh overlay storage

Usage: bench/pull.py path/to/warrenctl   (root; BENCH_REPS, default 5)
"""
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request

REPS = int(os.environ.get("BENCH_REPS", "5"))


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        sys.exit("bench/pull.py: missing " + ", ".join(missing) + " (apt-get install docker-registry skopeo umoci podman busybox-static)")


def layer_blob(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, mode in files:
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), mode, 1_600_000_000
            tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    gz = gzip.compress(tar, compresslevel=6, mtime=0)
    return gz, "sha256:" + hashlib.sha256(tar).hexdigest()


def write_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def build_layout(layout):
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    rng = random.Random(7)
    bb = open(shutil.which("busybox"), "rb").read()
    layers = [[("bin/busybox", bb, 0o755)]]
    for n in range(3):
        files = [(f"data{n}/small/{i:04d}", rng.randbytes(2048), 0o644) for i in range(400)]
        files.append((f"data{n}/large", rng.randbytes(4 << 20), 0o644))
        layers.append(files)
    descs, diff_ids = [], []
    for files in layers:
        gz, diff = layer_blob(files)
        d, size = write_blob(layout, gz)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": size})
        diff_ids.append(diff)
    config = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/busybox", "sh"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    cd, cs = write_blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                "layers": descs}
    md, ms = write_blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    json.dump(index, open(os.path.join(layout, "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(layout, "oci-layout"), "w"))
    return sum(d["size"] for d in descs)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sh(*args):
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit(f"bench/pull.py: {' '.join(args)} exited {r.returncode}: {r.stderr.decode(errors='replace').strip()}")


def main():
    if os.geteuid() != 0:
        sys.exit("bench/pull.py: run as root")
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    warrenctl = os.path.abspath(sys.argv[1])
    need("docker-registry", "skopeo", "umoci", "podman", "busybox")
    work = tempfile.mkdtemp(prefix="warren-pull-bench-")
    reg = None
    try:
        layout = os.path.join(work, "layout")
        size = build_layout(layout)
        port = free_port()
        cfg = os.path.join(work, "registry.yml")
        open(cfg, "w").write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work}/registry\nhttp:\n  addr: 127.0.0.1:{port}\n")
        reg = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except Exception:
                time.sleep(0.05)
        ref = f"127.0.0.1:{port}/bench:v1"
        sh("skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{ref}")

        def warren(d):
            sh(warrenctl, "--root", os.path.join(d, "store"), "image", "pull", "--insecure", "--progress", "none", ref)

        def skopeo_umoci(d):
            sh("skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{d}/oci:bench")
            sh("umoci", "unpack", "--image", f"{d}/oci:bench", f"{d}/bundle")

        def podman(d):
            sh("podman", "--root", f"{d}/storage", "--runroot", f"{d}/run", "--storage-driver", "overlay",
               "pull", "-q", "--tls-verify=false", ref)

        tools = {"warrenctl": warren, "skopeo+umoci": skopeo_umoci, "podman": podman}
        times = {k: [] for k in tools}
        for rep in range(REPS):
            order = list(tools)
            random.shuffle(order)
            for name in order:
                d = tempfile.mkdtemp(dir=work)
                t0 = time.perf_counter()
                tools[name](d)
                times[name].append(time.perf_counter() - t0)
                subprocess.run(["umount", "-R", "-l", d], stderr=subprocess.DEVNULL)
                shutil.rmtree(d, ignore_errors=True)
        w = statistics.median(times["warrenctl"])
        print(f"image pull + unpack from a loopback registry: 4 gzip layers, {size / (1 << 20):.1f} MiB compressed; median of {REPS}")
        print(f"{'tool':16s} {'median (s)':>10s} {'warren/tool':>12s}")
        for name in tools:
            m = statistics.median(times[name])
            print(f"{name:16s} {m:10.3f} {w / m:12.2f}")
    finally:
        if reg:
            reg.kill()
            reg.wait()
        subprocess.run(["umount", "-R", "-l", work], stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
