"""Who may call a mutating endpoint: local callers, or whoever presents the fleet token.

A route declared `@route("POST", "/cache/clear", mutating=True)` (clear, reset, delete,
load/unload, limits, cleanup) is served only to a *trusted* request:

* the socket peer is this host: loopback (127.0.0.0/8, ::1, IPv4-mapped 127.x), a Unix
  socket, or the very address the agent is bound to (UNIFIED_BIND=192.168.1.5: a peer
  192.168.1.5 is a process of this host, as Linux drops packets arriving from outside with
  one of its own addresses as source, accept_local=0), and the request does not carry
  `X-Unified-Origin: remote` (see below); or
* it presents the token: `Authorization: Bearer <token>`, compared in constant time.

Anything else gets 403. The check is on the socket peer that accept() returned, never on
X-Forwarded-For / Forwarded / X-Real-IP: those are whatever the caller wrote.

Confused deputies: an agent that calls another agent on behalf of a request (the
RequestCoordinator forwarding a task, VRAMOptimizerAgent asking ModelManagerSuite) connects
from this host, so the callee would trust it. `outgoing_headers()` (used by the SDK client and
the coordinator) therefore marks calls made while handling an untrusted request with
`X-Unified-Origin: remote`: the callee treats them as remote (a caller can add this header,
never remove it). Agents never send the token themselves: on one host they need none, and a
token sent along would leak to whatever URL an agent calls.

The token: standard input when UNIFIED_TOKEN_FROM=stdin (the generator's drop-in sets
`StandardInput=file:/etc/unified/token`: the file is root-only, created at install, and
systemd opens it before dropping privileges); else the systemd credential `unified-token`
($CREDENTIALS_DIRECTORY/unified-token; "none" or empty means no token); else the file named
by UNIFIED_TOKEN_FILE. Never an environment variable holding the token itself (the
environment of a unit is readable by every user through `systemctl show`). The token is never
logged nor put into an error message.

Without a token, a non-loopback caller can never call a mutating endpoint: binding to a
non-loopback address (UNIFIED_BIND) without a token leaves those endpoints answering 403 to
the network (fail closed) while the read-only endpoints keep serving; the agent logs a
warning at start (docs/SECURITY.md).
"""
from __future__ import annotations

import os

from .config import ConfigError
from .request_context import current_request
from .server import HTTPError

TOKEN_CREDENTIAL = "unified-token"
ORIGIN_HEADER = "X-Unified-Origin"
MIN_TOKEN_LEN = 16
MAX_TOKEN_LEN = 4096


def is_loopback(host) -> bool:
    """True for 127.0.0.0/8, ::1 and ::ffff:127.x.y.z (an IPv6 socket's view of IPv4
    loopback). Plain string checks: `ipaddress` costs ~2 ms of cold start."""
    if not isinstance(host, str) or not host:
        return False
    h = host.lower()
    if h.startswith("::ffff:"):
        h = h[7:]
    if h.startswith("127."):
        parts = h.split(".")
        return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)
    return h in ("::1", "0:0:0:0:0:0:0:1")


def _check_token(raw: str, source: str) -> str | None:
    tok = raw.strip()
    if not tok or tok.lower() == "none":
        return None  # "none": the unit's SetCredential= fallback when the file is missing
    if len(tok) < MIN_TOKEN_LEN or len(tok) > MAX_TOKEN_LEN or \
            any(c <= " " or c > "~" for c in tok):
        # never echo the value: it may be a real secret with a typo
        raise ConfigError(f"the token in {source} is invalid; allowed: {MIN_TOKEN_LEN}-"
                          f"{MAX_TOKEN_LEN} printable ASCII characters without spaces "
                          "(e.g. `openssl rand -hex 32`)")
    return tok


def _token_from_stdin() -> str | None:
    """The token as the unit hands it over (UNIFIED_TOKEN_FROM=stdin): standard input is the
    token file, opened by systemd. Read once, then standard input becomes /dev/null, so that
    no program the agent runs (flite, arecord, ...) inherits the secret."""
    import stat

    try:
        st = os.fstat(0)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        # a terminal or pipe would block or hold something else: only systemd's file counts
        raise ConfigError("UNIFIED_TOKEN_FROM=stdin but standard input is not a file; allowed: "
                          "StandardInput=file:/etc/unified/token (the generator renders it)")
    try:
        raw = os.pread(0, MAX_TOKEN_LEN + 64, 0)
    except OSError as e:
        raise ConfigError(f"cannot read the token from standard input: {e.strerror}") from None
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    return _check_token(raw.decode("ascii", "replace"), "standard input (/etc/unified/token)")


def load_token(environ=None) -> str | None:
    """The configured token, or None. ConfigError (exit 2) when a named file is unusable."""
    env = os.environ if environ is None else environ
    if (env.get("UNIFIED_TOKEN_FROM") or "").strip() == "stdin":
        return _token_from_stdin()
    cred_dir = (env.get("CREDENTIALS_DIRECTORY") or "").strip()
    if cred_dir:
        path = os.path.join(cred_dir, TOKEN_CREDENTIAL)
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                return _check_token(f.read(MAX_TOKEN_LEN + 64), f"credential {path}")
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(f"cannot read credential {path}: {e.strerror}") from None
    path = (env.get("UNIFIED_TOKEN_FILE") or "").strip()
    if not path:
        return None
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return _check_token(f.read(MAX_TOKEN_LEN + 64), f"UNIFIED_TOKEN_FILE={path}")
    except OSError as e:
        raise ConfigError(f"UNIFIED_TOKEN_FILE={path!r} cannot be read ({e.strerror}); "
                          "allowed: a file readable by the agent holding the token") from None


class Guard:
    """The trust decision for one agent process (one instance, set by the runtime)."""

    __slots__ = ("_token", "own_hosts")

    def __init__(self, token: str | None = None, own_hosts=()):
        self._token = token.encode() if token else None
        # the bind address (not a wildcard): a peer with it is a process of this host
        self.own_hosts = frozenset(h.lower() for h in own_hosts
                                   if h and h not in ("0.0.0.0", "::", "::0"))

    def __repr__(self) -> str:  # never the token
        return f"<Guard token={'set' if self._token else 'none'}>"

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def token_ok(self, request) -> bool:
        if self._token is None:
            return False
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer":
            return False
        import hmac

        return hmac.compare_digest(value.strip().encode("latin-1", "replace"), self._token)

    def trusted(self, request) -> bool:
        host = request.client[0] if request.client else None
        local = (host == "" or isinstance(host, str) and host.startswith("/")  # AF_UNIX
                 or is_loopback(host)
                 or isinstance(host, str) and host.lower().removeprefix("::ffff:")
                 in self.own_hosts)
        if local and request.headers.get("x-unified-origin", "").strip().lower() != "remote":
            return True
        return self.token_ok(request)

    def check(self, request) -> None:
        """HTTPError 403 unless the request may mutate."""
        if self.trusted(request):
            return
        if self._token is None:
            why = ("no token is configured on this host, so only local callers may; see "
                   "docs/SECURITY.md")
        elif request.headers.get("authorization"):
            why = "the token presented is not the configured one"
        else:
            why = "send the configured token as 'Authorization: Bearer <token>'"
        raise HTTPError(403, f"{request.method} {request.path} changes state and is refused "
                             f"to a caller that is not local: {why}")

    def outgoing_headers(self) -> dict:
        """Headers for a call to another agent made now (see module doc)."""
        req = current_request()
        if req is not None and not self.trusted(req):
            return {ORIGIN_HEADER: "remote"}
        return {}


_guard = Guard()


def install(guard: Guard) -> None:
    """Make `guard` the process's guard (the runtime does, before on_start)."""
    global _guard
    _guard = guard


def current() -> Guard:
    return _guard


def authorize(request=None) -> None:
    """For handlers that mutate only in some cases (a task op "delete"): 403 unless the
    request (default: the current one) is trusted. Outside any request: allowed."""
    req = request if request is not None else current_request()
    if req is not None:
        _guard.check(req)
