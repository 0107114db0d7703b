"""What each sandbox directive of unified-agent@.service costs a cold activation.

A dormant socket-activated agent, its service stopped, its socket listening: connect →
first byte of the `GET /health` answer (bench_agents' cold probe), with the unit as shipped,
with no sandbox at all, with each directive deleted alone (what keeping it costs on top of
all the others) and, for the directives that need a mount namespace, with only that one
left of them (what it costs by itself). Each variant is the template minus those lines,
installed as the instance's own unit file under /run/systemd/system (daemon-reload; removed
afterwards), and `systemctl cat`/`show` must see it in effect, or the bench fails rather
than print a row measured on the wrong unit. The variants are measured in interleaved
passes, so that the shared machine's load drifts over all of them alike.
"""
from __future__ import annotations

import json
import re

from bench_agents import AGENT, COLD, PORT

# bench_agents' cold probe, plus the CPU the started process spent until its first byte
# (/proc/PID/task/*/schedstat: nanoseconds on a CPU, summed over its threads): the sandbox is
# set up by the forked child before exec, in the same PID, so that time holds it too. On a
# 2-CPU host starting 16 agents at once, CPU is what the start waits for (bench_peer's CPU
# table), so this is the column that says what a directive costs there.
COLD_CPU = COLD.replace("    out.append(time.perf_counter() - t0)\n", """    wall = time.perf_counter() - t0
    pid = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", unit],
                         capture_output=True, text=True).stdout.strip()
    ns = sum(int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
             for t in os.listdir(f"/proc/{pid}/task"))
    out.append([wall, ns / 1e9])
""").replace("import json, socket", "import json, os, socket")
assert "schedstat" in COLD_CPU and "import json, os, socket" in COLD_CPU, "bench_agents.COLD changed"

ORDER = 21
UNIT = f"unified-agent@{AGENT}.service"
OVERRIDE = f"/run/systemd/system/{UNIT}"  # the instance's own unit file outranks the template

# A row → the directives it deletes from the unit (lines that travel together are one row).
# Deleted, not reset by a drop-in: systemd 252 has no empty assignment that drops a
# LoadCredential=/SetCredential= set earlier (a drop-in `LoadCredential=` leaves it in
# place; measured), so each variant is the template itself, minus those lines, installed as
# the instance's own unit file in /run/systemd/system (the generator's drop-ins still apply).
GROUPS: dict[str, tuple[str, ...]] = {k: (k,) for k in (
    "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset", "ReadWritePaths",
    "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths",
    "RestrictSUIDSGID", "RestrictRealtime", "RestrictNamespaces", "LockPersonality",
    "MemoryDenyWriteExecute", "RemoveIPC", "CapabilityBoundingSet", "SystemCallArchitectures",
    "PrivateUsers", "RestrictAddressFamilies")}
GROUPS["SystemCallFilter"] = ("SystemCallFilter", "SystemCallErrorNumber")
GROUPS["LoadCredential"] = ("LoadCredential", "SetCredential")
# Rows that ADD lines to the shipped unit: how the unit was before a change, measured in the
# same passes (the token came as a credential until the generator's StandardInput= drop-in).
ADDED = {"+LoadCredential (the token before)":
         "LoadCredential=unified-token:/etc/unified/token\nSetCredential=unified-token:none\n"}
# The ones that make systemd 252 set up a mount namespace for the process (the credential
# does too: /run/credentials/UNIT is mounted into it). PrivateUsers is a user namespace.
MOUNT_NS = ("ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
            "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc",
            "ProcSubset", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
            "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths")
TEMPLATE = "/lib/systemd/system/unified-agent@.service"


def keys_of(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([A-Za-z]+)=", text, re.M)}


def shipped_directives(template: str) -> list[str]:
    """The rows whose directives the template sets, in GROUPS order."""
    keys = keys_of(template)
    return [g for g, ks in GROUPS.items() if any(k in keys for k in ks)]


def without(template: str, rows: list[str]) -> str:
    drop = {k for r in rows for k in GROUPS[r]}
    return "".join(line for line in template.splitlines(keepends=True)
                   if line.split("=", 1)[0].strip() not in drop)


def variants(present: list[str]) -> list[tuple[str, list[str]]]:
    """(label, rows deleted) for every measurement; "shipped" deletes nothing (nor do the
    ADDED rows: they add their lines)."""
    out = [("shipped", []), ("none", list(present))]
    out += [(label, []) for label in ADDED if not keys_of(ADDED[label]) & set(present)]
    out += [(f"-{r}", [r]) for r in present]
    mounts = [r for r in present if r in MOUNT_NS]
    out.append(("no mount directive", mounts))
    out += [(f"only {r}", [o for o in mounts if o != r]) for r in mounts]
    return out


def _show(c, rows: list[str]) -> dict[str, str]:
    out = c.run(["systemctl", "show", UNIT, "-p", ",".join(k for r in rows for k in GROUPS[r])]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _exposure(c) -> float:
    out = c.run(["systemd-analyze", "security", "--no-pager", UNIT], check=False).stdout
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    return float(m.group(1)) if m else float("nan")


def _apply(c, unit_text: str | None) -> None:
    c.run(["rm", "-f", OVERRIDE])
    if unit_text is not None:
        c.write_file(OVERRIDE, unit_text)
    c.run(["systemctl", "daemon-reload"], timeout=120)


def measure(c, rounds: int, passes: int = 3) -> tuple[dict, dict, list[str]]:
    """{label: [[wall s, CPU s]]}, {label: exposure}, the rows the template has."""
    c.write_file("/root/cold.py", COLD_CPU)
    template = c.read_file(TEMPLATE)
    present = shipped_directives(template)
    shipped_show = _show(c, present)
    todo = variants(present)
    times: dict[str, list[list[float]]] = {label: [] for label, _ in todo}
    exposure: dict[str, float] = {}
    per_pass = [rounds // passes + (1 if i < rounds % passes else 0) for i in range(passes)]
    try:
        for n in per_pass:
            for label, rows in todo:
                _apply(c, template + ADDED[label] if label in ADDED
                       else without(template, rows) if rows else None)
                if label not in exposure:
                    exposure[label] = _exposure(c)
                    # the effective unit has none of the deleted lines, and systemd's view of
                    # each deleted setting changed (252 prints credentials as "[unprintable]")
                    effective = keys_of(c.run(["systemctl", "cat", UNIT]).stdout)
                    if label in ADDED and not keys_of(ADDED[label]) <= effective:
                        raise RuntimeError(f"{label}: the added lines are not in effect")
                    left = effective & {k for r in rows for k in GROUPS[r]}
                    now = _show(c, rows)
                    same = sorted(left) + [k for k in now if now[k] == shipped_show.get(k) != "[unprintable]"]
                    if same:
                        raise RuntimeError(f"{label}: {same} unchanged (systemctl show): the variant is not in effect")
                r = c.run(["python3", "/root/cold.py", UNIT, str(PORT), str(n)], timeout=600)
                times[label] += json.loads(r.stdout)
    finally:
        _apply(c, None)
    return times, exposure, present


def run(c, runs, summary):
    rounds = max(15, runs)
    c.run(["unified-ctl", "profile", "switch", "tutoring"], timeout=240)
    try:
        times, exposure, present = measure(c, rounds)
    finally:
        c.run(["unified-ctl", "profile", "switch", "core"], timeout=240)
    s = {k: summary([x[0] * 1000 for x in v]) for k, v in times.items()}
    cpu = {k: summary([x[1] * 1000 for x in v]) for k, v in times.items()}
    base, bare = s["shipped"]["median"], s["none"]["median"]
    floor = s["no mount directive"]["median"]
    lines = [
        "## What each sandbox directive costs a cold activation", "",
        f"`{UNIT}` dormant behind its socket: connect → first byte of `GET /health`, "
        f"{rounds} cold activations per row in 3 interleaved passes (`bench/bench_sandbox.py`). "
        "Each row is the shipped template with some directives deleted, installed as the "
        "instance's own unit file (the generator's drop-ins still apply). "
        "\"-X\": X alone deleted, the rest kept (what keeping X costs); \"only X\": of the "
        "mount-namespace directives only X kept (what X costs by itself); exposure: "
        "`systemd-analyze security` of that unit; CPU: the started process's time on a CPU until its "
        "first byte (schedstat, its threads summed), the sandbox's set-up before exec included.", "",
        "| unit | median | p95 | vs shipped | CPU median | CPU vs shipped | exposure |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label in times:
        v = s[label]
        lines.append(f"| {label} | {v['median']:.1f} ms | {v['p95']:.1f} ms | "
                     f"{v['median'] - base:+.1f} ms | {cpu[label]['median']:.1f} ms | "
                     f"{cpu[label]['median'] - cpu['shipped']['median']:+.1f} ms | "
                     f"{exposure.get(label, float('nan')):.1f} |")
    lines += [
        "",
        f"Directives in the rendered unit: {', '.join(present)}. The whole sandbox costs "
        f"{base - bare:.0f} ms of the median; the mount-namespace directives {base - floor:.0f} ms "
        "of it (the rows \"only X\" against \"no mount directive\" show each one's own share).",
        "",
    ]
    return lines
