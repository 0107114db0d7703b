"""A small HTTP/1.1 server on `selectors`: one I/O thread, handlers elsewhere.

Why not http.server: it costs ~30 ms to import here (email.parser, html, mimetypes ...) of a
100 ms cold-start budget, parses headers with the email package, and needs a thread per
connection. asyncio costs ~50 ms to import (it pulls in ssl). This module needs only
`selectors`, `socket` and `time` (~3 ms) and is shaped for the agent's needs:

* the I/O thread (the caller of `poll()`) accepts, reads, parses and writes; it never runs
  author code unless a route is declared `inline`. Requests whose headers and body are
  complete go to `dispatch(conn, request)`, which answers at once (returns a Response) or
  later from any thread with `complete(conn, request, response)`;
* parsing is incremental and bounded: request line/headers ≤ 64 KiB, body ≤ max_body
  (413), garbage → 400 as soon as it is seen, slow or silent clients → 408/close after
  request_timeout, idle keep-alive connections close after keepalive_timeout;
* error responses that break framing close the connection with a lingering close (shut
  down writing, discard input for a moment) so the client reads the error instead of RST;
* `stop_accepting()` only stops watching the listening sockets; it never closes them (the
  agent socket belongs to systemd, queued connections stay queued for the next instance).
"""
from __future__ import annotations

import os
import selectors
import socket
import time
from collections import deque

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    301: "Moved Permanently", 302: "Found", 304: "Not Modified",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
    411: "Length Required", 413: "Content Too Large", 414: "URI Too Long",
    415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout", 505: "HTTP Version Not Supported", 507: "Insufficient Storage",
}
MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
LINGER_S = 2.0
LINGER_MAX_BYTES = 4 << 20
_INF = float("inf")
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_RID_OK = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:")

_json = None


def _json_mod():
    global _json
    if _json is None:
        import json
        _json = json
    return _json


class HTTPError(Exception):
    """Raise from a handler to answer `status` with `{"error": message, ...}`."""

    def __init__(self, status: int, message: str | None = None, *, headers=None, **fields):
        # (.get(status) or: with a default, mypy 1.0 types the reason Optional like `message`)
        super().__init__(message or REASONS.get(status) or "error")
        self.status = status
        self.message = message or REASONS.get(status) or "error"
        self.headers = headers or {}
        self.fields = fields


class Response:
    """An HTTP response. Handlers may also return dict/list (JSON 200), (status, body[,
    headers]), str (text/plain), bytes (application/octet-stream) or None (204)."""

    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int = 200, body: bytes = b"", content_type: str | None = None,
                 headers: dict | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers

    @classmethod
    def json(cls, obj, status: int = 200, headers: dict | None = None) -> "Response":
        body = _json_mod().dumps(obj, separators=(",", ":"), default=str).encode() + b"\n"
        return cls(status, body, "application/json", headers)

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8",
             headers: dict | None = None) -> "Response":
        return cls(status, text.encode(), content_type, headers)


def error_response(status: int, message: str, request_id: str | None, headers=None,
                   **fields) -> Response:
    obj = {"error": message, "status": status}
    if request_id:
        obj["request_id"] = request_id
    if fields:
        obj.update(fields)
    return Response.json(obj, status, headers)


class Request:
    """What a handler gets.

    method, path (decoded of nothing; no query), query_string, version ('HTTP/1.1'), headers
    (dict, lower-case names), body (bytes), params (path parameters), request_id, client
    ((host, port)), listener ('agent' | 'health'), route (the matched template), and:
    `json()` (parsed body; HTTPError 400 on bad JSON), `query` / `query_all` (parsed lazily),
    `header(name, default)`.
    """

    __slots__ = ("method", "target", "path", "query_string", "version", "headers", "body",
                 "params", "request_id", "client", "listener", "route", "received",
                 "keep_alive", "task_type", "trace", "_query", "_json")

    def __init__(self, method, target, version, headers, body, client, listener):
        self.method = method
        self.target = target
        path, _, qs = target.partition("?")
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/") or "/"
        self.path = path
        self.query_string = qs
        self.version = version
        self.headers = headers
        self.body = body
        self.client = client
        self.listener = listener
        self.params = {}
        self.route = None
        self.task_type = None
        self.trace = None   # [(hop, monotonic)] when ENABLE_TRACING traces it (trace.py)
        self.received = time.monotonic()
        rid = headers.get("x-request-id")
        if rid and len(rid) <= 128 and all(c in _RID_OK for c in rid):
            self.request_id = rid
        else:
            self.request_id = os.urandom(8).hex()
        conn_tokens = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in conn_tokens
        else:
            self.keep_alive = "keep-alive" in conn_tokens
        self._query = None
        self._json = _UNSET

    def header(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        """The body parsed as JSON (cached). Empty body or bad JSON → HTTPError 400."""
        if self._json is _UNSET:
            if not self.body.strip():
                raise HTTPError(400, "request body is empty; expected JSON")
            try:
                self._json = _json_mod().loads(self.body)
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                raise HTTPError(400, f"bad JSON body: {e}") from None
        return self._json

    @property
    def query(self) -> dict:
        """Query parameters, last value wins: `?a=1&b=x` → {'a': '1', 'b': 'x'}."""
        return dict(self._parse_query())

    @property
    def query_all(self) -> dict:
        out: dict = {}
        for k, v in self._parse_query():
            out.setdefault(k, []).append(v)
        return out

    def _parse_query(self):
        if self._query is None:
            if not self.query_string:
                self._query = []
            else:
                from urllib.parse import parse_qsl

                self._query = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target} rid={self.request_id}>"


_UNSET = object()


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# connection states
READ, BUSY, WRITE, LINGER, CLOSED = range(5)


class Listener:
    __slots__ = ("sock", "kind", "max_conns", "count", "watched")

    def __init__(self, sock, kind, max_conns):
        self.sock = sock
        self.kind = kind
        self.max_conns = max_conns
        self.count = 0
        self.watched = False


class Conn:
    __slots__ = ("sock", "fd", "listener", "client", "rbuf", "wbuf", "state", "deadline",
                 "events", "head", "continue_sent", "close_after", "served", "discarded")

    def __init__(self, sock, listener, client):
        self.sock = sock
        self.fd = sock.fileno()
        self.listener = listener
        self.client = client
        self.rbuf = bytearray()
        self.wbuf = None
        self.state = READ
        self.deadline = 0.0
        self.events = 0
        self.head = None  # parsed (method, target, version, headers, body_kind, head_end)
        self.continue_sent = False
        self.close_after = False
        self.served = 0
        self.discarded = 0


_date_cache: tuple[int, bytes] = (0, b"")  # (second, its Date header value)


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now)).encode())
    return _date_cache[1]


class Server:
    """The I/O loop's HTTP machinery. Single-threaded except `complete()`.

    dispatch(conn, request) -> Response | None   (None: answer later with complete())
    on_response(request, status, seconds, listener_kind)  after each response is written
    on_error(message, exc)                                 unexpected internal errors
    """

    def __init__(self, dispatch, *, max_body: int = 1 << 20, request_timeout: float = 10.0,
                 keepalive_timeout: float = 5.0, on_response=None, on_error=None,
                 server_name: str = "unified-agent"):
        self.sel = selectors.DefaultSelector()
        self.dispatch = dispatch
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.keepalive_timeout = keepalive_timeout
        self.on_response = on_response
        self.on_error = on_error
        self.server_header = b"Server: " + server_name.encode() + b"\r\n"
        self.listeners: list[Listener] = []
        self.conns: dict[int, Conn] = {}
        self.accepting = True
        self.draining = False
        self.busy = 0  # requests dispatched and not yet completed
        self.bad_requests: dict = {}  # status -> count of requests we could not parse
        self._done: deque = deque()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._next_sweep = float("inf")  # earliest connection deadline (or sooner)

    # ---------------------------------------------------------------- listeners
    def add_listener(self, sock: socket.socket, kind: str, max_conns: int) -> Listener:
        sock.setblocking(False)
        lst = Listener(sock, kind, max_conns)
        self.listeners.append(lst)
        self._watch(lst, True)
        return lst

    def _watch(self, lst: Listener, on: bool) -> None:
        if on and not lst.watched and self.accepting:
            self.sel.register(lst.sock, selectors.EVENT_READ, lst)
            lst.watched = True
        elif not on and lst.watched:
            self.sel.unregister(lst.sock)
            lst.watched = False

    def stop_accepting(self) -> None:
        """Stop calling accept() on every listener. The sockets stay open: connections that
        arrive now queue in the kernel (for the agent port: in the socket systemd holds)."""
        for lst in self.listeners:
            self._watch(lst, False)
        self.accepting = False

    def drain(self) -> None:
        """Stop serving new requests: close idle keep-alive connections now, answer the
        requests in progress with `Connection: close`."""
        self.draining = True
        for conn in list(self.conns.values()):
            conn.close_after = True
            # Only keep-alive connections idle between requests (HTTP clients retry those).
            # A connection accepted but not yet read may already hold its request in the
            # kernel buffer: closing it resets the client (measured: 3 lost per restart
            # under load). It is read and answered, then closed.
            if conn.state == READ and not conn.rbuf and conn.head is None and conn.served:
                self._close_idle(conn)

    def _close_idle(self, conn: Conn) -> None:
        """Close a keep-alive connection that looks idle, unless a request has arrived on
        it that the loop has not read yet: then read and answer it (with Connection: close
        when draining). Narrows the keep-alive close race to bytes still on the wire."""
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            self._close(conn)
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        self._deadline(conn, self.request_timeout)
        conn.rbuf += data
        self._process(conn)

    def open_connections(self, kind: str | None = None) -> int:
        if kind is None:
            return len(self.conns)
        return sum(1 for c in self.conns.values() if c.listener.kind == kind)

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass

    @property
    def wake_fd(self) -> int:
        return self._wake_w

    # ---------------------------------------------------------------- loop
    def poll(self, timeout: float | None) -> None:
        try:
            events = self.sel.select(timeout)
        except InterruptedError:  # pragma: no cover - PEP 475 retries; belt and braces
            events = []
        for key, mask in events:
            obj = key.data
            if obj is None:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            elif type(obj) is Listener:
                self._accept(obj)
            elif mask & selectors.EVENT_READ:
                self._on_read(obj)
            else:
                self._on_write(obj)
        done = self._done
        while done:
            conn, req, resp = done.popleft()
            self.busy -= 1
            self._respond(conn, req, resp)
        if self._next_sweep != _INF:
            now = time.monotonic()
            if now >= self._next_sweep:
                self._sweep(now)

    def next_deadline(self) -> float | None:
        """Seconds until the next connection timeout check is due (None: nothing due)."""
        if self._next_sweep == _INF:
            return None
        return max(0.0, self._next_sweep - time.monotonic())

    def complete(self, conn: Conn, req: Request, resp: Response) -> None:
        """Thread-safe: hand the response of a dispatched request back to the I/O loop."""
        self._done.append((conn, req, resp))
        self.wake()

    # ---------------------------------------------------------------- accept
    def _accept(self, lst: Listener) -> None:
        for _ in range(64):
            if lst.count >= lst.max_conns:
                self._watch(lst, False)  # resumed when one of its connections closes
                return
            try:
                sock, addr = lst.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE, ENFILE, ENOBUFS, ECONNABORTED ...
                if self.on_error:
                    self.on_error(f"accept on {lst.kind} port failed", e)
                self._watch(lst, False)
                # _sweep resumes it in a moment (not at once: EMFILE would spin)
                self._next_sweep = min(self._next_sweep, time.monotonic() + 0.5)
                return
            sock.setblocking(False)
            if sock.family != socket.AF_UNIX:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            conn = Conn(sock, lst, addr if isinstance(addr, tuple) else (str(addr), 0))
            lst.count += 1
            self.conns[conn.fd] = conn
            self._deadline(conn, self.request_timeout)
            self._set_events(conn, selectors.EVENT_READ)

    # ---------------------------------------------------------------- read + parse
    def _on_read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if conn.state == LINGER:
            conn.discarded += len(data)
            if not data or conn.discarded > LINGER_MAX_BYTES:
                self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if not conn.rbuf and conn.head is None:
            self._deadline(conn, self.request_timeout)
        conn.rbuf += data
        self._process(conn)

    def _process(self, conn: Conn) -> None:
        """Parse as much as the buffer holds; dispatch a complete request."""
        try:
            req = self._parse(conn)
        except BadRequest as e:
            self._fail(conn, e.status, e.message)
            return
        if req is None:
            return
        conn.state = BUSY
        self._set_events(conn, 0)
        self.busy += 1
        try:
            resp = self.dispatch(conn, req)
        except HTTPError as e:
            resp = error_response(e.status, e.message, req.request_id, e.headers, **e.fields)
        except Exception as e:  # a bug in dispatch itself: answer 500, keep serving
            if self.on_error:
                self.on_error("dispatch failed", e)
            resp = error_response(500, "internal error", req.request_id)
        if resp is not None:
            self.busy -= 1
            self._respond(conn, req, resp)

    def _parse(self, conn: Conn):
        buf = conn.rbuf
        if conn.head is None:
            # tolerate empty lines before a request line (RFC 9112 2.2)
            while buf[:2] == b"\r\n":
                del buf[:2]
            while buf[:1] == b"\n":
                del buf[:1]
            if not buf:
                return None
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._precheck(buf)
                if len(buf) > MAX_HEAD:
                    raise BadRequest(431, "request head larger than 64 KiB")
                return None
            if end > MAX_HEAD:
                raise BadRequest(431, "request head larger than 64 KiB")
            conn.head = self._parse_head(bytes(buf[:end]), end + 4)
            if conn.head[4] is not None and conn.head[4] != "chunked" and \
                    conn.head[4] > self.max_body:
                raise BadRequest(413, f"request body of {conn.head[4]} bytes is over the "
                                      f"limit of {self.max_body} bytes")
        method, target, version, headers, body_kind, head_end = conn.head
        if body_kind is None or body_kind == 0:
            body = b""
            consumed = head_end
        elif body_kind == "chunked":
            r = _dechunk(buf, head_end, self.max_body)
            if r is None:
                self._maybe_continue(conn, headers)
                return None
            body, consumed = r
        else:
            consumed = head_end + body_kind
            if len(buf) < consumed:
                self._maybe_continue(conn, headers)
                return None
            body = bytes(buf[head_end:consumed])
        del buf[:consumed]
        conn.head = None
        conn.continue_sent = False
        return Request(method, target, version, headers, body, conn.client, conn.listener.kind)

    @staticmethod
    def _precheck(buf: bytearray) -> None:
        """Reject garbage before the request head is complete (no waiting for a timeout)."""
        sp = buf.find(b" ")
        method = buf if sp < 0 else buf[:sp]
        if len(method) > 16 or any(b not in _TCHAR for b in method[:17]):
            raise BadRequest(400, "malformed request line")
        nl = buf.find(b"\n")
        if nl < 0 and len(buf) > 8192:
            raise BadRequest(414, "request line longer than 8 KiB")

    def _parse_head(self, head: bytes, head_end: int):
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise BadRequest(400, "malformed request line")
        m, target, version = parts
        if not m or any(b not in _TCHAR for b in m):
            raise BadRequest(400, "malformed request line")
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            if version.startswith(b"HTTP/") and len(version) == 8:
                raise BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are supported")
            raise BadRequest(400, "malformed request line")
        if not target or any(b <= 32 or b >= 127 for b in target):
            raise BadRequest(400, "malformed request target")
        if target[:1] != b"/":
            if target.startswith((b"http://", b"https://")):  # absolute-form
                i = target.find(b"/", target.find(b"//") + 2)
                target = target[i:] if i >= 0 else b"/"
            elif target == b"*" and m == b"OPTIONS":
                pass
            else:
                raise BadRequest(400, "malformed request target")
        if len(lines) - 1 > MAX_HEADERS:
            raise BadRequest(431, f"more than {MAX_HEADERS} header fields")
        headers: dict = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or any(b not in _TCHAR for b in name):
                raise BadRequest(400, "malformed header field")
            k = name.decode("ascii").lower()
            v = value.strip(b" \t").decode("latin-1")
            if k in headers:
                if k == "content-length" and headers[k] != v:
                    raise BadRequest(400, "conflicting Content-Length headers")
                if k != "content-length":
                    headers[k] = headers[k] + ", " + v
            else:
                headers[k] = v
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        body_kind: str | int | None  # "chunked", a Content-Length, or no body
        if te is not None:
            if cl is not None:
                raise BadRequest(400, "both Transfer-Encoding and Content-Length")
            if te.strip().lower() != "chunked":
                raise BadRequest(501, f"Transfer-Encoding {te!r} is not supported")
            body_kind = "chunked"
        elif cl is not None:
            if not cl.isdigit() or not cl.isascii() or len(cl) > 15:
                raise BadRequest(400, f"bad Content-Length {cl!r}")
            body_kind = int(cl)
        else:
            body_kind = None
        if version == b"HTTP/1.1" and "host" not in headers:
            pass  # RFC says 400; curl/clients always send it, tests with raw sockets may not
        return (m.decode("ascii"), target.decode("ascii"), version.decode("ascii"),
                headers, body_kind, head_end)

    def _maybe_continue(self, conn: Conn, headers: dict) -> None:
        if not conn.continue_sent and headers.get("expect", "").lower() == "100-continue":
            conn.continue_sent = True
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass
        if len(conn.rbuf) > MAX_HEAD + self.max_body + 65536:  # chunk overhead abuse
            raise BadRequest(413, f"request body over the limit of {self.max_body} bytes")

    # ---------------------------------------------------------------- write
    def _fail(self, conn: Conn, status: int, message: str) -> None:
        """Answer a request we could not parse, then close (framing is lost)."""
        conn.close_after = True
        conn.head = None
        conn.rbuf.clear()
        self.bad_requests[status] = self.bad_requests.get(status, 0) + 1
        self._respond(conn, None, error_response(status, message, None))

    def _respond(self, conn: Conn, req: Request | None, resp: Response) -> None:
        if conn.state == CLOSED:
            if req is not None and self.on_response:
                self.on_response(req, 499, time.monotonic() - req.received, conn.listener.kind)
            return
        keep = (req is not None and req.keep_alive and not conn.close_after
                and not self.draining)
        status = resp.status
        body = resp.body if isinstance(resp.body, (bytes, bytearray, memoryview)) else \
            str(resp.body).encode()
        head = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode()),
                b"Date: ", _date(), b"\r\n", self.server_header]
        if req is not None:
            head.append(b"X-Request-ID: " + req.request_id.encode() + b"\r\n")
        if status != 204 and status != 304:
            if resp.content_type:
                head.append(b"Content-Type: " + resp.content_type.encode("latin-1") + b"\r\n")
            head.append(b"Content-Length: %d\r\n" % len(body))
        if resp.headers:
            for k, v in resp.headers.items():
                head.append(f"{k}: {v}\r\n".encode("latin-1", "replace"))
        if not keep:
            head.append(b"Connection: close\r\n")
        elif req is not None and req.version == "HTTP/1.0":  # (keep: req is not None)
            head.append(b"Connection: keep-alive\r\n")
        head.append(b"\r\n")
        if req is None or req.method != "HEAD":
            head.append(body)
        data = b"".join(head)
        conn.close_after = not keep
        conn.served += 1
        if req is not None and self.on_response:
            try:
                self.on_response(req, status, time.monotonic() - req.received,
                                 conn.listener.kind)
            except Exception as e:  # pragma: no cover - metrics must never break serving
                if self.on_error:
                    self.on_error("on_response failed", e)
        conn.state = WRITE
        try:
            n = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self._close(conn)
            return
        if n < len(data):
            conn.wbuf = memoryview(data)[n:]
            self._deadline(conn, self.request_timeout)
            self._set_events(conn, selectors.EVENT_WRITE)
        else:
            self._written(conn)

    def _on_write(self, conn: Conn) -> None:
        try:
            n = conn.sock.send(conn.wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.wbuf = conn.wbuf[n:]
        if len(conn.wbuf):
            self._deadline(conn, self.request_timeout)
        else:
            conn.wbuf = None
            self._written(conn)

    def _written(self, conn: Conn) -> None:
        if conn.close_after:
            self._linger(conn)
            return
        conn.state = READ
        self._deadline(conn, self.request_timeout if conn.rbuf else self.keepalive_timeout)
        self._set_events(conn, selectors.EVENT_READ)
        if conn.rbuf:  # pipelined request already buffered
            self._process(conn)

    def _linger(self, conn: Conn) -> None:
        """Close after an answer: shut down writing so the client sees EOF after the
        response, and discard what it still sends for a moment (no RST over our answer)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = LINGER
        conn.rbuf.clear()
        self._deadline(conn, LINGER_S)
        self._set_events(conn, selectors.EVENT_READ)

    # ---------------------------------------------------------------- bookkeeping
    def _set_events(self, conn: Conn, events: int) -> None:
        if events == conn.events:
            return
        if conn.events == 0:
            self.sel.register(conn.sock, events, conn)
        elif events == 0:
            self.sel.unregister(conn.sock)
        else:
            self.sel.modify(conn.sock, events, conn)
        conn.events = events

    def _close(self, conn: Conn) -> None:
        if conn.state == CLOSED:
            return
        if conn.events:
            try:
                self.sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            conn.events = 0
        conn.state = CLOSED
        try:
            conn.sock.close()
        except OSError:
            pass
        self.conns.pop(conn.fd, None)
        lst = conn.listener
        lst.count -= 1
        if not lst.watched and self.accepting and lst.count < lst.max_conns:
            self._watch(lst, True)

    def _deadline(self, conn: Conn, seconds: float) -> None:
        conn.deadline = t = time.monotonic() + seconds
        if t < self._next_sweep:
            self._next_sweep = t

    def _sweep(self, now: float) -> None:
        """Time out connections whose deadline passed. Runs when the earliest deadline is
        due (and at least once a second while there are connections)."""
        nxt = now + 1.0 if self.conns else _INF
        for conn in list(self.conns.values()):
            if conn.state == BUSY:
                continue
            if now >= conn.deadline:
                if conn.state == READ and (conn.rbuf or conn.head is not None):
                    self._fail(conn, 408, "request not received in time")
                    if conn.state == LINGER:
                        nxt = min(nxt, conn.deadline)
                elif conn.state == READ and conn.served:
                    self._close_idle(conn)  # keep-alive timeout
                    if conn.state != CLOSED:
                        nxt = min(nxt, conn.deadline)
                else:
                    self._close(conn)
            else:
                nxt = min(nxt, conn.deadline)
        if self.accepting:
            for lst in self.listeners:
                if not lst.watched and lst.count < lst.max_conns:
                    self._watch(lst, True)
        self._next_sweep = nxt

    def close(self) -> None:
        """Close connections and our selector. Listening sockets are left to the caller."""
        for conn in list(self.conns.values()):
            self._close(conn)
        self.stop_accepting()
        self.sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _dechunk(buf: bytearray, pos: int, limit: int):
    """Decode a chunked body starting at buf[pos:]. → (body, end) or None if incomplete."""
    body = bytearray()
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            if len(buf) - pos > 1024:
                raise BadRequest(400, "malformed chunk size line")
            return None
        size_field = bytes(buf[pos:nl]).split(b";", 1)[0].strip(b" \t")
        if not size_field or len(size_field) > 15 or any(b not in _HEX for b in size_field):
            raise BadRequest(400, "malformed chunk size line")
        size = int(size_field, 16)
        pos = nl + 2
        if size == 0:
            while True:  # trailer fields, then the empty line
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    if len(buf) - pos > MAX_HEAD:
                        raise BadRequest(431, "chunked trailer too large")
                    return None
                if nl == pos:
                    return bytes(body), nl + 2
                pos = nl + 2
        if len(body) + size > limit:
            raise BadRequest(413, f"request body over the limit of {limit} bytes")
        if len(buf) < pos + size + 2:
            return None
        if buf[pos + size:pos + size + 2] != b"\r\n":
            raise BadRequest(400, "malformed chunk")
        body += buf[pos:pos + size]
        pos += size + 2
