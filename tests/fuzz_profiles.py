"""Hypothesis profiles of the fuzz tests (tests/test_fuzz_*.py).

`ci` (the default): derandomized (a fixed seed: the same cases on every run), no example
database, so CI is deterministic; `long` (CNNFAST_FUZZ=long): 20x the cases, random seeds.
`examples(n)` is a test's case count under the active profile."""
import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("CNNFAST_FUZZ", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"CNNFAST_FUZZ must be 'ci' or 'long', got {PROFILE!r}")
SCALE = 20 if PROFILE == "long" else 1
_common = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("cnnfast-ci", derandomize=True, **_common)
settings.register_profile("cnnfast-long", derandomize=False, **_common)
settings.load_profile(f"cnnfast-{PROFILE}")


def examples(n):
    return settings(max_examples=n * SCALE)
