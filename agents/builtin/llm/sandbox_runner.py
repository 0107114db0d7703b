"""Runs generated code and its tests inside the sandbox's child process (sandbox.py).

    python3 -I -S sandbox_runner.py LIMITS_JSON RESULTS_FILE [SECCOMP_DIR]   (cwd: the sandbox)

Sets its own resource limits first (setrlimit; a limit the system refuses is reported, not
fatal); with SECCOMP_DIR (where python3-seccomp's module is: -S leaves dist-packages off the
path) it then installs a seccomp filter that refuses socket() for every address family but
AF_UNIX, and io_uring (which can open sockets without socket()): the code has no network.
That one is fatal when it fails (the code is not run: "load_error"). Then it executes
solution.py and tests.py in ONE namespace (the tests call the solution directly, as
pytest-style `test_*` functions with plain asserts) and calls each test_* function in
definition order. Writes {"tests": [{"name", "passed", "error"}], "limits": {...},
"limits_refused": [...], "network_filter"?} to RESULTS_FILE. The standard library only, and
python3-seccomp when asked for the filter; nothing from unified_agents (it runs with -I -S,
outside the agent's environment).
"""
import errno
import json
import resource
import sys
import traceback

LIMITS = {"cpu_s": resource.RLIMIT_CPU, "memory_bytes": resource.RLIMIT_AS,
          "file_bytes": resource.RLIMIT_FSIZE, "open_files": resource.RLIMIT_NOFILE,
          "core_bytes": resource.RLIMIT_CORE}


AF_UNIX = 1  # (socket.AF_UNIX on Linux; the runner imports as little as it can)


def deny_network(module_dir: str) -> None:
    """Load the filter; any failure raises (the caller then runs no code)."""
    sys.path.insert(0, module_dir)
    try:
        import seccomp
    finally:
        sys.path.remove(module_dir)
    f = seccomp.SyscallFilter(seccomp.ALLOW)  # other architectures' calls: killed (libseccomp)
    f.add_rule(seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, AF_UNIX))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "io_uring_setup")
    f.load()  # no_new_privs first (libseccomp's default): an unprivileged process may


def main(limits_json: str, results_file: str, seccomp_dir: str = "") -> None:
    tests: list = []
    limits: dict = {}
    refused: list = []
    results: dict = {"tests": tests, "limits": limits, "limits_refused": refused}
    for name, value in json.loads(limits_json).items():
        try:
            # CPU: the hard limit a second later, so that reaching the limit is SIGXCPU (the
            # sandbox names it a timeout), not the SIGKILL of a hard limit equal to the soft one
            hard = value + 1 if name == "cpu_s" else value
            resource.setrlimit(LIMITS[name], (value, hard))
            limits[name] = value
        except (OSError, ValueError) as e:
            refused.append(f"{name}: {e}")
    out = open(results_file, "w")   # opened before the code runs (it may exhaust fds)
    if seccomp_dir:
        try:
            deny_network(seccomp_dir)
            results["network_filter"] = "installed"
        except BaseException as e:  # noqa: BLE001 - fail closed: no filter, no run
            results["network_filter"] = f"{type(e).__name__}: {e}"
            results["load_error"] = f"the network filter could not be installed ({e})"
            out.write(json.dumps(results))
            out.close()
            return
    ns = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        for fname in ("solution.py", "tests.py"):
            with open(fname, encoding="utf-8") as f:
                exec(compile(f.read(), fname, "exec"), ns)
    except BaseException as e:  # noqa: BLE001 - the generated code's failure is the result
        results["load_error"] = _error(e)
    else:
        for name, fn in list(ns.items()):
            if name.startswith("test_") and callable(fn):
                try:
                    fn()
                    tests.append({"name": name, "passed": True, "error": None})
                except BaseException as e:  # noqa: BLE001
                    tests.append({"name": name, "passed": False,
                                             "error": _error(e)})
    out.write(json.dumps(results))
    out.close()


def _error(e: BaseException) -> str:
    """The exception and the last frame of the generated code that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if f.filename in ("solution.py", "tests.py")]
    where = f" ({frames[-1].filename}:{frames[-1].lineno}: {frames[-1].line})" if frames else ""
    msg = str(e) or ("assertion failed" if isinstance(e, AssertionError) else "(no message)")
    return f"{type(e).__name__}: {msg}{where}"[:500]


if __name__ == "__main__":
    main(*sys.argv[1:4])
