"""The 1-d rule for rank-one covariances of kinked integrands, split at the kinks."""

from __future__ import annotations

from typing import Callable

import numpy as np

from feyntk.numbers.gaussian.gauss1d import halfrange_rule, legendre_rule


def _piecewise_apply(f: Callable, L: np.ndarray, m: int, kinks: tuple[float, ...],
                     shift: np.ndarray | None) -> np.ndarray:
    """1-d rule (rank-one covariance) split where some coordinate z_i = shift_i + L_i u crosses a
    kink: Gauss–Legendre on finite pieces, half-range Gauss on the two tails."""
    B, d = L.shape[0], L.shape[1]
    Lv = L[:, :, 0]
    sh = np.zeros((B, d)) if shift is None else np.broadcast_to(shift, (B, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        cuts = np.concatenate([(c - sh) / Lv for c in kinks], axis=1) if kinks else np.zeros((B, 0))
    cuts = np.where(np.isfinite(cuts) & (np.abs(cuts) < 40.0), cuts, np.nan)
    cuts = np.sort(cuts, axis=1)  # nan last
    k = cuts.shape[1]
    gx, gw = legendre_rule(m)
    r, wr = halfrange_rule(m, 0)
    norm = 1.0 / np.sqrt(2 * np.pi)
    nodes, weights = [], []
    lo = np.where(np.isnan(cuts[:, :1]), 0.0, cuts[:, :1]) if k else np.zeros((B, 1))
    # left tail (-inf, lo]: u = lo - t
    nodes.append(lo - r)
    weights.append(np.broadcast_to(wr * norm, (B, len(r))) * np.exp(-0.5 * lo**2 + lo * r))
    last = lo
    for i in range(1, k):
        nxt = np.where(np.isnan(cuts[:, i:i + 1]), last, cuts[:, i:i + 1])
        half = (nxt - last) / 2
        u = last + half * (gx + 1)
        nodes.append(u)
        weights.append(half * gw * norm * np.exp(-0.5 * u**2))
        last = nxt
    # right tail [last, inf): u = last + t
    nodes.append(last + r)
    weights.append(np.broadcast_to(wr * norm, (B, len(r))) * np.exp(-0.5 * last**2 - last * r))
    U = np.concatenate(nodes, axis=1)  # (B, P)
    Wt = np.concatenate(weights, axis=1)
    z = L[:, :, :1] * U[:, None, :]
    vals = np.asarray(f(z), dtype=float)
    return np.einsum("b...p,bp->b...", vals, Wt)
