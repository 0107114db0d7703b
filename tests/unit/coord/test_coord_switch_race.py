"""Right after `unified-ctl profile switch`, LazyLoader and RequestCoordinator serve the new
profile, even when their catalog watcher is in the middle of reloading it.

The race (a clean-clone CI got 409 "not in the current profile core" right after switching to
vision): a request reads the old snapshot, the watcher has already taken the new file stamp
and is parsing the catalog; the request's own re-check waits for the watcher, finds the stamp
unchanged, "nothing to reload", and refused with the snapshot it read before. The tests hold
the watcher inside its reload until the request is waiting for it: no timing, no sleep."""
import threading

from unified_agents.builtin.lazy_loader import Loader
from unified_agents.builtin.request_coordinator import RequestCoordinator
from unified_core.fleetview import FleetView
from unified_agents.config import load as load_config
from unified_agents.log import Logger
from unified_core.health import HealthResult

from .conftest import Fleet
from .test_coord_registry import Seam, svc


class WatcherMidReload:
    """Holds the watcher's catalog reload (view._load on the thread named catalog-watch)
    until a request thread is waiting for the view's reload lock."""

    def __init__(self, view: FleetView):
        self.view = view
        self.in_reload = threading.Event()
        self.request_waits = threading.Event()
        real_load, real_lock = view._load, view._lock

        def load(version):
            if threading.current_thread().name == "catalog-watch":
                self.in_reload.set()
                assert self.request_waits.wait(10), "the request never re-checked the catalog"
            return real_load(version)

        outer = self

        class Lock:
            def __enter__(self):
                if threading.current_thread().name != "catalog-watch":
                    outer.request_waits.set()
                return real_lock.__enter__()

            def __exit__(self, *exc):
                return real_lock.__exit__(*exc)

        view._load, view._lock = load, Lock()

    def switch(self, etc, profile: str) -> threading.Thread:
        """What `profile switch` writes, then the watcher's tick (which stops in the reload)."""
        (etc / "selected-profile").write_text(profile + "\n")
        t = threading.Thread(target=self.view.refresh_catalog, name="catalog-watch", daemon=True)
        t.start()
        assert self.in_reload.wait(10)
        return t


def fleet_files(tmp_path, monkeypatch, sdk_path) -> Fleet:
    monkeypatch.setenv("UNIFIED_ETC", str(tmp_path / "etc"))
    return Fleet(tmp_path, spawner=type("S", (), {"sdk_path": sdk_path, "sockets": []})())


def test_lazyloader_loads_an_agent_of_the_new_profile_while_the_watcher_reloads(
        tmp_path, monkeypatch, sdk_path):
    fleet = fleet_files(tmp_path, monkeypatch, sdk_path)
    seam = Seam({"unified-agent@Faraway.service": svc("active", MainPID="7"),
                 "unified-agent@Faraway.socket": svc("active")})
    view = FleetView(str(fleet.catalog), systemd=seam,
                     probe=lambda host, port, timeout: HealthResult(True, "healthy", {}))
    loader = Loader(view, probe=lambda host, port, timeout: HealthResult(True, "healthy", {}))
    race = WatcherMidReload(view)
    watcher = race.switch(tmp_path / "etc", "extra")

    result = loader.load("Faraway")             # a LoadError(409) before the fix

    watcher.join(10)
    assert result["profile"] == "extra" and result["health"] == "healthy"


def test_requestcoordinator_routes_a_type_of_the_new_profile_while_the_watcher_reloads(
        tmp_path, monkeypatch, sdk_path):
    fleet = fleet_files(tmp_path, monkeypatch, sdk_path)
    rc = RequestCoordinator()
    rc.config = load_config({"UNIFIED_AGENT": "Coordinator", "UNIFIED_PORT": "1",
                             "UNIFIED_HEALTH_PORT": "2", "UNIFIED_CATALOG": str(fleet.catalog)})
    rc.log = Logger("Coordinator", "WARNING", journal=False)
    monkeypatch.setattr(FleetView, "start_watching", lambda self: None)  # the test's watcher
    rc.on_start()
    race = WatcherMidReload(rc.view)
    watcher = race.switch(tmp_path / "etc", "extra")

    target = rc.route_of("far")                 # an HTTPError(409) before the fix

    watcher.join(10)
    assert target.agent == "Faraway" and target.in_profile
    assert rc.route_table(None)["profile"] == "extra"
