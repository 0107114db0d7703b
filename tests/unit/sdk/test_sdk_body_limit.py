"""Agent.max_body_bytes: an agent whose requests are large by nature (STTService's audio)
lets in more than UNIFIED_MAX_BODY_BYTES; the larger of the two is the limit."""
import http.client
import json


def send(agent, size: int):
    conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=30)
    try:
        overhead = len(json.dumps({"type": "t", "data": ""}))
        body = json.dumps({"type": "t", "data": "x" * (size - overhead)}).encode()
        assert len(body) == size
        conn.request("POST", "/task", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    except (BrokenPipeError, ConnectionResetError):  # refused at the header, body unsent
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def test_an_agent_raises_its_own_body_limit_above_the_default(spawn):
    a = spawn("Big", {"UNIFIED_RUN": "entry_point:sdk_body_agents:BigBodies",
                      "BIG_BODY_BYTES": str(2 << 20), "UNIFIED_MAX_BODY_BYTES": str(1 << 20)})
    assert send(a, 2 << 20)[0] == 200                                  # over the default
    status, out = send(a, (2 << 20) + 1)
    assert status == 413 and f"limit of {2 << 20} bytes" in out["error"], out


def test_the_larger_of_the_two_limits_wins(spawn):
    a = spawn("Big", {"UNIFIED_RUN": "entry_point:sdk_body_agents:BigBodies",
                      "BIG_BODY_BYTES": "1000", "UNIFIED_MAX_BODY_BYTES": "5000"})
    assert send(a, 5000)[0] == 200
    assert send(a, 5001)[0] == 413
