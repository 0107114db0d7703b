"""Fixtures for the SDK tests (the harness lives in harness.py)."""
from .harness import sdk_path, spawn, spawn_module  # noqa: F401  (pytest fixtures)
