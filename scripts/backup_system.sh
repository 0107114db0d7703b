#!/bin/sh
# Runbook entry point (monthly full backup): `./scripts/backup_system.sh [PATH]`.
# = `unified-ctl backup create [PATH]`: /etc/unified and /var/lib/unified (SQLite copied
# live with its online backup API) into one tar.gz with a manifest of sha256 checksums,
# by default in /var/backups/unified/. Restore: `unified-ctl backup restore ARCHIVE`.
exec unified-ctl backup create "$@"
