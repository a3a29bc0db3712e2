"""Hypothesis strategies and reference specs for tests of feyntk and of code built on it."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from feyntk.spec.network import Network

SMOOTH = ("tanh", "erf", "gelu", "softplus", "swish", "sin")
KINKED = ("relu", "leaky_relu")
CLOSED_FORM = ("linear", "relu", "leaky_relu", "erf")


@st.composite
def networks(draw, activations=SMOOTH + KINKED + ("linear",), max_depth: int = 4,
             max_width: int = 64, per_layer: bool = True) -> Network:
    """Valid networks with random depth, unequal widths and (optionally) per-layer hyperparameters."""
    L = draw(st.integers(1, max_depth))
    widths = [draw(st.integers(1, 4))] + [draw(st.integers(2, max_width)) for _ in range(L)]
    act = draw(st.sampled_from(activations))

    def hp(lo, hi):
        vals = [draw(st.floats(lo, hi)) for _ in range(L if per_layer else 1)]
        return vals if per_layer else vals[0]

    return Network.create(widths, act, C_W=hp(0.3, 2.5), C_b=hp(0.0, 0.5),
                          lambda_W=hp(0.1, 2.0), lambda_b=hp(0.0, 1.0))


@st.composite
def inputs(draw, n0: int, max_inputs: int = 4) -> np.ndarray:
    """(N, n0) finite inputs of moderate norm (duplicates allowed: they are valid)."""
    N = draw(st.integers(1, max_inputs))
    vals = draw(st.lists(st.floats(-2.0, 2.0), min_size=N * n0, max_size=N * n0))
    return np.asarray(vals, dtype=float).reshape(N, n0)
