"""The anisotropic tensor-product Gauss–Hermite rule: m nodes along the widest direction of a
factor, fewer along narrower ones (:func:`node_counts`), pruned (:mod:`.pruning`); its levels
(:func:`tensor_levels`)."""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from feyntk.numbers.gaussian.gauss1d import hermite_rule
from feyntk.numbers.gaussian.pruning import prune_cuts

M_START = 48
M_MAX = 768


def tensor_levels(r: int, fine: bool | int = False) -> tuple[int, int]:
    """First and largest m per direction of the tensor rule for a rank-r Gaussian.

    The caps (48 nodes per direction in 4-d, 128 in 3-d) bound the cost of the C(N, 4) and
    C(N, 3) many-sample integrals; ``fine`` doubles them for r ≥ 3 (16× / 8× the nodes at the
    last level) for when :class:`QuadratureReport` flags integrals that stopped unconverged.
    An integer ``fine`` is the number of doublings (True = 1); a negative one halves the caps
    (not below the first level), which is how the error estimate of
    :func:`feyntk.numbers.driver.evaluate_as_given` re-runs a recursion one and two levels
    coarser.
    """
    m_max = M_MAX if r <= 1 else 384 if r == 2 else 128 if r == 3 else 48
    m0 = M_START if r <= 2 else 32 if r == 3 else 12
    if fine and r >= 3:
        m_max = max(m0, int(m_max * 2.0 ** int(fine)))
    return min(m0, m_max), m_max


MIN_SCALE = 0.125
"""Every direction gets at least this fraction of the level's nodes (:func:`node_counts`)."""


def direction_scales(L: np.ndarray) -> np.ndarray:
    """Relative scale of each direction of a factor L: its column norm over the largest
    (``sqrt(λ_j / λ_max)`` for eigen directions) rounded *up* to a power of √2 and at least
    :data:`MIN_SCALE` (so that batches share few grids); 0 for a zero direction.
    L: (B, d, r) → (B, r)."""
    lam = np.einsum("bdr,bdr->br", L, L)
    if lam.shape[-1] == 0:
        return lam
    s = np.sqrt(lam / np.maximum(lam.max(-1, keepdims=True), 1e-300))
    with np.errstate(divide="ignore"):
        q = 2.0 ** (np.ceil(2 * np.log2(np.maximum(s, 2.0**-30)) - 1e-9) / 2)
    # below MIN_SCALE the node counts are set by node_counts' floor: one key for all of them
    return np.where(s > 0, np.clip(q, MIN_SCALE, 1.0), 0.0)


def node_counts(m: int, scales) -> tuple[int, ...]:
    """Nodes per direction at level m: ``max(m·scale, m/8)`` rounded up to an even count (≥ 2);
    one node (u = 0) for a zero direction (scale 0).

    An analytic integrand varies along direction j on the scale sqrt(λ_j), and the Gauss–Hermite
    error falls like exp(−c·sqrt(m)·δ/sqrt(λ_j)) for a singularity at distance δ, so m_j ∝ λ_j
    would do; m_j ∝ sqrt(λ_j) is the conservative choice. The floor m/8 makes every m_j grow
    with m, so the adaptive refinement (two levels agree) watches every direction: without it a
    thin direction (λ_j/λ_max ≲ 1/64 at m = 48) kept 2 nodes at every level, and its error
    (~5e-7 relative for derivative integrands of tanh) was invisible to the refinement.
    """
    floor = m * MIN_SCALE
    return tuple(max(2, 2 * int(math.ceil(max(m * float(q), floor) / 2 - 1e-9))) if q > 0 else 1
                 for q in scales)


@functools.lru_cache(maxsize=16)
def _tensor_rule(ms: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Tensor Gauss–Hermite rule with ms[j] nodes along direction j, pruned by :data:`PRUNE`
    (nodes (r, P) and weights (P,), read-only; row-major node order).

    Built direction by direction, pruning each partial product with :func:`prune_cuts` as the
    kernels do, so memory follows the kept nodes (96⁴: 3.7M of 85M) instead of the full grid
    (a full meshgrid peaked at 6.4 GB there)."""
    r = len(ms)
    if r == 0:
        return np.zeros((0, 1)), np.ones(1)
    rules = [hermite_rule(m) for m in ms]
    cut = prune_cuts([w.max() for _, w in rules])
    idx = np.zeros((0, 1), dtype=np.int32)  # kept multi-indices so far (j, P)
    weights = np.ones(1)
    for j, (_, w) in enumerate(rules):
        wj = (weights[:, None] * w[None, :]).ravel()  # left to right, as the kernels multiply
        keep = np.nonzero(wj >= cut[j])[0]
        prev, new = np.divmod(keep, len(w))
        idx = np.concatenate([idx[:, prev], new[None, :].astype(np.int32)])
        weights = wj[keep]
    nodes = np.stack([rules[j][0][idx[j]] for j in range(r)])  # (r, P)
    nodes.flags.writeable = weights.flags.writeable = False
    return nodes, weights


def _apply_rule(f: Callable, L: np.ndarray, m: int) -> np.ndarray:
    """Anisotropic tensor rule (:func:`node_counts`) for each batch element, grouped by grid."""
    if L.shape[-1] <= 1:
        nodes, weights = _tensor_rule((m,) * L.shape[-1])
        return np.asarray(f(L @ nodes), dtype=float) @ weights
    ms = [node_counts(m, q) for q in direction_scales(L)]
    groups: dict[tuple, list[int]] = {}
    for b, key in enumerate(ms):
        groups.setdefault(key, []).append(b)
    out = None
    for key, idx in groups.items():
        nodes, weights = _tensor_rule(key)
        vals = np.asarray(f(L[idx] @ nodes), dtype=float) @ weights
        if len(groups) == 1:
            return vals
        if out is None:
            out = np.empty((L.shape[0],) + vals.shape[1:])
        out[idx] = vals
    return out
