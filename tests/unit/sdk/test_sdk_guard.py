"""Mutating routes (`@route(..., mutating=True)`): local callers or the token, decided on the
socket peer; the token comes from a systemd credential or a file and never shows in a log.

Tests that need a non-loopback peer connect to this host's own non-loopback address (the
source address of such a connection is that address, not loopback); they are skipped on a
host that has none.
"""
import http.client
import json
import os
import socket

import pytest

from unified_agents.config import ConfigError
from unified_agents.guard import Guard, is_loopback, load_token
from unified_agents.server import HTTPError, Request

from .harness import ROOT, free_port, sdk_path  # noqa: F401  (fixture)

VAULT = "entry_point:sdk_guard_agents:Vault"
TOKEN = "s3cr3t-t0ken-0123456789abcdef"


def external_ip():
    """A non-loopback IPv4 address of this host, or None."""
    for probe in ("10.255.255.254", "203.0.113.254", "198.51.100.254"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((probe, 9))  # no packet is sent: the kernel picks the source address
            ip = s.getsockname()[0]
        except OSError:
            continue
        finally:
            s.close()
        if not is_loopback(ip) and ip != "0.0.0.0":
            return ip
    return None


EXT = external_ip()
needs_ext = pytest.mark.skipif(EXT is None, reason="this host has no non-loopback address")


def req(peer, headers=None, method="POST", path="/reset"):
    h = {k.lower(): v for k, v in (headers or {}).items()}
    return Request(method, path, "HTTP/1.1", h, b"", (peer, 40000), "agent")


# ----------------------------------------------------------------- the decision
@pytest.mark.parametrize("host,loop", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("192.0.2.2", False), ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fd00::2", False),
    ("127.0.0.1.evil", False), ("1127.0.0.1", False), ("", False), (None, False),
])
def test_loopback_is_127_8_and_ipv6_loopback_only(host, loop):
    assert is_loopback(host) is loop


def test_a_local_peer_is_trusted_a_remote_one_is_not():
    g = Guard(None)
    assert g.trusted(req("127.0.0.1"))
    assert g.trusted(req("::ffff:127.0.0.1"))
    assert g.trusted(req(""))  # AF_UNIX peer
    assert not g.trusted(req("192.0.2.7"))


@pytest.mark.parametrize("spoof", [
    {"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"},
    {"X-Real-IP": "127.0.0.1"}, {"Host": "127.0.0.1"}, {"X-Forwarded-Host": "localhost"},
    {"Authorization": "Bearer "}, {"Authorization": "Basic " + TOKEN},
])
def test_headers_that_claim_a_local_origin_do_not_help(spoof):
    g = Guard(TOKEN)
    assert not g.trusted(req("192.0.2.7", spoof))
    with pytest.raises(HTTPError) as e:
        g.check(req("192.0.2.7", spoof))
    assert e.value.status == 403


def test_the_token_admits_a_remote_caller_and_a_wrong_one_does_not():
    g = Guard(TOKEN)
    assert g.trusted(req("192.0.2.7", {"Authorization": f"Bearer {TOKEN}"}))
    assert g.trusted(req("192.0.2.7", {"Authorization": f"bearer  {TOKEN} "}))
    assert not g.trusted(req("192.0.2.7", {"Authorization": f"Bearer {TOKEN}x"}))
    assert not g.trusted(req("192.0.2.7", {"Authorization": f"Bearer {TOKEN[:-1]}"}))
    # no token configured: nothing a remote caller sends is enough
    assert not Guard(None).trusted(req("192.0.2.7", {"Authorization": f"Bearer {TOKEN}"}))


def test_a_call_marked_remote_by_a_deputy_is_remote_even_from_loopback():
    g = Guard(TOKEN)
    assert not g.trusted(req("127.0.0.1", {"X-Unified-Origin": "remote"}))
    assert g.trusted(req("127.0.0.1", {"X-Unified-Origin": "remote",
                                       "Authorization": f"Bearer {TOKEN}"}))


def test_the_bound_address_itself_is_this_host_but_a_wildcard_is_not():
    assert Guard(None, ("192.0.2.2",)).trusted(req("192.0.2.2"))
    assert Guard(None, ("192.0.2.2",)).trusted(req("::ffff:192.0.2.2"))
    assert not Guard(None, ("192.0.2.2",)).trusted(req("192.0.2.3"))
    assert not Guard(None, ("0.0.0.0",)).trusted(req("0.0.0.0"))


def test_the_403_message_says_why_and_never_contains_the_token():
    with pytest.raises(HTTPError) as e:
        Guard(None).check(req("192.0.2.7"))
    assert "no token is configured" in e.value.message
    with pytest.raises(HTTPError) as e:
        Guard(TOKEN).check(req("192.0.2.7", {"Authorization": "Bearer wrong-wrong-wrong-1"}))
    assert "not the configured one" in e.value.message and TOKEN not in e.value.message
    assert TOKEN not in repr(Guard(TOKEN))


# ----------------------------------------------------------------- the token's sources
def test_token_from_the_systemd_credential_first_then_the_file(tmp_path):
    cred = tmp_path / "creds"
    cred.mkdir()
    (cred / "unified-token").write_text(TOKEN + "\n")
    other = tmp_path / "token"
    other.write_text("another-token-0123456789")
    env = {"CREDENTIALS_DIRECTORY": str(cred), "UNIFIED_TOKEN_FILE": str(other)}
    assert load_token(env) == TOKEN
    (cred / "unified-token").unlink()
    assert load_token(env) == "another-token-0123456789"
    assert load_token({}) is None


@pytest.mark.parametrize("content", ["\n", "none\n", "NONE"])
def test_an_empty_or_none_credential_means_no_token(tmp_path, content):
    (tmp_path / "unified-token").write_text(content)  # "none": the unit's SetCredential=
    assert load_token({"CREDENTIALS_DIRECTORY": str(tmp_path)}) is None


@pytest.mark.parametrize("content", ["short", "has a space in the middle xx", "tab\there-0123456789"])
def test_a_bad_token_is_a_config_error_that_does_not_echo_it(tmp_path, content):
    f = tmp_path / "token"
    f.write_text(content)
    with pytest.raises(ConfigError) as e:
        load_token({"UNIFIED_TOKEN_FILE": str(f)})
    assert content not in str(e.value) and "UNIFIED_TOKEN_FILE" in str(e.value)


def test_an_unreadable_token_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_token({"UNIFIED_TOKEN_FILE": str(tmp_path / "missing")})


# ----------------------------------------------------------------- a real agent process
def call(host, port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        conn.close()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("cred")
    (d / "unified-token").write_text(TOKEN + "\n")
    return d


@pytest.fixture(scope="module")
def vault(spawn_module, token_file):
    """Bound to every address (UNIFIED_BIND=0.0.0.0), with a token as a credential."""
    return spawn_module("Vault", env={"UNIFIED_RUN": VAULT, "UNIFIED_BIND": "0.0.0.0",
                                      "CREDENTIALS_DIRECTORY": str(token_file),
                                      "LOG_LEVEL": "DEBUG"}, use_fd=False)


def test_local_callers_may_mutate_without_a_token(vault):
    assert call("127.0.0.1", vault.port, "POST", "/bump")[0] == 200
    assert call("127.0.0.1", vault.port, "POST", "/reset") == (200, {"count": 0})
    assert call("127.0.0.1", vault.health_port, "POST", "/reset")[0] == 200
    assert call("127.0.0.1", vault.port, "DELETE", "/things/a")[0] == 200


@needs_ext
def test_a_remote_caller_is_refused_on_both_ports_whatever_headers_it_sends(vault):
    call("127.0.0.1", vault.port, "POST", "/bump")
    spoof = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1",
             "Forwarded": "for=127.0.0.1", "Host": "localhost"}
    for port in (vault.port, vault.health_port):
        status, body = call(EXT, port, "POST", "/reset", headers=spoof)
        assert status == 403 and "not local" in body["error"]
    assert call(EXT, vault.port, "DELETE", "/things/a", headers=spoof)[0] == 403
    assert call(EXT, vault.port, "POST", "/cache/release")[0] == 403  # the SDK's own route
    # nothing was reset; what does not change state stays open
    assert call(EXT, vault.port, "GET", "/count")[1]["count"] >= 1
    assert call(EXT, vault.port, "POST", "/bump")[0] == 200


@needs_ext
def test_a_remote_caller_with_the_token_may_mutate(vault):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert call(EXT, vault.port, "POST", "/reset", headers=auth) == (200, {"count": 0})
    assert call(EXT, vault.health_port, "POST", "/reset", headers=auth)[0] == 200
    wrong = {"Authorization": f"Bearer {TOKEN[::-1]}"}
    assert call(EXT, vault.port, "POST", "/reset", headers=wrong)[0] == 403


@needs_ext
def test_a_task_that_mutates_follows_the_same_rule(vault):
    task = {"type": "t", "data": "reset"}
    assert call(EXT, vault.port, "POST", "/task", task)[0] == 403
    assert call("127.0.0.1", vault.port, "POST", "/task", task)[0] == 200
    assert call(EXT, vault.port, "POST", "/task", {"type": "t"})[0] == 200


@needs_ext
def test_an_agent_calling_for_a_remote_caller_passes_on_that_it_is_remote(vault):
    """The relay calls /reset over loopback: trusted for a local caller, refused when it
    relays for a remote one (X-Unified-Origin: remote), unless that caller had the token."""
    target = {"url": f"http://127.0.0.1:{vault.port}/reset"}
    assert call("127.0.0.1", vault.port, "POST", "/relay", target)[1]["status"] == 200
    assert call(EXT, vault.port, "POST", "/relay", target)[1]["status"] == 403
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert call(EXT, vault.port, "POST", "/relay", target, auth)[1]["status"] == 200
    # a local caller cannot launder a remote mark away either
    marked = {"X-Unified-Origin": "remote"}
    assert call("127.0.0.1", vault.port, "POST", "/reset", headers=marked)[0] == 403


@needs_ext
def test_refusals_are_logged_without_the_token_or_any_header(vault):
    call(EXT, vault.port, "POST", "/reset",
         headers={"Authorization": "Bearer not-the-token-but-secret-42"})
    call(EXT, vault.port, "POST", "/reset", headers={"Authorization": f"Bearer {TOKEN}"})
    log = vault.stderr()
    assert f"refused POST /reset from {EXT}" in log
    assert TOKEN not in log and "not-the-token-but-secret-42" not in log
    assert "Authorization" not in log and "authorization" not in log


@needs_ext
def test_without_a_token_a_non_loopback_bind_warns_and_refuses_remote_mutation(spawn):
    a = spawn("Open", env={"UNIFIED_RUN": VAULT, "UNIFIED_BIND": "0.0.0.0"}, use_fd=False)
    assert "without a token" in a.stderr() and "docs/SECURITY.md" in a.stderr()
    status, body = call(EXT, a.port, "POST", "/reset",
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 403 and "no token is configured" in body["error"]
    assert call("127.0.0.1", a.port, "POST", "/reset")[0] == 200


@needs_ext
def test_bound_to_its_own_address_the_hosts_own_callers_are_local(spawn):
    a = spawn("Own", env={"UNIFIED_RUN": VAULT, "UNIFIED_BIND": EXT}, use_fd=False,
              health_port=free_port())
    assert call(EXT, a.port, "POST", "/reset")[0] == 200


def test_a_bad_token_file_stops_the_agent_with_exit_2(spawn, tmp_path):
    f = tmp_path / "token"
    f.write_text("tooshort")
    a = spawn("Bad", env={"UNIFIED_RUN": VAULT, "UNIFIED_TOKEN_FILE": str(f)},
              wait_ready=False)
    assert a.wait_exit(15) == 2
    err = a.stderr()
    assert "UNIFIED_TOKEN_FILE" in err and "tooshort" not in err


def _run_reading_stdin(sdk_path, stdin, env_extra):
    """load_token in a child whose standard input is `stdin`, as systemd starts an agent;
    the child prints the token it read and what its standard input is afterwards."""
    import json
    import subprocess
    import sys

    code = ("import json, os; from unified_agents.guard import load_token\n"
            "try:\n    tok = load_token()\nexcept Exception as e:\n    tok = 'ERROR ' + str(e)\n"
            "print(json.dumps([tok, os.readlink('/proc/self/fd/0')]))")
    env = {**os.environ, "PYTHONPATH": f"{sdk_path}:{ROOT}", **env_extra}
    out = subprocess.run([sys.executable, "-c", code], stdin=stdin, env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_token_from_standard_input_is_read_once_and_stdin_becomes_dev_null(tmp_path, sdk_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    with open(f) as stdin:
        tok, fd0 = _run_reading_stdin(sdk_path, stdin, {"UNIFIED_TOKEN_FROM": "stdin"})
    assert tok == TOKEN and fd0 == "/dev/null"   # no program the agent runs inherits it


def test_token_from_standard_input_that_is_not_a_file_is_a_clear_error(sdk_path):
    import subprocess

    tok, _ = _run_reading_stdin(sdk_path, subprocess.PIPE, {"UNIFIED_TOKEN_FROM": "stdin"})
    assert tok.startswith("ERROR UNIFIED_TOKEN_FROM=stdin but standard input is not a file")
