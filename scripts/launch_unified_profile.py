#!/usr/bin/python3
"""Runbook entry point: `PROFILE=core python3 scripts/launch_unified_profile.py`.

Thin wrapper over `unified-ctl profile switch $PROFILE`: systemd starts the agents; this
switches the profile, waits until every agent is ready and prints what started. Runbook
variables (LOG_LEVEL, DEBUG_MODE, MAX_THREADS, …) become overrides for every agent, printed,
until reboot or `unified-ctl overrides clear`; CONFIG=new.yaml tries another catalog.
"""
import os
import sys

try:
    from unified_ctl.cli import main
except ImportError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from unified_ctl.cli import main

profile = os.environ.get("PROFILE", "core")
code = main(["profile", "switch", profile, *sys.argv[1:]])
if code == 0:
    code = main(["status", "--no-health"]) and 0
    print(f"\nprofile {profile} is up. Check: curl http://localhost:9000/health; "
          "logs: journalctl -u 'unified-agent@*' -f")
sys.exit(code)
