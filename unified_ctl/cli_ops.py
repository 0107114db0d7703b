"""unified-ctl operations commands (maintenance and emergency procedures of the runbook)."""
