"""unified-ctl against the recording systemd fake, as a program (unit tests only): for the
tests that need a real terminal (a pty), which CliRunner cannot give.

    /usr/bin/python3 -m tests.unit.fake_fleet_cli DIR ARGS...

DIR: an empty directory for /etc/unified, /run/unified and the state (the shipped catalog is
copied there). Profile core runs; an agent's health port answers healthy from the second
time it is asked while its service is active (so a wait shows progress before it ends)."""
from __future__ import annotations

import os
import pathlib
import shutil
import sys

from unified_core import profiles
from unified_core.catalog import load_catalog
from unified_core.health import HealthResult

from .fakes import FakeSystemd

ROOT = pathlib.Path(__file__).parents[2]


def healthy_from_the_second_ask(cat, sd):
    """A stand-in for unified_core.health.probe answering from the fake's states."""
    by_port = {a.health_port: a for a in cat.agents.values()}
    asked: dict[int, int] = {}

    def probe(host, port, timeout=1.0):
        asked[port] = asked.get(port, 0) + 1
        if sd.state.get(by_port[port].service) == "active" and asked[port] >= 2:
            return HealthResult(True, "healthy", {})
        return HealthResult(False, "unreachable", "connection refused")

    return probe


def main(argv: list[str]) -> int:
    d = pathlib.Path(argv[0])
    (d / "etc").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "etc/unified/unified.yaml", d / "etc/unified.yaml")
    for var, sub in (("UNIFIED_ETC", "etc"), ("UNIFIED_RUN_DIR", "run"), ("UNIFIED_RUNTIME_UNITS", "units"),
                     ("UNIFIED_STATE_DIR", "state")):
        os.environ[var] = str(d / sub)
    from unified_ctl import cli, ports

    cat = load_catalog(str(d / "etc/unified.yaml"))
    sd = FakeSystemd(cat)
    sd.start([cat.profiles["core"].target])
    setattr(cli.Ctx, "sd", property(lambda self: sd))
    setattr(ports, "live_listeners", lambda: [])
    setattr(profiles, "probe", healthy_from_the_second_ask(cat, sd))
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
