#!/usr/bin/python3
"""Disposable systemd containers for developers (the system-test harness, by hand).

  scripts/dev/container.py shell              boot, install the newest dist/*.deb, bash inside
  scripts/dev/container.py shell --no-deb     the bare rootfs (install by hand from /mnt/dist)
  scripts/dev/container.py run -- CMD...      same, run CMD inside, tear down, exit with its rc
  scripts/dev/container.py rootfs             build (or find) the cached rootfs, print its path
  scripts/dev/container.py list               harness containers on this host
  scripts/dev/container.py sweep              tear down containers whose owner process is dead
  scripts/dev/container.py clean              sweep, then delete the whole cache

Inside: the repo is at /mnt/src (read-only), dist/ at /mnt/dist (read-only), no network
but loopback. The container is torn down when the shell or CMD exits (also on Ctrl-C).
Run as root. See docs/TESTING.md.
"""
import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "system"))

import harness  # noqa: E402


def _boot(args) -> harness.Container:
    harness.preflight()
    harness.sweep_stale()
    deb = None
    if not args.no_deb:
        deb = Path(args.deb).resolve() if args.deb else harness.find_or_build_deb()
    rootfs = harness.ensure_rootfs(deb)
    binds = [tuple(b.split(":", 1)) for b in args.bind]
    if deb is not None:
        print(f"starting a container and installing {deb.name} …", file=sys.stderr)
    return harness.boot(rootfs, deb, bind=binds, bind_ro=[(str(REPO), "/mnt/src")], label="dev")


def _interactive(c: harness.Container, argv) -> int:
    env = {"TERM": os.environ.get("TERM", "xterm"), "PS1": rf"[{c.name}] \w# "}
    # The child owns the terminal's Ctrl-C; we only wait and then tear down.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call(c._argv(argv, env, None, None), env={"PATH": harness.CLEAN_PATH})
    finally:
        signal.signal(signal.SIGINT, old)


def cmd_shell(args) -> int:
    c = _boot(args)
    try:
        print(f"container {c.name}: systemd {c.state}, PID 1 is host pid {c.leader}\n"
              f"  another shell: nsenter -t {c.leader} -a bash\n"
              f"  its files on the host: {c.root}\n"
              "  exit this shell to tear it down", file=sys.stderr)
        return _interactive(c, ["bash", "--norc", "-i"])
    finally:
        c.stop()
        print(harness.format_timings(), file=sys.stderr)


def cmd_run(args) -> int:
    if not args.cmd:
        sys.exit("run: give a command after --")
    c = _boot(args)
    try:
        return _interactive(c, args.cmd)
    finally:
        c.stop()


def cmd_rootfs(args) -> int:
    harness.preflight()
    deb = None if args.no_deb else (Path(args.deb) if args.deb else harness.newest_deb())
    print(harness.ensure_rootfs(deb))
    print(harness.format_timings(), file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    for info in harness.live_containers():
        print(f"{info['name']}  owner pid {info['owner_pid']} "
              f"({'alive' if info['owner_alive'] else 'DEAD: sweep will remove it'})  "
              f"PID 1 = {info.get('leader_pid')}")
    return 0


def cmd_sweep(args) -> int:
    swept = harness.sweep_stale(verbose=False)
    print("\n".join(swept) or "nothing stale")
    return 0


def cmd_clean(args) -> int:
    harness.sweep_stale()
    live = [i for i in harness.live_containers() if i["owner_alive"]]
    if live:
        sys.exit(f"containers still in use: {', '.join(i['name'] for i in live)}; not cleaning")
    if harness.CACHE_DIR.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(harness.CACHE_DIR)], check=True)
    print(f"removed {harness.CACHE_DIR}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for name, fn in (("shell", cmd_shell), ("run", cmd_run), ("rootfs", cmd_rootfs),
                     ("list", cmd_list), ("sweep", cmd_sweep), ("clean", cmd_clean)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        if name in ("shell", "run", "rootfs"):
            g = p.add_mutually_exclusive_group()
            g.add_argument("--deb", help="this .deb instead of the newest dist/*.deb")
            g.add_argument("--no-deb", action="store_true", help="install nothing")
        if name in ("shell", "run"):
            p.add_argument("--bind", action="append", default=[], metavar="SRC:DST",
                           help="bind-mount a host path read-write")
        if name == "run":
            p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if getattr(args, "cmd", None) and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    harness.install_signal_handlers()
    try:
        return args.fn(args)
    except harness.HarnessError as e:
        print(f"container.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
