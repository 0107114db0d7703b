"""What each sandbox directive of unified-agent@.service costs a cold activation.

A dormant socket-activated agent, its service stopped, its socket listening: connect →
first byte of the `GET /health` answer (bench_agents' cold probe), with the unit as shipped,
with no sandbox at all, with each directive reset alone ("removed": what keeping it costs on
top of all the others) and, for the directives that need a mount namespace, with only that
one left of them ("alone": what it costs by itself on top of a bare namespace). Each variant
is a runtime drop-in under /run/systemd/system/UNIT.d/ (daemon-reload; removed afterwards),
and `systemctl show` must see it take effect, or the bench fails rather than print a row
measured on the wrong unit. The variants are measured in interleaved passes, so that the
shared machine's load drifts over all of them alike.
"""
from __future__ import annotations

import json
import re

from bench_agents import AGENT, COLD, PORT

ORDER = 21
UNIT = f"unified-agent@{AGENT}.service"
DROPIN_DIR = f"/run/systemd/system/{UNIT}.d"
DROPIN = f"{DROPIN_DIR}/99-bench-sandbox.conf"

# directive → the assignment that switches it off (systemd 252's defaults; an empty
# assignment resets a list). Directives that travel together are one row.
RESET: dict[str, tuple[str, ...]] = {
    "NoNewPrivileges": ("NoNewPrivileges=no",),
    "ProtectSystem": ("ProtectSystem=no",),
    "ProtectHome": ("ProtectHome=no",),
    "PrivateTmp": ("PrivateTmp=no",),
    "PrivateDevices": ("PrivateDevices=no",),
    "ProtectKernelTunables": ("ProtectKernelTunables=no",),
    "ProtectKernelModules": ("ProtectKernelModules=no",),
    "ProtectKernelLogs": ("ProtectKernelLogs=no",),
    "ProtectControlGroups": ("ProtectControlGroups=no",),
    "ProtectClock": ("ProtectClock=no",),
    "ProtectHostname": ("ProtectHostname=no",),
    "ProtectProc": ("ProtectProc=default",),
    "ProcSubset": ("ProcSubset=all",),
    "ReadWritePaths": ("ReadWritePaths=",),
    "ReadOnlyPaths": ("ReadOnlyPaths=",),
    "InaccessiblePaths": ("InaccessiblePaths=",),
    "TemporaryFileSystem": ("TemporaryFileSystem=",),
    "BindPaths": ("BindPaths=",),
    "BindReadOnlyPaths": ("BindReadOnlyPaths=",),
    "RestrictSUIDSGID": ("RestrictSUIDSGID=no",),
    "RestrictRealtime": ("RestrictRealtime=no",),
    "RestrictNamespaces": ("RestrictNamespaces=no",),
    "LockPersonality": ("LockPersonality=no",),
    "MemoryDenyWriteExecute": ("MemoryDenyWriteExecute=no",),
    "RemoveIPC": ("RemoveIPC=no",),
    "CapabilityBoundingSet": ("CapabilityBoundingSet=~",),
    "SystemCallArchitectures": ("SystemCallArchitectures=",),
    "SystemCallFilter": ("SystemCallFilter=", "SystemCallErrorNumber="),
    "PrivateUsers": ("PrivateUsers=no",),
    "RestrictAddressFamilies": ("RestrictAddressFamilies=",),
    "LoadCredential": ("LoadCredential=", "SetCredential="),
}
# The ones that make systemd 252 set up a mount namespace for the process (the credential
# does too: /run/credentials/UNIT is mounted into it). PrivateUsers is a user namespace.
MOUNT_NS = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
            "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc",
            "ProcSubset", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
            "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths")
# `systemctl show` names that must change when the reset is in effect
SHOW = {"SystemCallFilter": "SystemCallFilter", "LoadCredential": "LoadCredential",
        "CapabilityBoundingSet": "CapabilityBoundingSet"}


def shipped_directives(cat_text: str) -> list[str]:
    """The sandbox directives the rendered unit (template + drop-ins) sets, in RESET order."""
    keys = {m.group(1) for m in re.finditer(r"^\s*([A-Za-z]+)=", cat_text, re.M)}
    return [k for k in RESET if k in keys]


def variants(present: list[str]) -> list[tuple[str, list[str]]]:
    """(label, drop-in lines) for every measurement; label "shipped" has no drop-in."""
    out = [("shipped", []), ("none", [line for k in present for line in RESET[k]])]
    out += [(f"-{k}", list(RESET[k])) for k in present]
    mounts = [k for k in present if k in MOUNT_NS]
    out.append(("no mount directive", [line for k in mounts for line in RESET[k]]))
    for k in mounts:
        out.append((f"only {k}", [line for o in mounts if o != k for line in RESET[o]]))
    return out


def _show(c, keys: list[str]) -> dict[str, str]:
    props = [SHOW.get(k, k) for k in keys]
    out = c.run(["systemctl", "show", UNIT, "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _exposure(c) -> float:
    out = c.run(["systemd-analyze", "security", "--no-pager", UNIT], check=False).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    return float(m.group(1)) if m else float("nan")


def _apply(c, lines: list[str]) -> None:
    c.run(["rm", "-rf", DROPIN_DIR])
    if lines:
        c.run(["mkdir", "-p", DROPIN_DIR])
        c.write_file(DROPIN, "[Service]\n" + "\n".join(lines) + "\n")
    c.run(["systemctl", "daemon-reload"], timeout=120)


def measure(c, rounds: int, passes: int = 3) -> tuple[dict, dict, list[str]]:
    """{label: [seconds]}, {label: exposure}, the shipped directives."""
    c.write_file("/root/cold.py", COLD)
    present = shipped_directives(c.run(["systemctl", "cat", UNIT]).stdout)
    shipped_show = _show(c, present)
    todo = variants(present)
    times: dict[str, list[float]] = {label: [] for label, _ in todo}
    exposure: dict[str, float] = {}
    per_pass = [rounds // passes + (1 if i < rounds % passes else 0) for i in range(passes)]
    try:
        for n in per_pass:
            for label, lines in todo:
                _apply(c, lines)
                if label not in exposure:
                    exposure[label] = _exposure(c)
                    reset = [k for k in present if any(line.startswith(k + "=") for line in lines)]
                    now = _show(c, reset)
                    same = [k for k in reset if now.get(SHOW.get(k, k)) == shipped_show.get(SHOW.get(k, k))]
                    if same:
                        raise RuntimeError(f"{label}: the drop-in did not change {same} (systemctl show)")
                r = c.run(["python3", "/root/cold.py", UNIT, str(PORT), str(n)], timeout=600)
                times[label] += json.loads(r.stdout)
    finally:
        _apply(c, [])
    return times, exposure, present


def run(c, runs, summary):
    rounds = max(15, runs)
    c.run(["unified-ctl", "profile", "switch", "tutoring"], timeout=240)
    try:
        times, exposure, present = measure(c, rounds)
    finally:
        c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    s = {k: summary([x * 1000 for x in v]) for k, v in times.items()}
    base, bare = s["shipped"]["median"], s["none"]["median"]
    floor = s["no mount directive"]["median"]
    lines = [
        "## What each sandbox directive costs a cold activation", "",
        f"`{UNIT}` dormant behind its socket: connect → first byte of `GET /health`, "
        f"{rounds} cold activations per row in 3 interleaved passes (`bench/bench_sandbox.py`). "
        "Each row is the unit as shipped with a runtime drop-in that switches directives off. "
        "\"removed\": that directive alone off, the rest kept (what keeping it costs); "
        "\"alone\": of the mount-namespace directives only that one kept (what it costs by "
        "itself); exposure: `systemd-analyze security` with the drop-in.", "",
        "| unit | median | p95 | vs shipped | exposure |", "| --- | --- | --- | --- | --- |",
    ]
    for label in times:
        v = s[label]
        lines.append(f"| {label} | {v['median']:.1f} ms | {v['p95']:.1f} ms | "
                     f"{v['median'] - base:+.1f} ms | {exposure.get(label, float('nan')):.1f} |")
    lines += [
        "",
        f"Directives in the rendered unit: {', '.join(present)}. The whole sandbox costs "
        f"{base - bare:.0f} ms of the median; the mount-namespace directives {base - floor:.0f} ms "
        "of it (the rows \"only X\" against \"no mount directive\" show each one's own share).",
        "",
    ]
    return lines
