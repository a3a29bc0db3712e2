"""Closed forms of ``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]``: linear; the ReLU/leaky-ReLU arc-cosine
family; erf (Williams' arcsine kernel). Exact up to rounding (error reported as 0)."""

from __future__ import annotations

import numpy as np

from feyntk.numbers.gaussian.factors import _EIG_TOL
from feyntk.spec.activation import Activation


def _closed_pair(act: Activation, k1: int, k2: int, Kaa, Kbb, Kab) -> np.ndarray | None:
    """E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)] in closed form, or None if none is known here."""
    fam = act.closed_form
    if fam == "linear":
        if k1 > 1 or k2 > 1:
            return np.zeros_like(Kab)
        return Kab if (k1, k2) == (0, 0) else np.ones_like(Kab) if (k1, k2) == (1, 1) \
            else np.zeros_like(Kab)  # E[z] = 0
    if fam == "relu" and (k1, k2) in ((0, 0), (1, 1)):
        s = dict(act.params).get("slope", 0.0)
        norm = np.sqrt(Kaa) * np.sqrt(Kbb)  # no underflow for variances below 1e-162
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = np.where(norm > 0, Kab / np.where(norm > 0, norm, 1.0), 0.0)
        # |ρ| within rounding of 1 is a rank-one pair (as the quadrature treats it): snap it,
        # since (π - arccos ρ) has an infinite slope there and would amplify rounding to 1e-8
        rho = np.where(np.abs(rho) > 1 - _EIG_TOL, np.sign(rho), rho)
        theta = np.arccos(np.clip(rho, -1.0, 1.0))
        if k1 == 0:
            relu = norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))
            return s * Kab + (1 - s) ** 2 * relu
        return s + (1 - s) ** 2 * (np.pi - theta) / (2 * np.pi)
    if fam == "erf" and (k1, k2) in ((0, 0), (1, 1)):
        a, b = 1 + 2 * Kaa, 1 + 2 * Kbb
        if k1 == 0:
            return 2 / np.pi * np.arcsin(np.clip(2 * Kab / np.sqrt(a * b), -1.0, 1.0))
        return 4 / np.pi / np.sqrt(a * b - 4 * Kab**2)
    return None
