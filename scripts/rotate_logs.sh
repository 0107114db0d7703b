#!/bin/sh
# Runbook entry point (weekly: rotate logs): `./scripts/rotate_logs.sh [--keep SPAN]`.
# Logs are journald's: there are no log files of ours to rotate. This archives the active
# journal files and deletes archived ones older than KEEP (default 14d: the weekly report
# reads the last 7 days, so a week's report can still be made again a week later).
# = `unified-ctl logs vacuum --keep 14d`; journald.conf's SystemMaxUse= caps the size.
if [ $# -eq 0 ]; then
    set -- --keep "${KEEP:-14d}"
fi
exec unified-ctl logs vacuum "$@"
