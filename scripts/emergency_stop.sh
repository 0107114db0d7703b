#!/bin/sh
# Runbook entry point: stop every unified-system agent and socket now (no pkill -f: systemd
# knows every process of every agent by its cgroup, and nothing else on the host is touched).
exec unified-ctl emergency-stop --yes "$@"
