"""The agent's /metrics, in Prometheus text exposition format 0.0.4, written by hand.

prometheus_client costs ~65 ms to import here (more than half the cold-start budget) for a
handful of counters and one histogram. The process_* metrics are read from /proc the same
way prometheus_client's ProcessCollector does (same names, so runbook queries such as
process_resident_memory_bytes{job="unified_agents"} work). All updates happen on the I/O
thread (after each response is written), so there are no locks.
"""
from __future__ import annotations

import os

from unified_core.timefmt import boot_time

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

try:
    _TICKS = os.sysconf("SC_CLK_TCK")
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):  # pragma: no cover
    _TICKS, _PAGE = 100, 4096


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))


def _stat_fields() -> list:
    """/proc/self/stat after the command name (fields 3.. of proc(5))."""
    with open("/proc/self/stat", "rb") as f:
        data = f.read()
    return data[data.rfind(b")") + 2:].split()


def process_stat() -> dict:
    """utime/stime (s), start time (epoch s), rss/vsize (bytes) of this process."""
    fields = _stat_fields()
    return {
        "cpu": (float(fields[11]) + float(fields[12])) / _TICKS,
        "start": boot_time() + float(fields[19]) / _TICKS,
        "vsize": float(fields[20]),
        "rss": float(fields[21]) * _PAGE,
        "threads": float(fields[17]),
    }


def _max_fds() -> float | None:
    try:
        with open("/proc/self/limits", "rb") as f:
            for line in f:
                if line.startswith(b"Max open files"):
                    return float(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def hist_add(hist: dict, key, seconds: float, buckets=BUCKETS) -> None:
    """One observation into hist[key] = [count per bucket (not cumulative)..., sum, count]."""
    h = hist.get(key)
    if h is None:
        h = hist[key] = [0] * (len(buckets) + 2)
    for i, b in enumerate(buckets):
        if seconds <= b:
            h[i] += 1
            break
    h[-2] += seconds
    h[-1] += 1


def hist_lines(name: str, items, buckets=BUCKETS) -> list[str]:
    """The text-format lines of a histogram made by hist_add; items: (labels, h) pairs, labels
    as written inside the braces (`agent="X"`)."""
    out = []
    for lbl, h in items:
        acc = 0
        for i, b in enumerate(buckets):
            acc += h[i]
            out.append(f'{name}_bucket{{{lbl},le="{b}"}} {acc}')
        out.append(f'{name}_bucket{{{lbl},le="+Inf"}} {h[-1]}')
        out.append(f"{name}_sum{{{lbl}}} {repr(float(h[-2]))}")
        out.append(f"{name}_count{{{lbl}}} {h[-1]}")
    return out


class Metrics:
    def __init__(self):
        self.requests: dict = {}       # (listener, route, method, code) -> count
        self.hist: dict = {}           # (listener, route) -> [bucket counts..., sum, count]
        self.errors: dict = {}         # route -> handler exceptions (500)
        self.tasks: dict = {}          # (type, outcome) -> count

    def observe(self, listener: str, route: str, method: str, code: int, seconds: float,
                task_type: str | None = None) -> None:
        k = (listener, route, method, code)
        self.requests[k] = self.requests.get(k, 0) + 1
        hist_add(self.hist, (listener, route), seconds)
        if code >= 500 and code != 503:
            self.errors[route] = self.errors.get(route, 0) + 1
        if task_type is not None:
            outcome = "ok" if code < 400 else "rejected" if code < 500 else "error"
            tk = (task_type, outcome)
            self.tasks[tk] = self.tasks.get(tk, 0) + 1

    def render(self, rt) -> str:
        """rt: the Runtime (name, config, in-flight, startup...)."""
        out: list[str] = []
        add = out.append
        try:
            st = process_stat()
        except OSError:  # pragma: no cover - no /proc
            st = None
        if st is not None:
            add("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.")
            add("# TYPE process_cpu_seconds_total counter")
            add(f"process_cpu_seconds_total {_fmt(st['cpu'])}")
            add("# HELP process_virtual_memory_bytes Virtual memory size in bytes.")
            add("# TYPE process_virtual_memory_bytes gauge")
            add(f"process_virtual_memory_bytes {_fmt(st['vsize'])}")
            add("# HELP process_resident_memory_bytes Resident memory size in bytes.")
            add("# TYPE process_resident_memory_bytes gauge")
            add(f"process_resident_memory_bytes {_fmt(st['rss'])}")
            add("# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.")
            add("# TYPE process_start_time_seconds gauge")
            add(f"process_start_time_seconds {_fmt(st['start'])}")
        try:
            nfds = len(os.listdir("/proc/self/fd"))
            add("# HELP process_open_fds Number of open file descriptors.")
            add("# TYPE process_open_fds gauge")
            add(f"process_open_fds {nfds}")
        except OSError:  # pragma: no cover
            pass
        mx = _max_fds()
        if mx is not None:
            add("# HELP process_max_fds Maximum number of open file descriptors.")
            add("# TYPE process_max_fds gauge")
            add(f"process_max_fds {_fmt(mx)}")
        if st is not None:
            add("# HELP process_threads Number of OS threads in the process.")
            add("# TYPE process_threads gauge")
            add(f"process_threads {_fmt(st['threads'])}")

        # No agent/group/required labels here: Prometheus adds them from the file_sd target
        # (a series' own label of the same name would be renamed exported_agent), and the
        # hub's unified_agent_info{agent,group,required,in_profile} holds the catalog facts.
        add("# HELP unified_agent_build_info The agent's implementation and version (always 1).")
        add("# TYPE unified_agent_build_info gauge")
        add(f'unified_agent_build_info{{implementation="{_esc(rt.implementation)}",'
            f'version="{_esc(rt.version)}"}} 1')
        # the same name (and measure) as the hub's per-agent series
        add("# HELP unified_agent_startup_duration_seconds Process start to READY=1 of this "
            "process.")
        add("# TYPE unified_agent_startup_duration_seconds gauge")
        add(f"unified_agent_startup_duration_seconds {_fmt(round(rt.startup_s, 4))}")
        add("# HELP unified_agent_requests_in_flight Requests being handled now.")
        add("# TYPE unified_agent_requests_in_flight gauge")
        add(f"unified_agent_requests_in_flight {rt.in_flight}")
        add("# HELP unified_agent_open_connections Open client connections.")
        add("# TYPE unified_agent_open_connections gauge")
        add(f"unified_agent_open_connections {rt.server.open_connections()}")

        add("# HELP unified_agent_requests_total HTTP requests answered.")
        add("# TYPE unified_agent_requests_total counter")
        for (lst, route, method, code), n in sorted(self.requests.items()):
            add(f'unified_agent_requests_total{{listener="{lst}",route="{_esc(route)}",'
                f'method="{_esc(method)}",code="{code}"}} {n}')
        add("# HELP unified_agent_request_duration_seconds Time from request received to response written.")
        add("# TYPE unified_agent_request_duration_seconds histogram")
        out += hist_lines("unified_agent_request_duration_seconds",
                          ((f'listener="{lst}",route="{_esc(route)}"', h)
                           for (lst, route), h in sorted(self.hist.items())))
        add("# HELP unified_agent_errors_total Requests that failed inside the agent (5xx).")
        add("# TYPE unified_agent_errors_total counter")
        for route, n in sorted(self.errors.items()):
            add(f'unified_agent_errors_total{{route="{_esc(route)}"}} {n}')
        add("# HELP unified_agent_bad_requests_total Requests rejected before routing (malformed, too large, too slow).")
        add("# TYPE unified_agent_bad_requests_total counter")
        for code, n in sorted(rt.server.bad_requests.items()):
            add(f'unified_agent_bad_requests_total{{code="{code}"}} {n}')
        add("# HELP unified_agent_tasks_total Tasks received on POST /task by type and outcome.")
        add("# TYPE unified_agent_tasks_total counter")
        for (ttype, outcome), n in sorted(self.tasks.items()):
            add(f'unified_agent_tasks_total{{type="{_esc(ttype)}",outcome="{outcome}"}} {n}')
        text = "\n".join(out) + "\n"
        extra = rt.agent_metrics_text()
        if extra:
            text += extra if extra.endswith("\n") else extra + "\n"
        return text


def process_age_s() -> float:
    """Seconds since this process started (kernel start time; 10 ms resolution)."""
    try:
        start_ticks = float(_stat_fields()[19])
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / _TICKS)
    except (OSError, ValueError, IndexError):  # pragma: no cover
        return 0.0

