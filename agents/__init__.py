"""unified_agents: the SDK every agent process runs on, plus the built-in agents.

Public API (imported lazily, so `python3 -m unified_agents` pays only for what it uses):
Agent, route, HTTPError, Request, Response, ConfigError, current_request, client.
"""

__version__ = "0.2.0"

_LAZY = {
    "Agent": ("agent", "Agent"),
    "route": ("agent", "route"),
    "HTTPError": ("server", "HTTPError"),
    "Request": ("server", "Request"),
    "Response": ("server", "Response"),
    "ConfigError": ("config", "ConfigError"),
    "current_request": ("request_context", "current_request"),
    "ReferenceAgent": ("reference", "ReferenceAgent"),
    "client": ("client", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import sys

    modname = f"{__name__}.{spec[0]}"
    __import__(modname)
    value = sys.modules[modname] if spec[1] is None else getattr(sys.modules[modname], spec[1])
    globals()[name] = value
    return value
