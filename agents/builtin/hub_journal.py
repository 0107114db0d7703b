"""The hub's journald follower: `journalctl -o json -f` for our units, counted per agent and
priority, with the last errors per agent; its position survives hub restarts.

What is followed: every process in the agents' slice (`_SYSTEMD_SLICE=unified-agents.slice`,
so agents that appear later are included: `journalctl -u 'glob'` only matches units already
in the journal) plus systemd's own messages (`_PID=1`) about our units ("Failed with result
'signal'", "Started ..."). The latter also wake the systemd collector so that state changes
show within a second instead of at the next poll.

Persistence: the journal cursor, the counters and the last errors are written together to
$STATE_DIRECTORY/observability_hub.journal.json (temp file, fsync, rename) at most every
`save_every_s`: after a restart (kill -9 included) the follower continues after the saved
cursor with the saved counts, so a line is never counted twice and the counters stay
monotonic (lines read after the last save are read again, and counted once, since the
counts were saved with the cursor). Without a saved cursor it reads this boot from the start
(--since the kernel's boot time).

The hub runs as user `unified`; reading the system journal needs the `systemd-journal` group
(the catalog gives the hub SupplementaryGroups=systemd-journal).
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections import deque

from unified_core.poller import describe
from unified_core.timefmt import boot_time

PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
SLICE = "unified-agents.slice"
FIELDS = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,UNIT,_PID"
UNIT_PREFIXES = ("unified-agent@", "unified-backend@")
LAST_ERRORS = 5
MAX_MESSAGE = 400
STATE_FILE = "observability_hub.journal.json"


def agent_of_unit(unit: str) -> str | None:
    for prefix in UNIT_PREFIXES:
        if unit.startswith(prefix):
            name, dot, _ = unit[len(prefix):].rpartition(".")
            return name if dot and name else None
    return None


def message_text(v) -> str:
    """MESSAGE is a string, or a list of byte values when it is not valid UTF-8."""
    if isinstance(v, list):
        try:
            v = bytes(v).decode("utf-8", "replace")
        except (TypeError, ValueError):
            v = ""
    elif not isinstance(v, str):
        v = "" if v is None else str(v)
    v = v.strip()
    return v if len(v) <= MAX_MESSAGE else v[:MAX_MESSAGE - 1] + "…"


class JournalFollower:
    name = "journal"

    def __init__(self, state_path: str | None, *, known=None, journalctl: str = "journalctl",
                 on_unit_event=None, log=None, save_every_s: float = 5.0,
                 backoff_max_s: float = 60.0, extra_args=()):
        self.state_path = state_path
        self.known = known                  # callable → set of catalog agent names (or None)
        self.journalctl = journalctl
        self.on_unit_event = on_unit_event  # called when systemd logs about one of our units
        self.log = log
        self.save_every_s = save_every_s
        self.backoff_max_s = backoff_max_s
        self.extra_args = tuple(extra_args)
        self.lock = threading.Lock()
        self._save_lock = threading.Lock()
        self.counts: dict[str, list[int]] = {}
        self.last_errors: dict[str, deque] = {}
        self.cursor: str | None = None
        self.last_ts: float | None = None   # realtime of the last entry read (epoch s)
        self.lines = 0                      # entries read (all)
        self.lines_ours = 0                 # entries of catalog agents
        self.lag_s: float | None = None
        self.spawns = 0
        self.last_error = ""
        self.running = False
        self.saves = 0
        self.save_error = ""
        self._dirty = False
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.load()

    # -------------------------------------------------------------- persistence
    def load(self) -> None:
        if not self.state_path:
            return
        try:
            with open(self.state_path) as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            self.save_error = f"ignored unreadable {self.state_path}: {describe(e)}"
            if self.log:
                self.log.warning("journal state unreadable; starting from this boot",
                                 path=self.state_path, error=describe(e))
            return
        if not isinstance(data, dict):
            return
        cur = data.get("cursor")
        self.cursor = cur if isinstance(cur, str) and cur else None
        ts = data.get("last_ts")
        self.last_ts = float(ts) if isinstance(ts, (int, float)) else None
        for agent, per in (data.get("counts") or {}).items():
            if isinstance(per, dict):
                row = [0] * len(PRIORITIES)
                for i, p in enumerate(PRIORITIES):
                    n = per.get(p)
                    row[i] = n if isinstance(n, int) and n >= 0 else 0
                self.counts[str(agent)] = row
        for agent, errs in (data.get("last_errors") or {}).items():
            if isinstance(errs, list):
                self.last_errors[str(agent)] = deque(
                    (e for e in errs if isinstance(e, dict)), maxlen=LAST_ERRORS)
        lines = data.get("lines")
        self.lines = lines if isinstance(lines, int) and lines >= 0 else 0
        ours = data.get("lines_ours")
        self.lines_ours = ours if isinstance(ours, int) and ours >= 0 else 0

    def state(self) -> dict:
        with self.lock:
            return {"version": 1, "cursor": self.cursor, "last_ts": self.last_ts,
                    "lines": self.lines, "lines_ours": self.lines_ours,
                    "counts": {a: {p: n for p, n in zip(PRIORITIES, row) if n}
                               for a, row in self.counts.items()},
                    "last_errors": {a: list(d) for a, d in self.last_errors.items()}}

    def save(self) -> bool:
        """Write cursor + counters atomically (temp, fsync, rename). → written?"""
        with self._save_lock:   # one writer; stop() waits for a save in progress
            return self._save()

    def _save(self) -> bool:
        if not self.state_path or not self._dirty:
            return False
        self._dirty = False
        data = self.state()
        tmp = f"{self.state_path}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        except OSError as e:
            self._dirty = True
            msg = describe(e)
            if self.log and msg != self.save_error:
                self.log.warning("cannot save the journal position", path=self.state_path,
                                 error=msg)
            self.save_error = msg
            return False
        self.save_error = ""
        self.saves += 1
        return True

    # -------------------------------------------------------------- parsing
    def handle(self, entry: dict) -> None:
        """Count one journal entry (a dict from journalctl -o json)."""
        pid1 = entry.get("_PID") == "1"
        unit = entry.get("UNIT") if pid1 else entry.get("_SYSTEMD_UNIT")
        agent = agent_of_unit(unit) if isinstance(unit, str) else None
        try:
            prio = int(entry.get("PRIORITY", 6))
        except (TypeError, ValueError):
            prio = 6
        prio = min(max(prio, 0), 7)
        try:
            ts = int(entry.get("__REALTIME_TIMESTAMP", "")) / 1e6
        except (TypeError, ValueError):
            ts = None
        known = self.known() if self.known is not None else None
        ours = agent is not None and (known is None or agent in known)
        with self.lock:
            self.lines += 1
            cur = entry.get("__CURSOR")
            if isinstance(cur, str):
                self.cursor = cur
            if ts is not None:
                self.last_ts = ts
                self.lag_s = max(0.0, time.time() - ts)
            self._dirty = True
            if not ours or agent is None:  # (ours implies an agent; said for the checker)
                return
            self.lines_ours += 1
            row = self.counts.get(agent)
            if row is None:
                row = self.counts[agent] = [0] * len(PRIORITIES)
            row[prio] += 1
            # Last errors: the agent's own err..emerg lines, and systemd's warnings about
            # the unit ("Failed with result 'signal'", "Start request repeated too quickly").
            if prio <= 3 or (pid1 and prio <= 4):
                d = self.last_errors.get(agent)
                if d is None:
                    d = self.last_errors[agent] = deque(maxlen=LAST_ERRORS)
                d.append({"ts": ts, "priority": PRIORITIES[prio],
                          "message": message_text(entry.get("MESSAGE")),
                          "source": "systemd" if pid1 else "agent"})
        if pid1 and ours and self.on_unit_event is not None:
            self.on_unit_event(agent)

    def feed(self, line: bytes) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            return  # a torn line: journalctl was killed mid-write
        if isinstance(entry, dict):
            self.handle(entry)

    # -------------------------------------------------------------- the process
    def args(self) -> list[str]:
        # --merge: without it, --follow silently keeps only entries of the boot ID this
        # process sees; a sandboxed service in a container (ProtectProc=: a fresh /proc)
        # sees the host's boot ID, not the container's, and then reads nothing at all
        # (measured on systemd 252). The start is bounded by the cursor or --since instead.
        a = [self.journalctl, "--follow", "--merge", "--output=json", "--all", "--no-pager",
             f"--output-fields={FIELDS}"]
        if self.cursor:
            a.append(f"--after-cursor={self.cursor}")
        elif self.last_ts:
            a += [f"--since=@{self.last_ts:.6f}", "--lines=all"]
        else:
            # This boot, by time: `--boot` compares boot IDs (see --merge above).
            a += [f"--since=@{boot_time():.0f}", "--lines=all"]
        return a + list(self.extra_args) + [f"_SYSTEMD_SLICE={SLICE}", "+", "_PID=1"]

    def start(self) -> "JournalFollower":
        if not self._threads:
            for target, name in ((self._run, "hub-journal"), (self._saver, "hub-journal-save")):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            t0 = time.monotonic()
            rc, err = self._follow_once()
            if self._stop.is_set():
                break
            quick = time.monotonic() - t0 < 5.0
            self.last_error = f"journalctl exited {rc}: {err}" if err or rc else \
                f"journalctl exited {rc}"
            if self.log:
                self.log.warning("journal follower stopped; restarting", rc=rc,
                                 error=err[:300], retry_in_s=delay)
            if quick and rc and self.cursor and "cursor" in err.lower():
                # The saved cursor is unusable (journal vacuumed, another machine id):
                # continue from the time of the last entry instead.
                self.cursor = None
            self._stop.wait(delay)
            delay = min(self.backoff_max_s, delay * 2) if quick else 1.0

    def _follow_once(self) -> tuple[int | None, str]:
        try:
            proc = subprocess.Popen(self.args(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as e:
            return None, describe(e)
        self._proc = proc
        self.spawns += 1
        self.running = True
        out, errpipe = proc.stdout, proc.stderr
        assert out is not None and errpipe is not None  # both are PIPEs above
        try:
            for line in out:
                self.feed(line)
                if self.last_error:
                    self.last_error = ""
        finally:
            self.running = False
        rc = proc.wait()
        err = errpipe.read(4096).decode("utf-8", "replace").strip()
        out.close()
        errpipe.close()
        return rc, err

    def _saver(self) -> None:
        while not self._stop.wait(self.save_every_s):
            self.save()

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.save()

    # -------------------------------------------------------------- reading
    def snapshot(self) -> tuple[dict, dict]:
        """({agent: [count per priority]}, {agent: [last errors, newest last]}), copies."""
        with self.lock:
            return ({a: list(r) for a, r in self.counts.items()},
                    {a: list(d) for a, d in self.last_errors.items()})

    def status(self) -> dict:
        ok = self.running and not self.last_error
        return {"ok": ok, "running": self.running, "error": self.last_error or None,
                "lines": self.lines, "lines_ours": self.lines_ours,
                "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
                "spawns": self.spawns, "saves": self.saves,
                "save_error": self.save_error or None, "state_file": self.state_path,
                "cursor": self.cursor}
