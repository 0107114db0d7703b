"""Prometheus file_sd targets written by the hub: running agents' health ports plus the
essential agents of the selected profile (a crashed one must show up == 0), with the labels
agent/required/group (not the profile: unified_profile_info on the hub); written atomically,
only on change, world-readable; a missing directory (Prometheus not set up) is not an error."""
from __future__ import annotations

import json
import os
import stat

from unified_agents.builtin.hub_targets import DEFAULT_PATH, TargetsWriter, target_groups

from .test_hub_alerts import CORE, all_up, unit


def by_agent(groups):
    return {g["labels"]["agent"]: g for g in groups}


def test_running_agents_and_the_profiles_essential_agents_are_targets(catalog):
    units = all_up(Worker=unit("Worker", "failed"),            # essential, down: kept
                   Sleeper=unit("Sleeper", "dormant"),         # optional, dormant: left out
                   ModelManagerSuite=unit("ModelManagerSuite", "active"),
                   Faraway=unit("Faraway", "active"))          # not in the profile, running
    groups = by_agent(target_groups(catalog, CORE, units, "127.0.0.1"))
    assert set(groups) == {"ObservabilityHub", "RequestCoordinator", "Worker",
                           "ModelManagerSuite", "Faraway"}
    w = groups["Worker"]
    port = catalog.agents["Worker"].health_port
    assert w == {"targets": [f"127.0.0.1:{port}"],
                 "labels": {"agent": "Worker", "required": "true", "group": "work"}}
    assert groups["ModelManagerSuite"]["labels"]["required"] == "false"


def test_ipv6_hosts_are_bracketed(catalog):
    groups = target_groups(catalog, CORE, all_up(), "::1")
    assert groups[0]["targets"][0].startswith("[::1]:")


def test_written_atomically_world_readable_and_only_when_changed(tmp_path, catalog):
    path = tmp_path / "targets.json"
    w = TargetsWriter(str(path))
    groups = target_groups(catalog, CORE, all_up(), "127.0.0.1")
    assert w.write(groups) and json.loads(path.read_text()) == groups
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    mtime = os.stat(path).st_mtime_ns
    assert not w.write(groups) and os.stat(path).st_mtime_ns == mtime
    assert w.write(groups[:1]) and len(json.loads(path.read_text())) == 1
    assert not list(tmp_path.glob("*.tmp")) and w.status()["writes"] == 2


def test_no_directory_means_prometheus_is_not_set_up_not_an_error(tmp_path, catalog):
    w = TargetsWriter(str(tmp_path / "missing" / "targets.json"))
    assert not w.write(target_groups(catalog, CORE, all_up(), "127.0.0.1"))
    st = w.status()
    assert st["ok"] and "monitoring setup" in st["note"] and st["targets"] == 4


def test_an_unwritable_directory_is_reported(tmp_path, catalog):
    d = tmp_path / "ro"
    d.mkdir()
    w = TargetsWriter(str(d / "targets.json"))
    os.chmod(d, 0o500)
    try:
        if os.access(d, os.W_OK):           # root ignores modes: make the target a directory
            (d / "targets.json.tmp").mkdir()
        assert not w.write(target_groups(catalog, CORE, all_up(), "127.0.0.1"))
        assert not w.status()["ok"] and "cannot write" in w.status()["error"]
    finally:
        os.chmod(d, 0o700)


def test_the_default_path_is_the_one_monitoring_setup_prepares():
    from unified_ctl import monitoring

    assert DEFAULT_PATH == monitoring.TARGETS_FILE
    assert os.path.dirname(DEFAULT_PATH) == monitoring.TARGETS_DIR
