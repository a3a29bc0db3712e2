"""Shared test setup: float64 JAX and hypothesis profiles.

The default suite is reproducible: hypothesis draws the same examples on every run
(``derandomize``), so CI time and outcome do not depend on luck. To search for new
counterexamples, run ``python3 -m pytest --hypothesis-profile=explore`` (random, more examples;
a failure prints the seed that reproduces it).
"""

import os

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("dev", max_examples=15, derandomize=True, **_COMMON)
settings.register_profile("explore", max_examples=60, **_COMMON)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
