"""unified-system control plane: catalog, systemd units and the unified-ctl CLI."""

__version__ = "0.2.0"
