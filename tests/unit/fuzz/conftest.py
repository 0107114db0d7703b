"""Hypothesis profiles for the fuzz tests.

"ci" (the default): derandomized, so a run is reproducible and CI never flakes on a new
random seed; example counts are set per test (`settings(max_examples=...)`) to keep the
whole set under a minute on 2 cores. "explore": random seeds and 10x the examples, for a
developer hunting bugs: `HYPOTHESIS_PROFILE=explore /usr/bin/python3 -m pytest tests/unit/fuzz`.
No example database is written (nothing appears in the tree).
"""
import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("ci", derandomize=True, **_COMMON)
settings.register_profile("explore", derandomize=False, **_COMMON)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """`n` examples in CI, 10x when exploring."""
    return n * 10 if PROFILE == "explore" else n
