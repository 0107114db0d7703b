"""One asyncio event loop on its own thread, for `async def` handlers and hooks.

Started only when the agent defines a coroutine handler or hook: importing asyncio costs
~50 ms here (it imports ssl), which plain-`def` agents never pay.
"""
from __future__ import annotations

import asyncio
import threading


class AsyncRunner:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,),
                                       name="unified-asyncio", daemon=True)
        self.thread.start()
        ready.wait()

    def _run(self, ready) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def submit(self, coro):
        """Schedule a coroutine from any thread; returns a concurrent.futures.Future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run_sync(self, coro, timeout: float | None = None):
        """Run a coroutine on the loop and wait for its result (not from the loop thread)."""
        return self.submit(coro).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
