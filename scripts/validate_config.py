#!/usr/bin/python3
"""Runbook entry point: `python3 scripts/validate_config.py FILE` = `unified-ctl validate FILE`."""
import os
import sys

try:
    from unified_ctl.cli import main
except ImportError:  # running from a source checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from unified_ctl.cli import main

sys.exit(main(["validate", *sys.argv[1:]]))
