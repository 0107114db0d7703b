"""The unit-state file the fake `systemctl` of the agent tests reads (tests/unit/*/bin):
one JSON file {"units": {unit: properties}, "fail": reason}, replaced atomically, with the
calls the fake received logged next to it (FILE.log). Shared by the coordinator, hub and
fuzz fleets, which point their agents at it through an environment variable."""
from __future__ import annotations

import json
import os
import pathlib


class FakeUnitsFile:
    units_file: pathlib.Path
    units: dict

    def write_units(self, fail: str = "") -> None:
        tmp = str(self.units_file) + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"units": self.units, "fail": fail}, f)
        os.replace(tmp, self.units_file)

    def set_state(self, agent: str, service: str, sock: str = "active", **props) -> None:
        sub = {"active": "running", "failed": "failed", "activating": "start"}.get(service, "dead")
        self.units[f"unified-agent@{agent}.service"] = {
            "ActiveState": service, "SubState": sub, "Result": props.pop("Result", "success"),
            **{k: str(v) for k, v in props.items()}}
        self.units[f"unified-agent@{agent}.socket"] = {
            "ActiveState": sock, "SubState": "listening" if sock == "active" else "dead"}
        self.write_units()

    def systemctl_calls(self) -> list[str]:
        try:
            return pathlib.Path(str(self.units_file) + ".log").read_text().splitlines()
        except FileNotFoundError:
            return []
