#!/usr/bin/env python3
"""Turn docker's or podman's seccomp profile (the moby JSON format, e.g.
/usr/share/containers/seccomp.json) into the OCI linux.seccomp object for a
bundle's config.json, resolving includes/excludes for the config's
capabilities and this architecture, as the engines do.

Usage: scripts/seccomp-profile.py PROFILE.json BUNDLE/config.json
(config.json is rewritten in place)."""
import json
import platform
import sys

prof_path, config_path = sys.argv[1], sys.argv[2]
prof = json.load(open(prof_path))
config = json.load(open(config_path))
arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(platform.machine(), "")
goarch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "")
caps = set((config.get("process", {}).get("capabilities") or {}).get("bounding") or [])

sc = {"defaultAction": prof["defaultAction"], "architectures": [], "syscalls": []}
if prof.get("defaultErrnoRet") is not None:
    sc["defaultErrnoRet"] = prof["defaultErrnoRet"]
for m in prof.get("archMap") or []:
    if m["architecture"] == arch:
        sc["architectures"] = [arch] + (m.get("subArchitectures") or [])
for s in prof.get("syscalls") or []:
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        continue
    if inc.get("arches") and goarch not in inc["arches"]:
        continue
    if exc.get("caps") and set(exc["caps"]) & caps:
        continue
    if exc.get("arches") and goarch in exc["arches"]:
        continue
    names = s.get("names") or ([s["name"]] if s.get("name") else [])
    rule = {"names": names, "action": s["action"]}
    for k in ("args", "errnoRet"):
        if s.get(k) is not None:
            rule[k] = s[k]
    sc["syscalls"].append(rule)
config.setdefault("linux", {})["seccomp"] = sc
json.dump(config, open(config_path, "w"), indent=2)
print(f"{config_path}: linux.seccomp with {len(sc['syscalls'])} rules, default {sc['defaultAction']}")
