"""The 2-d polar rule: arcs between the lines z_a = 0 times a half-range radial rule, exponentially
convergent for integrands kinked at z = 0 (2 variables, or more of rank 2)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from feyntk.numbers.gaussian.gauss1d import halfrange_rule, legendre_rule

POLAR_LEVELS = (8, 128)
"""First and largest m of the polar rule (2-d integrals)."""


def polar_nodes(L: np.ndarray, m: int, half: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z (B, d, P) and weights (B, P) of the 2-d polar rule for factors L (B, d, r ≤ 2)
    (two variables, or more of rank 2: repeated or collinear inputs).

    Angles of the whitened variables: the circle is cut at the angles b_1 ≤ … ≤ b_d (mod π)
    where a coordinate z_a = (L e_φ)_a changes sign, into the arcs [b_1, b_2], …, [b_d, b_1 + π]
    and their translates by π, each with m Gauss–Legendre angles, times a half-range radial rule of 2m
    nodes; integrands with kinks at z = 0 then converge exponentially. The node set is symmetric
    under z → −z (φ → φ + π), so ``half`` (the first d arcs only, weights summing to 1/2)
    serves integrands of definite parity: even ones are twice the half sum, odd ones vanish.
    """
    B = L.shape[0]
    if L.shape[-1] < 2:
        L = np.concatenate([L, np.zeros((B, L.shape[1], 2 - L.shape[-1]))], axis=-1)
    base = np.arctan2(-L[:, :, 0], L[:, :, 1]) % np.pi  # (B, d): where (L e_φ)_a = 0
    b = np.sort(np.where(np.any(L != 0, axis=-1), base, base.max(-1, keepdims=True)), axis=-1)
    cuts = b[:, :1] + np.concatenate([b - b[:, :1], [[np.pi]] * B], axis=1)  # b1, b2, b1 + π
    if not half:
        cuts = np.concatenate([cuts, cuts[:, 1:] + np.pi], axis=1)
    gx, gw = legendre_rule(m)
    lo, hi = cuts[:, :-1, None], cuts[:, 1:, None]
    phi = (lo + (hi - lo) * (gx + 1) / 2).reshape(B, -1)
    wphi = ((hi - lo) * gw / 2).reshape(B, -1) / (2 * np.pi)
    r, wr = halfrange_rule(2 * m)
    dirs = np.einsum("bij,bjp->bip", L, np.stack([np.cos(phi), np.sin(phi)], axis=1))
    z = (dirs[:, :, :, None] * r).reshape(B, L.shape[1], -1)
    weights = (wphi[:, :, None] * wr).reshape(B, -1)
    return np.ascontiguousarray(z), np.ascontiguousarray(weights)


def _polar_apply(f: Callable, L: np.ndarray, m: int) -> np.ndarray:
    """The polar rule (:func:`polar_nodes`) applied to f."""
    z, weights = polar_nodes(L, m)
    vals = np.asarray(f(z), dtype=float)
    return np.einsum("b...p,bp->b...", vals, weights)


def kinks_at_origin(kinks, shift) -> bool:
    """Kinks all at 0 and not shifted: they lie on the planes z_a = 0 through the origin, where
    the polar and conical rules cut."""
    return (bool(kinks) and all(c == 0 for c in kinks)
            and (shift is None or not np.any(np.asarray(shift) != 0)))


def polar_applies(L: np.ndarray, kinks, shift) -> bool:
    """Whether :func:`expect` uses the polar rule for d > 2 variables of rank 2 (repeated or
    collinear inputs): kinks all at 0 and unshifted, so that they lie on lines through 0."""
    return L.shape[-1] == 2 and kinks_at_origin(kinks, shift)
