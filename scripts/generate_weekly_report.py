#!/usr/bin/python3
"""Runbook entry point (weekly performance review): `python3 scripts/generate_weekly_report.py`
= `unified-ctl report weekly`: availability, restarts, slow loads, alerts, memory/VRAM peaks and
the LLM routing split of the last 7 days as Markdown, JSON and a PNG (with python3-matplotlib)
in /var/lib/unified-system/reports/. Options pass through (--days, --out-dir, --print)."""
import os
import sys

try:
    from unified_ctl.cli import main
except ImportError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from unified_ctl.cli import main

sys.exit(main(["report", "weekly", *sys.argv[1:]]))
