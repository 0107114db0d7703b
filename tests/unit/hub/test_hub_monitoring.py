"""`unified-ctl monitoring setup`: merges our scrape jobs, rules and Alertmanager route into
an operator's configuration without clobbering it (other jobs/routes and every comment kept,
backups, promtool/amtool validation before anything is replaced), idempotently, and starts or
reloads the daemons through the systemd seam; `monitoring remove` puts back every file byte
for byte."""
from __future__ import annotations

import os
import shutil

import pytest
import yaml

from unified_ctl import monitoring as mon
from unified_ctl import monitoring_undo as undo
from unified_core.errors import UnifiedError

from tests.host_tools import require_tool

from .conftest import ROOT

# Debian bookworm's shipped files (prometheus 2.42, prometheus-alertmanager 0.25), abridged.
DEBIAN_PROMETHEUS = """\
# Sample config for Prometheus.
global:
  scrape_interval:     15s
  evaluation_interval: 15s
  external_labels:
      monitor: 'example'
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['localhost:9093']
rule_files:
  # - "first_rules.yml"
scrape_configs:
  - job_name: 'prometheus'
    scrape_interval: 5s
    static_configs:
      - targets: ['localhost:9090']
  - job_name: node
    static_configs:
      - targets: ['localhost:9100']
"""
DEBIAN_ALERTMANAGER = """\
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'alertmanager@example.org'
route:
  group_by: ['alertname', 'cluster', 'service']
  receiver: team-X-mails
  routes:
  - match:
      service: database
    receiver: team-DB-pager
receivers:
- name: 'team-X-mails'
  email_configs:
  - to: 'team-X+alerts@example.org'
- name: 'team-DB-pager'
"""
DEBIAN_DEFAULTS = '# Set the command-line arguments to pass to the server.\nARGS=""\n'


@pytest.fixture(autouse=True)
def shipped(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIFIED_PROMETHEUS_DIR", str(ROOT / "etc" / "prometheus"))
    # where setup keeps the originals for `monitoring remove` (never the host's /var/lib)
    monkeypatch.setenv("UNIFIED_MONITORING_DIR", str(tmp_path / "monitoring-state"))


@pytest.fixture
def real_catalog():
    from unified_core.catalog import load_catalog

    return load_catalog(str(ROOT / "etc" / "unified" / "unified.yaml"), env={})


def jobs_for(cat):
    scrape = yaml.safe_load((ROOT / "etc" / "prometheus" / "unified-scrape.yml").read_text())
    return mon.our_jobs(scrape, *mon.hub_facts(cat))


RULES = str(ROOT / "etc" / "prometheus" / "unified-rules.yml")


# ------------------------------------------------------------------ pure merges
def test_our_jobs_use_the_catalogs_hub_address_and_targets_file(catalog):
    jobs = {j["job_name"]: j for j in jobs_for(catalog)}
    hub = catalog.agents["ObservabilityHub"]
    assert jobs["unified_hub"]["static_configs"][0]["targets"] == [f"127.0.0.1:{hub.port}"]
    assert jobs["unified_hub"]["honor_labels"] is True
    assert jobs["unified_agents"]["file_sd_configs"][0]["files"] == [mon.TARGETS_FILE]


def test_merge_into_debians_default_keeps_its_jobs_and_alertmanager(catalog):
    cfg = yaml.safe_load(DEBIAN_PROMETHEUS)
    merged, changes = mon.merge_prometheus(cfg, jobs_for(catalog), RULES)
    names = [j["job_name"] for j in merged["scrape_configs"]]
    assert names == ["prometheus", "node", "unified_agents", "unified_hub"]
    assert merged["rule_files"] == [RULES]
    assert merged["alerting"] == cfg["alerting"]                 # localhost:9093 already there
    assert merged["global"] == cfg["global"]
    assert len(changes) == 3 and cfg == yaml.safe_load(DEBIAN_PROMETHEUS)   # input untouched
    again, changes = mon.merge_prometheus(merged, jobs_for(catalog), RULES)
    assert changes == [] and again == merged                    # idempotent


def test_merge_updates_a_stale_job_of_ours_and_adds_an_alertmanager(catalog):
    cfg = {"scrape_configs": [{"job_name": "unified_hub",
                               "static_configs": [{"targets": ["10.0.0.1:9000"]}]}]}
    merged, changes = mon.merge_prometheus(cfg, jobs_for(catalog), RULES)
    assert "scrape job unified_hub updated" in changes
    assert merged["alerting"]["alertmanagers"] == [
        {"static_configs": [{"targets": ["localhost:9093"]}]}]
    assert [j["job_name"] for j in merged["scrape_configs"]] == ["unified_hub", "unified_agents"]


def test_no_configuration_yet_gives_a_complete_one(catalog):
    merged, changes = mon.merge_prometheus(None, jobs_for(catalog), RULES)
    assert merged["global"]["scrape_interval"] == "15s" and changes[0].startswith("new")


def test_debians_default_jobs_scrape_no_agent_port(real_catalog):
    # its `node` job scrapes localhost:9100, ObservabilityHub_PC2's port in the original catalog
    assert mon.port_clashes(yaml.safe_load(DEBIAN_PROMETHEUS), real_catalog) == []


def test_jobs_scraping_our_agent_ports_are_pointed_out(real_catalog):
    cfg = yaml.safe_load(DEBIAN_PROMETHEUS)
    cfg["scrape_configs"].append({"job_name": "pc2", "static_configs": [{"targets": ["localhost:9010"]}]})
    clashes = mon.port_clashes(cfg, real_catalog)
    assert clashes == ["job 'pc2' scrapes localhost:9010, the agent port of ObservabilityHub_PC2 "
                       "(each scrape starts it and gets a 404); move that exporter or remove the job"]


def test_alertmanager_route_first_with_continue_and_our_receiver(catalog):
    snippet = yaml.safe_load((ROOT / "etc" / "prometheus" / "alertmanager-unified.yml")
                             .read_text())
    cfg = yaml.safe_load(DEBIAN_ALERTMANAGER)
    merged, changes = mon.merge_alertmanager(cfg, snippet)
    first = merged["route"]["routes"][0]
    assert first["receiver"] == "unified-system" and first["continue"] is True
    assert first["matchers"] == ['system="unified"']
    assert merged["route"]["routes"][1:] == cfg["route"]["routes"]
    assert merged["route"]["receiver"] == "team-X-mails"
    assert [r["name"] for r in merged["receivers"]][-1] == "unified-system"
    assert len(changes) == 2
    assert mon.merge_alertmanager(merged, snippet) == (merged, [])


def test_alertmanager_args_only_debians_untouched_default_changes():
    text, changes = mon.merge_alertmanager_args(DEBIAN_DEFAULTS)
    assert 'ARGS="--cluster.listen-address="' in text and changes
    assert text.startswith("# Set the command-line")
    assert mon.merge_alertmanager_args(text) == (text, [])
    mine = 'ARGS="--cluster.advertise-address=10.0.0.5:9094"\n'
    assert mon.merge_alertmanager_args(mine) == (mine, [])
    assert mon.merge_alertmanager_args(None) == (None, [])


# ------------------------------------------------------------------ setup, with files
class RecordingSystemd:
    def __init__(self, active=(), enabled=()):
        self.active = set(active)
        self.enabled = set(enabled)
        self.calls = []

    def is_active(self, unit):
        return unit in self.active

    def _do(self, what, units, now=None):
        self.calls.append((what, tuple(units)))
        if what in ("enable", "restart"):
            self.active |= set(units)
        if what in ("disable", "stop"):
            self.active -= set(units)

    def show(self, units, props):
        return {u: {"UnitFileState": "enabled" if u in self.enabled else "disabled"} for u in units}

    def stop(self, units):
        self._do("stop", units)

    def disable(self, units, now=False):
        self._do("disable", units)

    def restart(self, units):
        self._do("restart", units)

    def reload(self, units):
        self._do("reload", units)

    def enable(self, units, now=False):
        self._do("enable", units)

    def reset_failed(self, units):
        pass

    def journal_tail(self, units, lines=10):
        return ["line"]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "prometheus.yml").write_text(DEBIAN_PROMETHEUS)
    (tmp_path / "alertmanager.yml").write_text(DEBIAN_ALERTMANAGER)
    (tmp_path / "defaults").write_text(DEBIAN_DEFAULTS)
    return tmp_path


def run_setup(cat, sd, d, **kw):
    require_tool("promtool")
    require_tool("amtool")
    return mon.setup(cat, sd, prometheus_config=str(d / "prometheus.yml"),
                     alertmanager_config=str(d / "alertmanager.yml"),
                     alertmanager_defaults=str(d / "defaults"),
                     targets_dir=str(d / "targets"), settle_s=0, **kw)


def test_setup_writes_valid_configs_keeps_backups_and_starts_the_daemons(catalog, files):
    sd = RecordingSystemd(active={"unified-agent@ObservabilityHub.service"})
    res = run_setup(catalog, sd, files)
    assert res.to_dict()["changed"]
    prom = yaml.safe_load((files / "prometheus.yml").read_text())
    assert [j["job_name"] for j in prom["scrape_configs"]][-2:] == ["unified_agents",
                                                                      "unified_hub"]
    assert (files / "prometheus.yml").read_text().startswith("# Edited by `unified-ctl")
    for name, original in (("prometheus.yml", DEBIAN_PROMETHEUS),
                           ("alertmanager.yml", DEBIAN_ALERTMANAGER), ("defaults", DEBIAN_DEFAULTS)):
        backup = res.backups[str(files / name)]
        assert open(backup).read() == original                   # comments and all
    assert os.path.isdir(files / "targets")
    assert oct(os.stat(files / "targets").st_mode & 0o777) == "0o755"
    assert ("restart", ("unified-agent@ObservabilityHub.service",)) in sd.calls
    assert ("enable", ("prometheus.service",)) in sd.calls
    assert ("enable", ("prometheus-alertmanager.service",)) in sd.calls
    assert mon.check_file(["promtool", "check", "config"], str(files / "prometheus.yml"))
    assert mon.check_file(["amtool", "check-config"], str(files / "alertmanager.yml"))


def test_setup_twice_changes_nothing_the_second_time(catalog, files):
    sd = RecordingSystemd()
    run_setup(catalog, sd, files)
    before = {p: p.read_text() for p in files.iterdir() if p.is_file()}
    sd.calls.clear()
    res = run_setup(catalog, sd, files)
    assert not res.to_dict()["changed"] and res.backups == {}
    assert {p: p.read_text() for p in files.iterdir() if p.is_file()} == before
    assert sd.calls == []                                # running, unchanged: nothing to do


def test_dry_run_changes_nothing(catalog, files):
    sd = RecordingSystemd()
    res = run_setup(catalog, sd, files, dry_run=True)
    assert res.to_dict()["changed"] and sd.calls == []
    assert (files / "prometheus.yml").read_text() == DEBIAN_PROMETHEUS
    assert not (files / "targets").exists()


def test_a_running_prometheus_is_reloaded_and_alertmanager_restarted_for_new_args(catalog,
                                                                                  files):
    sd = RecordingSystemd(active={"prometheus.service", "prometheus-alertmanager.service"})
    run_setup(catalog, sd, files)
    assert ("reload", ("prometheus.service",)) in sd.calls
    assert ("restart", ("prometheus-alertmanager.service",)) in sd.calls


def test_an_invalid_result_is_refused_and_the_operators_file_kept(catalog, files):
    bad = DEBIAN_PROMETHEUS.replace("scrape_interval:     15s", "scrape_interval: soon")
    (files / "prometheus.yml").write_text(bad)
    with pytest.raises(UnifiedError, match="rejects the new .*nothing was changed"):
        run_setup(catalog, RecordingSystemd(), files)
    assert (files / "prometheus.yml").read_text() == bad
    assert [p.name for p in files.iterdir() if "backup" in p.name or "unified-new" in p.name] \
        == []


def test_an_unreadable_operator_config_stops_before_anything_changes(catalog, files):
    (files / "prometheus.yml").write_text("scrape_configs: [\n")
    with pytest.raises(UnifiedError, match="cannot read"):
        run_setup(catalog, RecordingSystemd(), files)


def test_a_daemon_that_does_not_stay_up_is_reported(catalog, files):
    class Dies(RecordingSystemd):
        def is_active(self, unit):
            return False

    res = run_setup(catalog, Dies(), files)
    assert any("prometheus-alertmanager.service is not running" in w for w in res.warnings)


# ------------------------------------------------------------------ comments kept
DEBIANS_PROMETHEUS_YML = (ROOT / "tests" / "unit" / "hub" / "debian-prometheus.yml")


def _comments(text: str) -> list[str]:
    return [ln.split("#", 1)[1].strip() for ln in text.splitlines() if "#" in ln]


def test_setup_keeps_every_comment_and_the_order_of_the_operators_prometheus_yml(catalog, files):
    original = DEBIANS_PROMETHEUS_YML.read_text() + "\n# - job_name: later (the operator's note)\n"
    (files / "prometheus.yml").write_text(original)
    run_setup(catalog, RecordingSystemd(), files)
    new = (files / "prometheus.yml").read_text()
    assert new.startswith("# Edited by `unified-ctl monitoring setup`")
    assert _comments(new)[3:] == _comments(original)          # all of them, in their order
    assert new.endswith("# - job_name: later (the operator's note)\n")   # the file's end stays last
    assert "monitor: 'example'" in new                          # quoting kept
    prom = yaml.safe_load(new)
    assert [j["job_name"] for j in prom["scrape_configs"]] == [
        "prometheus", "node", "unified_agents", "unified_hub"]
    assert list(prom) == list(yaml.safe_load(original))        # key order kept


def test_setup_keeps_the_comments_of_alertmanager_yml(catalog, files):
    original = "# Our on-call routing; ask Ann before changing.\n" + DEBIAN_ALERTMANAGER.replace(
        "receivers:\n", "receivers:  # pagers and mails\n")
    (files / "alertmanager.yml").write_text(original)
    run_setup(catalog, RecordingSystemd(), files)
    new = (files / "alertmanager.yml").read_text()
    assert "# Our on-call routing; ask Ann before changing." in new
    assert "receivers:  # pagers and mails" in new or "receivers: # pagers and mails" in new
    assert yaml.safe_load(new)["route"]["routes"][0]["receiver"] == "unified-system"


def test_a_second_setup_with_changes_leaves_one_header(catalog, files, tmp_path):
    run_setup(catalog, RecordingSystemd(), files)
    moved = catalog.agents["ObservabilityHub"].port + 1000
    import dataclasses

    hub = dataclasses.replace(catalog.agents["ObservabilityHub"], port=moved)
    cat2 = dataclasses.replace(catalog, agents={**catalog.agents, "ObservabilityHub": hub})
    res = run_setup(cat2, RecordingSystemd(), files)
    assert res.changes[str(files / "prometheus.yml")] == ["scrape job unified_hub updated"]
    text = (files / "prometheus.yml").read_text()
    assert text.count("# Edited by `unified-ctl monitoring setup`") == 1
    assert "# Sample config for Prometheus." in text


# ------------------------------------------------------------------ monitoring remove
def _snapshot(d) -> dict:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file() and "unified-backup" not in p.name}


def test_remove_restores_every_file_byte_for_byte_and_deletes_what_setup_created(catalog, files):
    (files / "prometheus.yml").write_text(DEBIANS_PROMETHEUS_YML.read_text())
    os.chmod(files / "alertmanager.yml", 0o640)
    before = _snapshot(files)
    # the operator's Prometheus runs; Alertmanager is installed but stopped (disabled)
    hub = "unified-agent@ObservabilityHub.service"
    sd = RecordingSystemd(active={"prometheus.service", hub})
    run_setup(catalog, sd, files)
    assert _snapshot(files) != before and (files / "targets").is_dir()
    assert sd.active == {"prometheus.service", "prometheus-alertmanager.service", hub}
    sd.calls.clear()
    res = undo.remove(sd, settle_s=0)
    assert _snapshot(files) == before
    assert oct(os.stat(files / "alertmanager.yml").st_mode & 0o777) == "0o640"
    assert not (files / "targets").exists() and not (files / "monitoring-state").exists()
    assert sorted(res.restored) == sorted(str(files / n) for n in ("prometheus.yml", "alertmanager.yml", "defaults"))
    assert sd.calls == [("disable", ("prometheus-alertmanager.service",)),   # as before setup
                        ("reload", ("prometheus.service",)),                   # re-reads its file
                        ("restart", (hub,))]           # its targets directory went away
    assert res.stopped == ["prometheus-alertmanager.service"] and res.warnings == []
    with pytest.raises(UnifiedError, match="nothing to restore"):         # done: nothing left
        undo.remove(sd, settle_s=0)


def test_remove_only_stops_a_service_that_was_enabled_before_setup(catalog, files):
    sd = RecordingSystemd(enabled={"prometheus-alertmanager.service"})
    run_setup(catalog, sd, files)
    sd.calls.clear()
    undo.remove(sd, settle_s=0)
    assert ("stop", ("prometheus-alertmanager.service",)) in sd.calls
    assert ("disable", ("prometheus.service",)) in sd.calls


def test_remove_after_two_setups_restores_the_file_as_before_the_first(catalog, files):
    before = _snapshot(files)
    run_setup(catalog, RecordingSystemd(), files)
    (files / "prometheus.yml").write_text((files / "prometheus.yml").read_text().replace(
        "unified_hub", "unified_hub_old"))                      # a job of ours went stale
    run_setup(catalog, RecordingSystemd(), files)
    undo.remove(RecordingSystemd(), settle_s=0)
    assert _snapshot(files) == before


def test_remove_keeps_an_edit_made_after_setup_aside(catalog, files):
    run_setup(catalog, RecordingSystemd(), files)
    edited = (files / "prometheus.yml").read_text() + "# my edit after setup\n"
    (files / "prometheus.yml").write_text(edited)
    res = undo.remove(RecordingSystemd(), settle_s=0)
    kept = res.kept[str(files / "prometheus.yml")]
    assert open(kept).read() == edited
    assert (files / "prometheus.yml").read_text() == DEBIAN_PROMETHEUS
    assert any("changed since `monitoring setup` wrote it" in w for w in res.warnings)


def test_remove_deletes_a_configuration_setup_created(catalog, files):
    os.unlink(files / "prometheus.yml")
    run_setup(catalog, RecordingSystemd(), files)
    assert (files / "prometheus.yml").exists()
    res = undo.remove(RecordingSystemd(), settle_s=0)
    assert not (files / "prometheus.yml").exists() and str(files / "prometheus.yml") in res.deleted


def test_remove_without_a_setup_refuses_clearly(catalog, tmp_path):
    with pytest.raises(UnifiedError, match=r"nothing to restore: `unified-ctl monitoring setup` "
                                           r"has changed no file here \(no record in .*monitoring-state\)"):
        undo.remove(RecordingSystemd(), settle_s=0)


def test_remove_dry_run_says_what_it_would_restore_and_changes_nothing(catalog, files):
    run_setup(catalog, RecordingSystemd(), files)
    after_setup = _snapshot(files)
    sd = RecordingSystemd(active={"prometheus.service"})
    res = undo.remove(sd, dry_run=True, settle_s=0)
    assert res.dry_run and str(files / "prometheus.yml") in res.restored
    assert str(files / "targets") in res.deleted
    assert _snapshot(files) == after_setup and sd.calls == [] and (files / "targets").is_dir()


def test_monitoring_remove_command_previews_asks_then_restores(catalog, files):
    from click.testing import CliRunner

    from unified_ctl.cli import cli

    before = _snapshot(files)
    run_setup(catalog, RecordingSystemd(), files)
    after_setup = _snapshot(files)

    def ctl(*args, input=None):
        return CliRunner(mix_stderr=False).invoke(
            cli, ["-c", str(ROOT / "etc" / "unified" / "unified.yaml"), "monitoring", "remove", *args],
            input=input)

    r = ctl("--dry-run")
    assert r.exit_code == 0, r.stderr
    assert f"{files / 'prometheus.yml'}: would restore as before setup" in r.stdout
    assert f"{files / 'targets'}: would delete (setup created it)" in r.stdout
    r = ctl(input="n\n")
    assert r.exit_code == 1 and "Restore the state before `monitoring setup` (" in r.stdout
    assert _snapshot(files) == after_setup                        # answered no: nothing changed
    r = ctl("--yes", "--no-start")
    assert r.exit_code == 0, r.stderr
    assert _snapshot(files) == before
    r = ctl("--yes", "--no-start")
    assert r.exit_code == 1 and r.stderr.startswith("Error: nothing to restore:")
    assert len(r.stderr.splitlines()) == 1
