"""`unified-ctl monitoring setup`: wire Debian's Prometheus (9090) and Alertmanager (9093) to
unified-system, without clobbering what the operator already has.

What it changes (each only when needed, so a second run changes nothing):
  /etc/prometheus/prometheus.yml     + our rules file in rule_files; jobs unified_agents
                                     (file_sd of the agents' health ports) and unified_hub
                                     (the hub's fleet view) in scrape_configs, replacing only
                                     jobs of those names; an Alertmanager on localhost:9093 in
                                     alerting.alertmanagers when none is listed
  /etc/prometheus/alertmanager.yml   + route (first, continue: true) and receiver
                                     `unified-system` for alerts labelled system="unified";
                                     written whole when the file does not exist
  /etc/default/prometheus-alertmanager   Debian's untouched ARGS="" → --cluster.listen-address=
                                     (no gossip cluster: it cannot start without a private
                                     IP address, e.g. on an offline box); other ARGS are kept
  /var/lib/unified-prometheus/       created (owner unified, mode 0755): the hub writes the
                                     file_sd targets there and Prometheus reads them
Then, unless --no-start: Prometheus and Alertmanager are enabled and started, or reloaded
when they run; the hub is restarted when the targets directory was just created (its unit
makes the directory writable with ReadWritePaths=, which takes effect at start).

Safety: every file is validated before it replaces the old one (`promtool check config`,
`amtool check-config`, in the same directory so relative paths resolve the same), the old one
is kept as FILE.unified-backup-YYYYmmdd-HHMMSS, and the replacement is atomic. The YAML is
edited in round-trip mode (yaml_edit.py: ruamel.yaml), so the operator's comments, key order
and quoting stay. Pure merge functions (no I/O) are what the unit tests exercise; they change
a copy of the document in place, so that the comments attached to it go along.

`unified-ctl monitoring remove` undoes it all: before a file is first replaced, its original
is kept in /var/lib/unified-system/monitoring (monitoring_undo.py), and remove puts it back
byte for byte, deletes what setup created and reloads the daemons.

(The fleet's health as `unified-ctl health` and `status` show it is another job: fleet_health.py.)
"""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

import yaml

from unified_core.errors import UnifiedError

from . import monitoring_undo as undo
from . import yaml_edit

PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_CONFIG = "/etc/prometheus/alertmanager.yml"
ALERTMANAGER_DEFAULTS = "/etc/default/prometheus-alertmanager"
NO_CLUSTER = "--cluster.listen-address="
TARGETS_DIR = "/var/lib/unified-prometheus"
TARGETS_FILE = TARGETS_DIR + "/targets.json"   # the hub's default (hub_targets.DEFAULT_PATH)
SHIPPED_DIR = "/etc/unified/prometheus"
RULES_FILE = "unified-rules.yml"
SCRAPE_FILE = "unified-scrape.yml"
AM_FILE = "alertmanager-unified.yml"
JOBS = ("unified_agents", "unified_hub")
ALERTMANAGER_TARGET = "localhost:9093"
RECEIVER = "unified-system"
HUB = "ObservabilityHub"
PROMETHEUS_UNIT = "prometheus.service"
ALERTMANAGER_UNIT = "prometheus-alertmanager.service"


def shipped_dir() -> str:
    """Installed files, else the source tree's etc/prometheus (running from a checkout)."""
    d = os.environ.get("UNIFIED_PROMETHEUS_DIR")
    if d:
        return d
    if os.path.isdir(SHIPPED_DIR):
        return SHIPPED_DIR
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "etc", "prometheus")


# ------------------------------------------------------------------ pure merges
def hub_facts(cat) -> tuple[str, str]:
    """(hub address host:port, file_sd targets file) from the catalog."""
    bind = cat.settings.bind_address
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(bind, bind)
    hub = cat.agents.get(HUB)
    if hub is None:
        raise UnifiedError(f"the catalog has no {HUB}; the Prometheus wiring scrapes it")
    env = dict(hub.environment)
    targets = env.get("HUB_TARGETS_FILE", TARGETS_FILE)
    h = f"[{host}]" if ":" in host else host
    return f"{h}:{hub.port}", targets


def our_jobs(scrape_doc: dict, hub_address: str, targets_file: str) -> list[dict]:
    """The shipped jobs with this catalog's hub address and targets file."""
    jobs = copy.deepcopy(scrape_doc.get("scrape_configs") or [])
    for j in jobs:
        if j.get("job_name") == "unified_agents":
            for sd in j.get("file_sd_configs") or []:
                sd["files"] = [targets_file]
        elif j.get("job_name") == "unified_hub":
            for sc in j.get("static_configs") or []:
                sc["targets"] = [hub_address]
    names = sorted(j.get("job_name") for j in jobs)
    if names != sorted(JOBS):
        raise UnifiedError(f"{SCRAPE_FILE} must hold the jobs {', '.join(JOBS)}; it has "
                           f"{', '.join(map(str, names)) or 'none'}")
    return jobs


def merge_prometheus(config: dict | None, jobs: list[dict], rules_path: str,
                     alertmanager: str = ALERTMANAGER_TARGET) -> tuple[dict, list[str]]:
    """→ (merged config, what changed). The input is not modified."""
    cfg = copy.deepcopy(config) if config else {}
    changes: list[str] = []
    if not config:
        cfg["global"] = {"scrape_interval": "15s", "evaluation_interval": "15s"}
        changes.append("new configuration (global: 15s scrape and evaluation)")
    rules = cfg.get("rule_files") or []
    if rules_path not in rules:
        if isinstance(cfg.get("rule_files"), list):
            cfg["rule_files"].append(rules_path)     # in place: its comments stay
        else:
            cfg["rule_files"] = [rules_path]
        changes.append(f"rule_files += {rules_path}")
    if not isinstance(cfg.get("scrape_configs"), list):
        cfg["scrape_configs"] = []
    scrape = cfg["scrape_configs"]
    for job in jobs:
        idx = [i for i, j in enumerate(scrape) if isinstance(j, dict)
               and j.get("job_name") == job["job_name"]]
        if not idx:
            scrape.append(job)
            changes.append(f"scrape job {job['job_name']} added")
        elif scrape[idx[0]] != job:
            scrape[idx[0]] = job
            changes.append(f"scrape job {job['job_name']} updated")
    alerting = cfg.get("alerting") or {}
    ams = alerting.get("alertmanagers") or []
    listed = [t for am in ams if isinstance(am, dict)
              for sc in am.get("static_configs") or [] for t in sc.get("targets") or []]
    if not any(t.split(":")[-1] == alertmanager.split(":")[-1] for t in listed):
        ours = {"static_configs": [{"targets": [alertmanager]}]}
        if not isinstance(cfg.get("alerting"), dict):
            cfg["alerting"] = {"alertmanagers": [ours]}
        elif isinstance(alerting.get("alertmanagers"), list):
            alerting["alertmanagers"].append(ours)
        else:
            alerting["alertmanagers"] = [ours]
        changes.append(f"alerting.alertmanagers += {alertmanager}")
    return cfg, changes


def port_clashes(config: dict | None, cat) -> list[str]:
    """Other jobs that scrape one of our AGENT ports on this host (a scrape would start a
    dormant agent and read a 404), e.g. a job an operator added for an agent's port by hand."""
    by_port = {a.port: a.name for a in cat.agents.values()}
    out = []
    for j in (config or {}).get("scrape_configs") or []:
        if not isinstance(j, dict) or j.get("job_name") in JOBS:
            continue
        for sc in j.get("static_configs") or []:
            for t in sc.get("targets") or []:
                host, _, port = str(t).rpartition(":")
                if host.strip("[]") in ("localhost", "127.0.0.1", "::1", "") and \
                        port.isdigit() and int(port) in by_port:
                    out.append(f"job {j.get('job_name')!r} scrapes {t}, the agent port of "
                               f"{by_port[int(port)]} (each scrape starts it and gets a 404); "
                               "move that exporter or remove the job")
    return out


def merge_alertmanager(config: dict | None, snippet: dict) -> tuple[dict, list[str]]:
    """→ (merged config, what changed): our receiver, and our route first among the routes."""
    our_route = copy.deepcopy(snippet["route"]["routes"][0])
    our_receiver = copy.deepcopy(snippet["receivers"][0])
    if not config:
        return ({"route": {"receiver": our_receiver["name"],
                           "group_by": list(our_route.get("group_by") or ["alertname"]),
                           "routes": [our_route]},
                 "receivers": [our_receiver]},
                ["new configuration (every alert to receiver unified-system)"])
    cfg = copy.deepcopy(config)   # changed in place below: comments attached to it stay
    changes = []
    if not isinstance(cfg.get("receivers"), list):
        cfg["receivers"] = []
    receivers = cfg["receivers"]
    if not any(isinstance(r, dict) and r.get("name") == our_receiver["name"] for r in receivers):
        receivers.append(our_receiver)
        changes.append(f"receiver {our_receiver['name']} added")
    if not isinstance(cfg.get("route"), dict):
        cfg["route"] = {}
    route = cfg["route"]
    if not isinstance(route.get("routes"), list):
        route["routes"] = []
    routes = route["routes"]
    if not any(isinstance(r, dict) and r.get("receiver") == our_route["receiver"] for r in routes):
        routes.insert(0, our_route)
        changes.append("route for system=\"unified\" added (first, continue: true)")
    if "receiver" not in route:
        route["receiver"] = our_receiver["name"]
        changes.append("root route receiver set")
    return cfg, changes


def merge_alertmanager_args(text: str | None) -> tuple[str | None, list[str]]:
    """Debian's untouched ARGS="" → clustering off. Alertmanager starts a gossip cluster by
    default and refuses to start when the box has no private IP address (offline, loopback
    only: measured); one Alertmanager per box needs no cluster. ARGS the operator set are
    left alone."""
    if text is None:
        return None, []
    import re

    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if re.fullmatch(r'ARGS=(""|\'\')?\s*', line.rstrip("\n")):
            lines[i] = ("# unified-ctl monitoring setup: one Alertmanager on this box, no gossip "
                        "cluster\n# (the cluster needs a private IP address to start).\n"
                        f'ARGS="{NO_CLUSTER}"\n')
            return "".join(lines), [f"ARGS: {NO_CLUSTER} (no cluster: a single box)"]
    return text, []


# ------------------------------------------------------------------ files
def load_yaml(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as e:
        raise UnifiedError(f"cannot read {path}: {e}; fix it (nothing was changed)") from None
    if data is not None and not isinstance(data, dict):
        raise UnifiedError(f"{path} is not a YAML mapping; fix it (nothing was changed)")
    return data


def read_config(path: str) -> tuple[str | None, dict | None]:
    """An operator's file for editing: (its text, the document in round-trip form); (None,
    None) when it does not exist."""
    try:
        with open(path) as f:
            text = f.read()
        data = yaml_edit.load(text)
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, yaml_edit.YAMLError) as e:
        raise UnifiedError(f"cannot read {path}: {e}; fix it (nothing was changed)") from None
    if data is not None and not isinstance(data, dict):
        raise UnifiedError(f"{path} is not a YAML mapping; fix it (nothing was changed)")
    return text, data


def check_file(tool: list[str], path: str) -> str:
    """Run a validator (promtool/amtool) on path. → its output. UnifiedError when invalid."""
    exe = shutil.which(tool[0])
    if exe is None:
        raise UnifiedError(f"{tool[0]} not found: it validates the configuration before it is "
                           "used (apt install prometheus prometheus-alertmanager)")
    try:
        p = subprocess.run([exe, *tool[1:], path], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise UnifiedError(f"{tool[0]} did not finish checking {path}") from None
    out = (p.stdout + p.stderr).strip()
    if p.returncode != 0:
        raise UnifiedError(f"{tool[0]} rejects the new {path}; nothing was changed:\n{out}")
    return out


def install_config(path: str, data: dict, validator: list[str], header: str,
                   stamp: str, old_text: str | None = None, state_dir: str | None = None,
                   unit: str = PROMETHEUS_UNIT) -> str | None:
    """Validate `data` written next to `path` (laid out like old_text, our previous header
    replaced by `header`), keep a backup and the original (monitoring_undo; `unit` reloads
    it), replace atomically. → the backup path (None when there was no file)."""
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.unified-new")
    text = header + _without_header(yaml_edit.dump(data, old_text or ""))
    with open(tmp, "w") as f:
        f.write(text)
    try:
        check_file(validator, tmp)
        undo.remember_file(state_dir, path, text.encode(), unit)
        backup = None
        if os.path.exists(path):
            backup = f"{path}.unified-backup-{stamp}"
            shutil.copy2(path, backup)
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o7777)
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return backup
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


HEADER = ("# Edited by `unified-ctl monitoring setup` ({when}): {what}.\n"
          "# The previous file is kept as {backup}; `unified-ctl monitoring remove` restores\n"
          "# the file as it was before the first setup.\n")


def _without_header(text: str) -> str:
    """The file without the header of an earlier setup (a file gets one header, the last)."""
    lines = text.splitlines(keepends=True)
    i = 0
    if lines and lines[0].startswith("# Edited by `unified-ctl monitoring setup`"):
        i = 1
        while i < len(lines) and lines[i].startswith(("# The previous file", "# the file as it was")):
            i += 1
    return "".join(lines[i:])


def ensure_targets_dir(path: str) -> bool:
    """Create the file_sd directory: owner unified (the hub writes), world-readable
    (Prometheus runs with PrivateUsers=, so it reads as "other"). → created now?"""
    if os.path.isdir(path):
        return False
    os.makedirs(path, mode=0o755)
    os.chmod(path, 0o755)
    try:
        import pwd

        pw = pwd.getpwnam("unified")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    except (KeyError, PermissionError):
        pass
    return True


@dataclass
class SetupResult:
    changes: dict = field(default_factory=dict)    # file -> [changes]
    backups: dict = field(default_factory=dict)    # file -> backup path
    warnings: list = field(default_factory=list)
    actions: list = field(default_factory=list)    # services started/reloaded/restarted
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"dry_run": self.dry_run, "changed": any(self.changes.values()),
                "changes": self.changes, "backups": self.backups, "warnings": self.warnings,
                "actions": self.actions}


def setup(cat, sd, *, prometheus_config: str = PROMETHEUS_CONFIG,
          alertmanager_config: str = ALERTMANAGER_CONFIG, dry_run: bool = False,
          start: bool = True, targets_dir: str | None = None,
          alertmanager_defaults: str | None = None, settle_s: float = 3.0,
          state_dir: str | None = None) -> SetupResult:
    """state_dir: where the originals of changed files are kept (paths.monitoring_dir())."""
    res = SetupResult(dry_run=dry_run)
    src = shipped_dir()
    rules_path = os.path.join(src, RULES_FILE)
    scrape_doc = load_yaml(os.path.join(src, SCRAPE_FILE))
    am_snippet = load_yaml(os.path.join(src, AM_FILE))
    if not scrape_doc or not am_snippet or not os.path.exists(rules_path):
        raise UnifiedError(f"the shipped Prometheus files are missing from {src} "
                           "(reinstall unified-system)")
    if shutil.which("prometheus") is None and not os.path.exists(prometheus_config):
        raise UnifiedError("Prometheus is not installed: apt install prometheus "
                           "prometheus-alertmanager, then run this again")
    hub_address, targets_file = hub_facts(cat)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    when = time.strftime("%Y-%m-%d %H:%M:%S")

    # Prometheus
    text, current = read_config(prometheus_config)
    merged, changes = merge_prometheus(current, our_jobs(scrape_doc, hub_address, targets_file),
                                       rules_path)
    res.changes[prometheus_config] = changes
    res.warnings += port_clashes(merged, cat)
    if changes and not dry_run:
        backup_name = f"{prometheus_config}.unified-backup-{stamp}" if current is not None \
            else "(none: new file)"
        b = install_config(prometheus_config, merged, ["promtool", "check", "config"],
                           HEADER.format(when=when, what="; ".join(changes), backup=backup_name),
                           stamp, text, state_dir)
        if b:
            res.backups[prometheus_config] = b

    # Alertmanager (optional: Prometheus works without it)
    am_present = shutil.which("prometheus-alertmanager") or os.path.exists(alertmanager_config)
    if am_present:
        text, current = read_config(alertmanager_config)
        merged_am, changes = merge_alertmanager(current, am_snippet)
        res.changes[alertmanager_config] = changes
        if changes and not dry_run:
            backup_name = f"{alertmanager_config}.unified-backup-{stamp}" if current is not None \
                else "(none: new file)"
            b = install_config(alertmanager_config, merged_am, ["amtool", "check-config"],
                               HEADER.format(when=when, what="; ".join(changes),
                                             backup=backup_name), stamp, text, state_dir,
                               ALERTMANAGER_UNIT)
            if b:
                res.backups[alertmanager_config] = b
        try:
            with open(ALERTMANAGER_DEFAULTS if alertmanager_defaults is None
                      else alertmanager_defaults) as f:
                defaults_text = f.read()
        except FileNotFoundError:
            defaults_text = None
        defaults_path = alertmanager_defaults or ALERTMANAGER_DEFAULTS
        new_text, changes = merge_alertmanager_args(defaults_text)
        res.changes[defaults_path] = changes
        if changes and new_text is not None and not dry_run:
            backup = f"{defaults_path}.unified-backup-{stamp}"
            shutil.copy2(defaults_path, backup)
            tmp = defaults_path + ".unified-new"
            with open(tmp, "w") as f:
                f.write(new_text)
            shutil.copymode(defaults_path, tmp)
            # ARGS are read at start only
            undo.remember_file(state_dir, defaults_path, new_text.encode(), ALERTMANAGER_UNIT,
                               "restart")
            os.replace(tmp, defaults_path)
            res.backups[defaults_path] = backup
    else:
        res.warnings.append("prometheus-alertmanager is not installed: alerts stay in "
                            "Prometheus (apt install prometheus-alertmanager)")

    # The targets directory
    tdir = targets_dir or os.path.dirname(targets_file)
    created = False
    if not os.path.isdir(tdir):
        res.changes[tdir] = ["created (owner unified, mode 0755)"]
        if not dry_run:
            created = ensure_targets_dir(tdir)
            # the hub's unit makes it writable at start (ReadWritePaths=)
            undo.remember_dir(state_dir, tdir, cat.agents[HUB].service)
    else:
        res.changes[tdir] = []

    if dry_run or not start:
        return res
    hub = cat.agents[HUB]
    if created and sd.is_active(hub.service):
        sd.restart([hub.service])
        res.actions.append(f"restarted {hub.service} (the targets directory is writable from "
                           "its next start)")
    started = []
    for unit, paths in ((PROMETHEUS_UNIT, [prometheus_config]),
                        (ALERTMANAGER_UNIT, [alertmanager_config,
                                             alertmanager_defaults or ALERTMANAGER_DEFAULTS]
                         if am_present else None)):
        if paths is None:
            continue
        if sd.is_active(unit):
            if any(res.changes.get(p) for p in paths):
                # ARGS are read at start only; the configuration file on reload
                if res.changes.get(paths[-1]) and unit == ALERTMANAGER_UNIT:
                    sd.restart([unit])
                    res.actions.append(f"restarted {unit}")
                else:
                    sd.reload([unit])
                    res.actions.append(f"reloaded {unit}")
        else:
            was = sd.show([unit], ("UnitFileState",)).get(unit, {}).get("UnitFileState", "")
            sd.reset_failed([unit])
            sd.enable([unit], now=True)
            undo.remember_started(state_dir, unit, enabled_before=was == "enabled")
            res.actions.append(f"enabled and started {unit}")
        started.append(unit)
    # A daemon that exits right after its start (bad flags, no address) shows as inactive
    # or failed a moment later: say so with its last log lines instead of claiming success.
    if res.actions:
        time.sleep(settle_s)
    for unit in started:
        if not sd.is_active(unit):
            tail = "\n".join(sd.journal_tail([unit], 5))
            res.warnings.append(f"{unit} is not running after the setup; its last log "
                                f"lines:\n{tail}")
    return res

