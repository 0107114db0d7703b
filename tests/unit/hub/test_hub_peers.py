"""Peers' JSON (RequestCoordinator's breakers, ModelManagerSuite's routing stats): asked
only while the peer runs (its agent port would socket-activate it otherwise), a missing
route is "unavailable", a failure keeps the last answer."""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from unified_agents.builtin.hub_peers import PeerPoller, open_breakers, routing_split

from .test_hub_alerts import all_up, unit
from .test_hub_units import View

BREAKERS = {"agents": {"Worker": {"state": "open", "failures": 5, "last_failure": "HTTP 500"},
                       "Sleeper": {"state": "closed", "failures": 0},
                       "Helper": {"state": "half_open", "failures": 5}},
            "open": ["Worker"]}


class Peer:
    """A stand-in agent port answering fixed JSON, counting requests."""

    def __init__(self, port):
        self.routes = {}
        self.requests = []
        peer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                peer.requests.append(self.path)
                status, body = peer.routes.get(self.path, (404, {"error": "no such path"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def peer(catalog):
    p = Peer(catalog.agents["RequestCoordinator"].port)
    yield p
    p.close()


def poller(catalog, units):
    return PeerPoller("circuit_breakers", "RequestCoordinator", "/circuit_breakers",
                      View(catalog), lambda: units, 5.0)


def running_coordinator():
    u = unit("RequestCoordinator")
    u.pid = os.getpid()            # a process that exists
    return all_up(RequestCoordinator=u)


def test_a_running_peer_is_asked_and_its_open_breakers_read(catalog, peer):
    peer.routes["/circuit_breakers"] = (200, BREAKERS)
    p = poller(catalog, running_coordinator())
    assert p.run_once()
    v = p.view_dict()
    assert v["available"] is True and v["reason"] == "ok" and v["data"] == BREAKERS
    assert open_breakers(v["data"]) == [
        {"agent": "Helper", "state": "half_open", "failures": 5, "last_failure": None},
        {"agent": "Worker", "state": "open", "failures": 5, "last_failure": "HTTP 500"}]


@pytest.mark.parametrize("state", ["dormant", "stopped", "failed", "starting"])
def test_a_peer_that_is_not_running_is_never_asked(catalog, peer, state):
    peer.routes["/circuit_breakers"] = (200, BREAKERS)
    p = poller(catalog, all_up(RequestCoordinator=unit("RequestCoordinator", state)))
    assert p.run_once()
    assert peer.requests == []
    assert "never wakes" in p.view_dict()["reason"]


def test_a_peer_whose_process_just_exited_is_not_asked(catalog, peer):
    u = unit("RequestCoordinator")
    u.pid = 2**22 + 12345          # no such process
    p = poller(catalog, all_up(RequestCoordinator=u))
    p.run_once()
    assert peer.requests == [] and "gone" in p.view_dict()["reason"]


def test_a_peer_without_the_route_is_unavailable_not_an_error(catalog, peer):
    p = poller(catalog, running_coordinator())
    assert p.run_once()
    v = p.view_dict()
    assert v["available"] is False and "404" in v["reason"] and v["error"] is None


def test_a_failing_peer_keeps_the_last_answer(catalog, peer):
    peer.routes["/circuit_breakers"] = (200, BREAKERS)
    p = poller(catalog, running_coordinator())
    p.run_once()
    peer.routes["/circuit_breakers"] = (500, {"error": "internal error"})
    assert not p.run_once()
    v = p.view_dict()
    assert v["data"] == BREAKERS and "500" in v["error"]


def test_a_peer_not_in_the_catalog(catalog):
    p = PeerPoller("x", "Nobody", "/x", View(catalog), lambda: {}, 5.0)
    p.run_once()
    assert "not in the catalog" in p.view_dict()["reason"]


def test_routing_split_from_model_manager_stats():
    assert routing_split({"by_backend": {"local": 7, "cloud": 3}, "count": 10}) == \
        {"local": 7, "cloud": 3}
    assert routing_split({"backends": {"local": {"decisions": 4}}}) == {"local": 4}
    assert routing_split({"count": 0}) == {} and routing_split(None) == {}
    assert open_breakers(None) == [] and open_breakers({"agents": []}) == []
