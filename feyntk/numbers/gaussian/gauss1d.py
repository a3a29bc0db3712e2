"""One-dimensional Gauss rules the multi-dimensional rules are built from: Gauss–Hermite
(normalised to the standard normal), Gauss–Legendre on [-1, 1] and the half-range rule of weight
``r**power · exp(-r²/2)`` on [0, ∞)."""

from __future__ import annotations

import functools
import threading

import mpmath as mp
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import roots_hermitenorm


@functools.lru_cache(maxsize=256)
def hermite_rule(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilists' Gauss–Hermite nodes and weights normalised to the standard normal."""
    x, w = hermegauss(m) if m <= 180 else roots_hermitenorm(m)
    w = w / np.sqrt(2.0 * np.pi)
    keep = w > 1e-300
    return x[keep], w[keep]


@functools.lru_cache(maxsize=64)
def legendre_rule(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [-1, 1] (read-only; numpy recomputes them per call,
    which was a quarter of a relu predict)."""
    x, w = np.polynomial.legendre.leggauss(m)
    x.flags.writeable = w.flags.writeable = False
    return x, w


_MP_LOCK = threading.Lock()


@functools.lru_cache(maxsize=16)
def halfrange_rule(m: int, power: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Gauss rule for the weight ``r**power · exp(-r²/2)`` on [0, ∞).

    Recurrence coefficients come from the exact moments by Chebyshev's algorithm in
    high-precision arithmetic (mpmath), nodes and weights by Golub–Welsch in float64.
    """
    with _MP_LOCK, mp.workdps(max(50, 4 * m)):  # mpmath's precision is process-global
        mu = [mp.mpf(2) ** (mp.mpf(k + power - 1) / 2) * mp.gamma(mp.mpf(k + power + 1) / 2)
              for k in range(2 * m)]
        alpha, beta = [mu[1] / mu[0]], [mu[0]]
        sig_prev, sig = [mp.mpf(0)] * (2 * m), list(mu)
        for k in range(1, m):
            new = [mp.mpf(0)] * (2 * m)
            for j in range(k, 2 * m - k):
                new[j] = sig[j + 1] - alpha[k - 1] * sig[j] - beta[k - 1] * sig_prev[j]
            alpha.append(new[k + 1] / new[k] - sig[k] / sig[k - 1])
            beta.append(new[k] / sig[k - 1])
            sig_prev, sig = sig, new
        a = np.array([float(v) for v in alpha])
        b = np.array([float(v) for v in beta])
    off = np.sqrt(b[1:])
    x, vecs = np.linalg.eigh(np.diag(a) + np.diag(off, 1) + np.diag(off, -1))
    return x, b[0] * vecs[0] ** 2
