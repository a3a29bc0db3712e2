"""Tolerances, the result type :class:`Estimate` and the error report of unconverged integrals.

Every rule of :mod:`feyntk.numbers.gaussian` returns an :class:`Estimate` (value and an estimate
of its absolute error); :class:`QuadratureReport` collects the integrals that stopped at the
largest rule before meeting the tolerance, with :func:`extrapolated_error` as their error
estimate, and the error estimates of the tensors computed from them (:func:`tensor_error`,
:func:`refined_error`: propagated through the recursion by
:func:`feyntk.numbers.driver.propagated_errors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
"""Estimated relative error of a tensor (:attr:`QuadratureReport.estimate`) above which
``predict`` warns that integrals stopped unconverged."""


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


def tensor_error(value, coarse1, coarse2) -> float:
    """Relative error estimate of a tensor from the recursion re-run with coarser quadrature.

    ``value``: the tensor as evaluated (caps m of the 3- and 4-sample rules); ``coarse1``,
    ``coarse2``: the same recursion with the caps m/2 and m/4 (the integrals that stopped at m
    stop one and two levels earlier, every other integral is unchanged). Their differences
    ``d_last = max|T_m − T_{m/2}|`` and ``d_prev = max|T_{m/2} − T_{m/4}|`` are the errors of the
    integrals propagated through all later layers (which damp early errors), with their signs
    and cancellations; :func:`extrapolated_error` turns them into the error of T_m, as it does
    for one integral. Relative to max|T| (at least :data:`ATOL`)."""
    v = np.asarray(value, float)
    d_last = np.abs(v - np.asarray(coarse1, float)).max(initial=0.0)
    d_prev = np.abs(np.asarray(coarse1, float) - np.asarray(coarse2, float)).max(initial=0.0)
    return float(extrapolated_error(d_last, d_prev)) / max(np.abs(v).max(initial=0.0), ATOL)


REFINED_SAFETY = 3.0
"""Factor on the difference to the refined re-run (:func:`refined_error`): covers a refined
result up to 2/3 as far from the truth as the accepted one (a rule past its asymptotic regime
is far closer: relu's blobs on the conical rule, 4-d caps 12 → 24, moved the tensors by their
whole error, 3e-15 left)."""


def refined_error(value, finer) -> float:
    """Relative error estimate of a tensor of a kinked activation from the recursion re-run with
    the caps of the kinked integrals' rules doubled (``finer``).

    The polar, conical and piecewise rules are Gauss–Legendre on pieces where the integrand is
    analytic: their error falls geometrically, the relative error roughly squaring when m
    doubles, so ``max|T_m − T_{2m}|`` is the error of T_m itself, times
    :data:`REFINED_SAFETY`. (Re-running coarser, as :func:`tensor_error` does for the
    Gauss–Hermite rules, was 0.02-20× the measured error at depth 10: the tensors mix integrals
    whose errors fall at different rates, and m/4 = 3 on the 4-d conical rule is far from the
    asymptotic regime.) Relative to max|T| (at least :data:`ATOL`)."""
    v = np.asarray(value, float)
    d = np.abs(v - np.asarray(finer, float)).max(initial=0.0)
    return REFINED_SAFETY * float(d) / max(np.abs(v).max(initial=0.0), ATOL)


@dataclass
class QuadratureReport:
    """Integrals that stopped at the largest rule before meeting the tolerance, and the error
    estimates of the tensors computed from them.

    Mutable accumulator passed explicitly down one evaluation (``predict`` makes one per call).
    Per integral: ``max_rel_error`` is the largest :func:`extrapolated_error` estimate relative
    to the scale of its integral (the largest |value| among the outputs of that
    subset/covariance), ``worst`` its label (``"4-sample, m = 48"``: samples and last level),
    ``labels`` the largest estimate per label. Per tensor: ``tensors`` maps a tensor's name to
    its relative error estimate (:meth:`record`, from
    :func:`feyntk.numbers.driver.evaluate_as_given`), ``seconds`` the time spent on those
    estimates. Integrals recorded by :meth:`add` outside such an evaluation are covered by no
    tensor estimate; their per-integral maximum is ``unpropagated``. :attr:`estimate`, the
    number ``predict`` warns on, is the largest of all of these.
    """

    capped: int = 0
    max_rel_error: float = 0.0
    worst: str = ""
    labels: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)
    unpropagated: float = 0.0
    seconds: float = 0.0

    def add(self, d_last, d_prev, value, label: str) -> None:
        """Record unconverged rows: arrays (B, ...) of the last two level differences and values."""
        B = np.shape(value)[0]
        if B == 0:
            return
        est = extrapolated_error(d_last, d_prev).reshape(B, -1)
        scale = np.maximum(np.abs(np.asarray(value)).reshape(B, -1).max(-1), ATOL)
        rel = float(np.max(est.max(-1) / scale))
        self._count(int(B), rel, label)
        self.unpropagated = max(self.unpropagated, rel)

    def _count(self, capped: int, rel: float, label: str) -> None:
        self.capped += capped
        if rel > self.max_rel_error or not self.worst:
            self.max_rel_error, self.worst = max(rel, self.max_rel_error), label
        self.labels[label] = max(rel, self.labels.get(label, 0.0))

    def record(self, integrals: "QuadratureReport", tensors: dict, seconds: float = 0.0) -> None:
        """Take over the integrals of one evaluation (``integrals``, a report of its own) and the
        tensors' error estimates propagated from them (name → relative estimate; a name already
        present keeps the larger)."""
        for label, rel in integrals.labels.items():
            self._count(0, rel, label)
        self.capped += integrals.capped
        for name, rel in tensors.items():
            self.tensors[name] = max(float(rel), self.tensors.get(name, 0.0))
        self.seconds += seconds

    @property
    def estimate(self) -> float:
        """The largest relative error estimate of any tensor (and of any integral that no tensor
        estimate covers)."""
        return max(max(self.tensors.values(), default=0.0), self.unpropagated)

    @property
    def worst_tensor(self) -> str:
        return max(self.tensors, key=self.tensors.get) if self.tensors else ""

    def summary(self) -> dict:
        """``max_rel_error_estimate``: :attr:`estimate`; ``tensor_rel_error_estimates``: per
        tensor; ``max_integral_rel_error_estimate`` and ``worst``: the largest per-integral
        estimate and its label; ``estimate_seconds``: time spent on the tensor estimates."""
        return {"rtol": RTOL, "capped_integrals": self.capped,
                "max_rel_error_estimate": self.estimate,
                "tensor_rel_error_estimates": dict(self.tensors),
                "worst_tensor": self.worst_tensor,
                "max_integral_rel_error_estimate": self.max_rel_error, "worst": self.worst,
                "estimate_seconds": self.seconds}
