"""Agents the SDK tests run as entry points (UNIFIED_RUN=entry_point:sdk_sample_agents:...)."""
import asyncio
import os
import threading
import time

from unified_agents import Agent, HTTPError, Response, client, current_request, route


class Registry(Agent):
    """Routes with path parameters, query, bodies, errors, async, inline, client calls."""

    task_types = ("lookup",)

    def on_start(self):
        self.items = {"ServiceRegistry": {"port": 7200}}
        self.lock = threading.Lock()
        self.add_route("GET", "/dynamic", lambda req: {"dynamic": True})

    def handle_task(self, task):
        return {"found": task.get("data") in self.items}

    def release_caches(self):
        return 1234

    @route("GET", "/only-health", listener="health")
    def only_health(self, request):
        return {"port": request.listener}

    @route("GET", "/agents")
    def list_agents(self, request):
        return {"agents": sorted(self.items), "query": request.query}

    @route("GET", "/agents/{name}")
    def get_agent(self, request):
        name = request.params["name"]
        if name not in self.items:
            raise HTTPError(404, f"agent {name} is not registered")
        return {"name": name, **self.items[name]}

    @route("PUT", "/agents/{name}")
    def put_agent(self, request):
        with self.lock:
            self.items[request.params["name"]] = request.json()
        return 201, {"stored": request.params["name"]}

    @route("POST", "/memory/clear")
    def clear(self, request):
        with self.lock:
            n = len(self.items)
            self.items.clear()
        return {"cleared": n}

    @route("GET", "/files/{rest:path}")
    def files(self, request):
        return {"rest": request.params["rest"]}

    @route("GET", "/whoami", inline=True)
    def whoami(self, request):
        return {"request_id": request.request_id, "current": current_request().request_id,
                "listener": request.listener, "route": request.route}

    @route("GET", "/async/{n}")
    async def slow_async(self, request):
        await asyncio.sleep(float(request.params["n"]))
        return {"slept": float(request.params["n"]),
                "rid": current_request().request_id}

    @route("GET", "/block/{ms}", inline=True)
    def block(self, request):
        """Blocks the I/O loop itself (what a hung loop looks like to the watchdog)."""
        time.sleep(int(request.params["ms"]) / 1000)
        return {"blocked_ms": int(request.params["ms"])}

    @route("GET", "/boom")
    def boom(self, request):
        raise ValueError("kaboom")

    @route("GET", "/text")
    def text(self, request):
        return "plain text"

    @route("GET", "/none")
    def nothing(self, request):
        return None

    @route("GET", "/raw")
    def raw(self, request):
        return Response(202, b"raw", "application/x-test", {"X-Extra": "1"})

    @route("GET", "/sleep/{ms}")
    def sleep(self, request):
        time.sleep(int(request.params["ms"]) / 1000)
        return {"slept_ms": int(request.params["ms"])}

    @route("POST", "/call")
    def call(self, request):
        """Calls another URL with the client helper: the request id must travel along."""
        target = request.json()["url"]
        return {"downstream": client.get_json(target, timeout=5)}

    def health_checks(self):
        if os.environ.get("SAMPLE_UNHEALTHY"):
            return {"database": {"status": "fail", "error": "locked"}}
        return {"database": True, "cache": {"status": "degraded"}
                if os.environ.get("SAMPLE_DEGRADED") else True}

    def health_info(self):
        return {"queue_size": len(self.items)}


class AsyncTasks(Agent):
    async def on_start(self):
        await asyncio.sleep(0)
        self.started = True

    async def handle_task(self, task):
        await asyncio.sleep(0.01)
        return {"async": True, "type": task["type"]}


class BadStart(Agent):
    def on_start(self):
        raise RuntimeError("database missing")


class Conflicting(Agent):
    @route("POST", "/task")
    def mine(self, request):
        return {}


def factory():
    a = Registry()
    a.version = "9.9.9"
    return a


not_an_agent = object
