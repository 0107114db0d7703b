#!/usr/bin/python3
"""Run every command block of docs/RUNBOOK.md, in document order, against an installed system.

  scripts/dev/runbook_check.py            boot a fresh container with the newest .deb, run, tear down
  scripts/dev/runbook_check.py --list     the blocks (id, line, mode) and what is skipped, why
  scripts/dev/runbook_check.py --local    run on this machine (a real install, as root)

A command block is a ```bash fence; ```promql blocks are queries for Prometheus, not
commands. Each block runs in its own `bash -e -o pipefail`, as root in /root: a failing
command fails the block, also early in a pipeline (so a block consumes whole outputs: no
`| head` or `grep -m` after curl or ps, whose early exit is a SIGPIPE or curl write error). A block preceded by `<!-- runbook-check: follow -->`
follows output until Ctrl-C: it runs under a pseudo-terminal (`watch` needs one) and is
stopped after FOLLOW_S seconds; that stop is its success. curl runs with --fail-with-body
(a ~/.curlrc of the check's own, through CURL_HOME): an endpoint answering an HTTP error
fails its block, as a person reading the answer would notice; the runbook keeps the plain
`curl -s` an operator types.

Skipped: only SKIP below (blocks that need an NVIDIA GPU or a second host), each with its
reason; a SKIP entry that names no block is an error, so the list cannot go stale.

Pending: a failing block that calls (localhost:PORT) an agent the catalog still runs as
the SDK's reference agent (its real implementation has not landed) is reported as pending on
that agent's issue, not as passed. As soon as the catalog runs the real agent, the block
must pass.

The system test tests/system/test_runbook.py runs this against a fresh container.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
FOLLOW_S = 4
BLOCK_TIMEOUT_S = 300
SKIP = {
    "VRAM exhaustion #1": "needs an NVIDIA GPU and its driver (nvidia-smi)",
}
ISSUE_OF = {"ObservabilityHub": 7, "ModelManagerSuite": 6, "VRAMOptimizerAgent": 6}
DEFAULT_ISSUE = 5
PORT_RE = re.compile(r"(?:localhost|127\.0\.0\.1):(\d+)")
MARK_RE = re.compile(r"<!--\s*runbook-check:\s*(\w+)\s*-->")


@dataclass
class Block:
    id: str  # "<heading> #<n>"
    heading: str
    line: int
    lang: str
    code: str
    follow: bool = False


@dataclass
class Result:
    block: Block
    status: str  # passed | failed | pending | skipped
    rc: int | None = None
    seconds: float = 0.0
    output: str = ""
    reason: str = ""


def parse(text: str) -> list[Block]:
    blocks, heading, counts, mark = [], "", {}, None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = MARK_RE.search(ln)
        if ln.startswith("#") and not ln.startswith("#!"):
            heading = ln.lstrip("#").strip()
        elif m:
            mark = m.group(1)
        elif ln.startswith("```") and len(ln) > 3:
            lang, start, body = ln[3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if lang in ("bash", "sh"):
                counts[heading] = counts.get(heading, 0) + 1
                blocks.append(Block(f"{heading} #{counts[heading]}", heading, start, lang,
                                    "\n".join(body) + "\n", follow=(mark == "follow")))
            mark = None
        elif ln.strip() and not ln.startswith("<!--"):
            mark = None if not ln.startswith("```") else mark
        i += 1
    return blocks


def check_skips(blocks: list[Block]) -> None:
    ids = {b.id for b in blocks}
    stale = [k for k in SKIP if k not in ids]
    if stale:
        raise SystemExit(f"runbook_check: SKIP names blocks that do not exist: {stale}")


CHECK_DIR = "/root/.runbook-check"
CHECK_ENV = {"CURL_HOME": CHECK_DIR}


class Local:
    """Run blocks on this machine."""

    def run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        import os

        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/root",
                               env={**os.environ, **CHECK_ENV})
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {timeout:g} s\n{e.stdout or ''}{e.stderr or ''}"
        return p.returncode, p.stdout + p.stderr

    def write(self, path: str, text: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)


class InContainer:
    """Run blocks in a harness.Container."""

    def __init__(self, c):
        self.c = c

    def run(self, argv: list[str], timeout: float) -> tuple[int, str]:
        try:
            p = self.c.run(argv, check=False, timeout=timeout, cwd="/root", env=CHECK_ENV)
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {timeout:g} s\n{e.stdout or ''}{e.stderr or ''}"
        return p.returncode, (p.stdout or "") + (p.stderr or "")

    def write(self, path: str, text: str) -> None:
        self.c.run(["mkdir", "-p", str(Path(path).parent)])
        self.c.write_file(path, text)


CATALOG_QUERY = ("import json; from unified_core.catalog import load_catalog; c = load_catalog(env={}); "
                 "print(json.dumps({n: [a.port, a.health_port, a.run.kind] for n, a in c.agents.items()}))")


def pending_reason(target, block: Block, agents: dict) -> str | None:
    """The block calls an agent that still runs as the reference agent: name it and its issue."""
    ports = {int(p) for p in PORT_RE.findall(block.code)}
    ref = sorted({n for n, (p, hp, kind) in agents.items() if (p in ports or hp in ports) and kind == "reference"})
    if not ref:
        return None
    return "; ".join(f"{n} is still the SDK's reference agent (issue {ISSUE_OF.get(n, DEFAULT_ISSUE)})" for n in ref)


def run_block(target, b: Block) -> Result:
    if b.id in SKIP:
        return Result(b, "skipped", reason=SKIP[b.id])
    t0 = time.monotonic()
    if b.follow:
        target.write(f"{CHECK_DIR}/block.sh", b.code)
        argv = ["timeout", str(FOLLOW_S), "script", "-qfec", f"bash -e -o pipefail {CHECK_DIR}/block.sh",
                "/dev/null"]
        rc, out = target.run(argv, FOLLOW_S + 30)
        ok = rc in (0, 124)
    else:
        rc, out = target.run(["bash", "-e", "-o", "pipefail", "-c", b.code], BLOCK_TIMEOUT_S)
        ok = rc == 0
    return Result(b, "passed" if ok else "failed", rc, round(time.monotonic() - t0, 2), out)


def run_all(target, blocks: list[Block] | None = None, log=print) -> list[Result]:
    blocks = blocks if blocks is not None else parse(RUNBOOK.read_text())
    check_skips(blocks)
    target.write(f"{CHECK_DIR}/.curlrc", "fail-with-body\n")
    rc, out = target.run(["python3", "-c", CATALOG_QUERY], 60)
    agents = json.loads(out.strip().splitlines()[-1]) if rc == 0 else {}
    results = []
    for b in blocks:
        r = run_block(target, b)
        if r.status == "failed":
            why = pending_reason(target, b, agents)
            if why:
                r.status, r.reason = "pending", why
        results.append(r)
        if log:
            log(f"{r.status:8} {r.seconds:6.2f} s  RUNBOOK.md:{b.line:<4} {b.id}"
                + (f"  ({r.reason})" if r.reason else ""))
            if r.status in ("failed", "pending"):
                log("    " + "\n    ".join(ln[:300] for ln in r.output.strip().splitlines()[-12:]))
    return results


def summary(results: list[Result]) -> str:
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", action="store_true", help="list the blocks and the skips")
    ap.add_argument("--local", action="store_true", help="run on this machine (a real install)")
    args = ap.parse_args(argv)
    blocks = parse(RUNBOOK.read_text())
    check_skips(blocks)
    if args.list:
        for b in blocks:
            mode = "skip: " + SKIP[b.id] if b.id in SKIP else ("follow" if b.follow else "run")
            print(f"RUNBOOK.md:{b.line:<4} {b.id:45} {mode}")
        return 0
    if args.local:
        results = run_all(Local(), blocks)
    else:
        sys.path.insert(0, str(REPO / "tests" / "system"))
        import harness

        harness.preflight()
        harness.sweep_stale()
        deb = harness.find_or_build_deb()
        c = harness.boot(harness.ensure_rootfs(deb), deb, label="runbook")
        try:
            results = run_all(InContainer(c), blocks)
        finally:
            c.stop()
    print(summary(results))
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
