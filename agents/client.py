"""Calling other agents: JSON over HTTP/1.1 with timeouts and request-id propagation.

    from unified_agents import client

    result = client.post_json("http://127.0.0.1:7201/task", {"type": "vision", "data": ...},
                              timeout=5)
    state = client.get_json("http://127.0.0.1:7220/health")

    # keep-alive (one connection per thread, reconnects once if the agent closed it):
    twin = client.Client("http://127.0.0.1:7220", timeout=2)
    twin.get_json("/agents/STTService")

Inside a handler the current request's X-Request-ID is sent along automatically, so one id
follows a request through every agent's log. Every failure raises AgentCallError: `.status`
is the HTTP status (None when the agent could not be reached or timed out), `.body` the
decoded JSON error body (or text). `timeout` bounds connecting and each read.

Built on the standard library's http.client, imported on first use (~20 ms): it is
maintained, and an agent that never calls another never pays for it.
"""
from __future__ import annotations

import socket
import threading

from .request_context import current_request_id

DEFAULT_TIMEOUT = 10.0


class AgentCallError(Exception):
    def __init__(self, message: str, *, url: str, status: int | None = None, body=None):
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


def _split(url: str):
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise ValueError(f"only http://host:port/... URLs are supported, not {url!r}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def _connect(host: str, port: int, timeout: float):
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.connect()
    try:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass
    return conn


_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def _was_reset(e: BaseException) -> bool:
    """The connection was closed or reset before the answer (not refused, not a timeout)."""
    import http.client

    return isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError,
                          BrokenPipeError))


def _repeatable(method: str, headers: dict) -> bool:
    """Safe to send twice: an idempotent method, or a POST carrying an Idempotency-Key."""
    return method.upper() in _IDEMPOTENT or any(
        k.lower() == "idempotency-key" for k in headers)


def _headers(request_id, headers, has_body: bool) -> dict:
    from .guard import current

    # X-Unified-Origin: remote while serving an untrusted caller (guard.py: a callee must not
    # trust a call made for someone it would refuse)
    h = current().outgoing_headers()
    h["Accept"] = "application/json"
    if has_body:
        h["Content-Type"] = "application/json"
    rid = request_id or current_request_id()
    if rid:
        h["X-Request-ID"] = rid
    if headers:
        h.update(headers)
    return h


def _encode(obj) -> bytes | None:
    if obj is None:
        return None
    import json

    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def _decode(url: str, status: int, ctype: str, data: bytes):
    if not data:
        body = None
    elif "json" in (ctype or ""):
        import json

        try:
            body = json.loads(data)
        except ValueError:
            raise AgentCallError(f"{url}: answered {status} with invalid JSON", url=url,
                                 status=status, body=data.decode("utf-8", "replace")) from None
    else:
        body = data.decode("utf-8", "replace")
    if status >= 400:
        msg = body.get("error") if isinstance(body, dict) else body
        raise AgentCallError(f"{url}: HTTP {status}: {msg}", url=url, status=status, body=body)
    return body


def _exchange(conn, method: str, path: str, data, headers: dict):
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    return resp, payload


def request_json(method: str, url: str, obj=None, *, timeout: float = DEFAULT_TIMEOUT,
                 request_id: str | None = None, headers: dict | None = None):
    """One request on a fresh connection. Returns the decoded JSON (None when empty)."""
    host, port, path = _split(url)
    data = _encode(obj)
    h = _headers(request_id, headers, data is not None)
    h["Connection"] = "close"
    for attempt in (0, 1):
        conn = None
        try:
            conn = _connect(host, port, timeout)
            resp, payload = _exchange(conn, method, path, data, h)
        except Exception as e:  # refused, reset, timeout (OSError); http.client.HTTPException
            if attempt == 0 and _was_reset(e) and _repeatable(method, h):
                continue  # see Client.request_json
            raise AgentCallError(f"{method} {url} failed: {type(e).__name__}: {e}",
                                 url=url) from e
        finally:
            if conn is not None:
                conn.close()
        return _decode(url, resp.status, resp.getheader("Content-Type", ""), payload)
    raise AssertionError("unreachable")  # pragma: no cover


def get_json(url: str, *, timeout: float = DEFAULT_TIMEOUT, request_id: str | None = None,
             headers: dict | None = None):
    return request_json("GET", url, None, timeout=timeout, request_id=request_id,
                        headers=headers)


def post_json(url: str, obj, *, timeout: float = DEFAULT_TIMEOUT,
              request_id: str | None = None, headers: dict | None = None):
    return request_json("POST", url, obj if obj is not None else {}, timeout=timeout,
                        request_id=request_id, headers=headers)


class Client:
    """Keep-alive client for one agent (base URL); one connection per thread."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT):
        host, port, path = _split(base_url)
        self.base_url = base_url.rstrip("/")
        self.host, self.port = host, port
        self.prefix = path.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def request_json(self, method: str, path: str, obj=None, *, timeout: float | None = None,
                     request_id: str | None = None, headers: dict | None = None):
        url = self.base_url + path
        data = _encode(obj)
        h = _headers(request_id, headers, data is not None)
        timeout = self.timeout if timeout is None else timeout
        for attempt in (0, 1):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._local.conn = _connect(self.host, self.port, timeout)
                else:
                    conn.sock.settimeout(timeout)
                resp, payload = _exchange(conn, method, self.prefix + path, data, h)
            except Exception as e:
                self.close()
                stale = _was_reset(e)
                # Retry once when the agent closed an idle keep-alive connection, or when a
                # request that is safe to repeat (RFC 9110 9.2.2; a POST with an
                # Idempotency-Key) was reset: a kill -9 cannot answer requests already in
                # the process, while its socket queues the retry for the next instance.
                if stale and attempt == 0 and (reused or _repeatable(method, h)):
                    continue
                raise AgentCallError(f"{method} {url} failed: {type(e).__name__}: {e}",
                                     url=url) from e
            if resp.will_close:
                self.close()
            return _decode(url, resp.status, resp.getheader("Content-Type", ""), payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str, **kw):
        return self.request_json("GET", path, None, **kw)

    def post_json(self, path: str, obj=None, **kw):
        return self.request_json("POST", path, obj if obj is not None else {}, **kw)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
