"""Tolerances, the result type :class:`Estimate` and the error report of unconverged integrals.

Every rule of :mod:`feyntk.numbers.gaussian` returns an :class:`Estimate` (value and an estimate
of its absolute error); :class:`QuadratureReport` collects the integrals that stopped at the
largest rule before meeting the tolerance, with :func:`capped_error` as their error estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

RTOL = 1e-12
"""Default relative tolerance of the adaptive quadrature."""
ATOL = 1e-14


@dataclass(frozen=True)
class Estimate:
    """A numerical value with an estimate of its absolute integration error (same shape)."""

    value: np.ndarray
    error: np.ndarray


QUAD_WARN = 1e-4
"""Estimated relative error above which ``predict`` warns that integrals stopped unconverged.

The estimate is conservative per integral and far more so for the tensors: for tanh, N = 4,
depth 10, it is 2e-6 while doubling the 4-sample cap changes every tensor by < 6e-11."""


def capped_error(d_last: np.ndarray, d_prev: np.ndarray) -> np.ndarray:
    """Error estimate of the finest level from the last two level differences.

    ``d_last = |I_m − I_{m/2}|`` bounds the error of I_{m/2}, not of the accepted I_m. With the
    error falling geometrically, I_m's error would be ``d_last²/d_prev``; before the asymptotic
    regime the ratio can worsen from one level to the next (tanh, K = 2, levels 8-16-32: the
    error fell ×26, then ×7), so the estimate assumes the next ratio is only the square root of
    the last: ``d_last·sqrt(d_last/d_prev)``, between the plain bound and the geometric guess.
    Measured on the C(8, 4) and C(8, 3) subsets of a depth-10 tanh network: the largest estimate
    (relative to its integral's scale) is 130× / 230× the largest true error. Where the
    differences did not fall, or only one difference exists (d_prev infinite), d_last.
    """
    d_last, d_prev = np.asarray(d_last, float), np.asarray(d_prev, float)
    fell = np.isfinite(d_prev) & (d_prev > d_last)
    return np.where(fell, d_last * np.sqrt(d_last / np.where(fell, d_prev, 1.0)), d_last)


RATE_EXPONENT = math.sqrt(2.0)
"""Gauss–Hermite error of an integrand analytic in a strip falls like exp(−c·sqrt(m)), so when m
doubles from m/4 → m/2 → m the log-error steps grow by sqrt(2): e_m ≈ e_{m/2}·(e_{m/2}/e_{m/4})^√2."""
EXTRAPOLATION_SAFETY = 10.0
"""Factor on the rate-extrapolated error (:func:`extrapolated_error`). Measured on 4-sample tanh
integrands (products of tanh, tanh', tanh'' at K ~ 0.3-3, levels 12-24-48 against m = 192) the
extrapolation was 0.8-6× the true error of the m = 48 result, and 0.3-1.6× on a pre-asymptotic
3-sample sequence (8-16-32 to 32-64-128): ×10 covers both, and stays ≤ the plain bound d_last."""


def extrapolated_error(d_last: np.ndarray, d_prev: np.ndarray) -> np.ndarray:
    """Error estimate of the accepted (finest) level used by :class:`QuadratureReport`.

    The observed convergence of the last two level differences (``d_last = |I_m − I_{m/2}|``,
    ``d_prev = |I_{m/2} − I_{m/4}|``, estimates of the errors of I_{m/2} and I_{m/4}) with the
    rate of :data:`RATE_EXPONENT`: ``SAFETY·d_last·(d_last/d_prev)^√2``, at most d_last. Where the
    differences did not fall, or only one exists (d_prev infinite): d_last. The earlier
    :func:`capped_error` (``d_last·sqrt(d_last/d_prev)``) was 10-100× the true error of an integral."""
    d_last, d_prev = np.asarray(d_last, float), np.asarray(d_prev, float)
    fell = np.isfinite(d_prev) & (d_prev > d_last)
    ratio = np.where(fell, d_last / np.where(fell, d_prev, 1.0), 1.0)
    return np.minimum(d_last, EXTRAPOLATION_SAFETY * d_last * ratio ** RATE_EXPONENT)


@dataclass
class QuadratureReport:
    """Integrals that stopped at the largest rule before meeting the tolerance.

    Mutable accumulator passed explicitly down one evaluation (``predict`` makes one per call).
    ``max_rel_error`` is the largest :func:`extrapolated_error` estimate relative to the scale of
    its integral (the largest |value| among the outputs of that subset/covariance).
    """

    capped: int = 0
    max_rel_error: float = 0.0
    worst: str = ""

    def add(self, d_last, d_prev, value, label: str) -> None:
        """Record unconverged rows: arrays (B, ...) of the last two level differences and values."""
        B = np.shape(value)[0]
        if B == 0:
            return
        est = extrapolated_error(d_last, d_prev).reshape(B, -1)
        scale = np.maximum(np.abs(np.asarray(value)).reshape(B, -1).max(-1), ATOL)
        rel = float(np.max(est.max(-1) / scale))
        self.capped += int(B)
        if rel > self.max_rel_error or not self.worst:
            self.max_rel_error, self.worst = max(rel, self.max_rel_error), label

    def summary(self) -> dict:
        return {"rtol": RTOL, "capped_integrals": self.capped,
                "max_rel_error_estimate": self.max_rel_error, "worst": self.worst}
