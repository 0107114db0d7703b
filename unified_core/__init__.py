"""unified_core: what the CLI (unified_ctl) and the agents (unified_agents) share.

The catalog (model, types, YAML loader, validation), paths, the systemd/journal seam, the fleet
view, the health probe, profiles and the runtime overrides; errors are plain exceptions with
exit codes. It imports neither unified_ctl nor unified_agents, nor click
(tests/unit/test_layers.py keeps it so): an agent that reads the catalog loads only this.
"""
