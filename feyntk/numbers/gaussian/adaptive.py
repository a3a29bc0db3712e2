"""⟨f⟩_K by adaptive quadrature (:func:`expect`): chooses the rule for the covariance's rank and
the integrand's kinks, refines m → 2m until two levels agree, and reports what stopped at the
cap."""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from feyntk.errors import QuadratureWarning
from feyntk.numbers.gaussian.conical import (CONE_COND, CONE_LEVELS, _conical_apply,
                                             conical_applies, cone_simplices)
from feyntk.numbers.gaussian.factors import _whiten
from feyntk.numbers.gaussian.hermite import _apply_rule, tensor_levels
from feyntk.numbers.gaussian.piecewise import _piecewise_apply
from feyntk.numbers.gaussian.polar import POLAR_LEVELS, _polar_apply, polar_applies
from feyntk.numbers.gaussian.report import ATOL, RTOL, Estimate, QuadratureReport


PIECEWISE_LEVELS = (16, 128)
"""First and largest m of the split 1-d rule (rank-one covariance, kinked integrand)."""


def kinked_levels(levels: tuple[int, int], fine: bool | int = False) -> tuple[int, int]:
    """First and largest m of a rule with fixed caps (polar, conical, piecewise) for a kinked
    integrand: the cap doubled ``fine`` times (``True`` = once, as :func:`tensor_levels` does for
    the 3- and 4-sample Gauss–Hermite rules), or halved −fine times for a negative integer, the
    first level lowered with it where it would exceed the cap (conical 4-d: 6-12, 6-24 fine)."""
    m0, top = levels
    k = int(fine)
    top = top << k if k >= 0 else max(1, top >> -k)
    return min(m0, top), top


def expect(f: Callable[[np.ndarray], np.ndarray], cov, *, rtol: float = RTOL,
           atol: float = ATOL, m: int | None = None, m_max: int | None = None,
           kinks: tuple[float, ...] = (), shift=None,
           report: QuadratureReport | None = None, fine: bool = False,
           smooth: bool = True) -> Estimate:
    """⟨f⟩_K by adaptive Gauss–Hermite quadrature.

    Args:
        f: maps z of shape ``(B, d, P)`` (batch, sample, node) to values ``(B, P)`` or
            ``(B, ..., P)``.
        cov: ``(d, d)`` or a batch ``(B, d, d)`` of covariances (PSD; singular allowed).
        rtol, atol: target accuracy; refinement stops when two rules agree to it.
        m: starting number of nodes per direction; doubled up to ``m_max``.
        kinks: points c where f may be non-smooth in any coordinate (z_a = c). For a rank-one
            covariance the rule is split there (exponential convergence); in two dimensions a
            polar rule split at the lines z_a = 0 is always used, exact for kinks at 0; in
            three and four, kinks all at 0 select the conical rule (:func:`conical_applies`).
        shift: f is evaluated at centred variables but its kinks sit at z = shift + L u
            (a conditional mean); only used to place the splits.
        report: where to record integrals that reach ``m_max`` unconverged.
        fine: larger default caps for 3- and 4-sample integrals (:func:`tensor_levels`) and
            for the rules of kinked integrands (:func:`kinked_levels`); a negative integer
            lowers them.
        smooth: f has no kinks (with ``kinks`` given it is taken as kinked); selects the
            factor of K (:func:`factor`).

    Returns:
        :class:`Estimate` with the batch shape (scalar for a single covariance).
    """
    cov = np.asarray(cov, dtype=float)
    single = cov.ndim == 2
    C = cov[None] if single else cov
    L = _whiten(C, smooth and not kinks)  # checks finite and PSD
    r = L.shape[-1]
    rule, name = _apply_rule, ""

    def fixed(levels):  # (m, m_max) of a rule with fixed caps; the caller's m, m_max first
        m0, top = kinked_levels(levels, fine) if kinks else levels
        return m or min(m0, m_max or top), m_max or top

    if 1 <= r <= 2 and C.shape[-1] == 2:  # polar rule: best for all 2-d integrals
        (rule, name), (m, m_max) = (_polar_apply, "polar"), fixed(POLAR_LEVELS)
    if C.shape[-1] > 2 and polar_applies(L, kinks, shift):  # kinks at 0 on a plane
        (rule, name), (m, m_max) = (_polar_apply, "polar"), fixed(POLAR_LEVELS)
    if r >= 3 and conical_applies(L, kinks, shift):  # kinks at 0: the conical rule
        cones = [np.stack(cone_simplices(Lb)) for Lb in L]  # once for all levels
        rule = lambda f_, L_, m_: _conical_apply(f_, L_, m_, cones)  # noqa: E731
        name, (m, m_max) = "conical", fixed(CONE_LEVELS[r])
    if r == 1 and kinks:
        sh = None if shift is None else np.asarray(shift, dtype=float).reshape(1, -1)
        rule = lambda f_, L_, m_: _piecewise_apply(f_, L_, m_, tuple(kinks), sh)  # noqa: E731
        name, (m, m_max) = "piecewise", fixed(PIECEWISE_LEVELS)
    if rule is _apply_rule and kinks and r >= 2:
        warnings.warn(
            f"Gauss-Hermite on an integrand kinked at {tuple(kinks)} over {C.shape[-1]} "
            "variables (kinks away from 0, or inputs so nearly collinear that no choice of "
            f"their kink planes has a condition number below {CONE_COND:g}): it "
            "converges slowly across the kinks, to about 1e-3 relative accuracy for step "
            "functions, and may look converged before it is. Kinks at 0 are otherwise "
            "integrated exactly (polar and conical rules).",
            QuadratureWarning, stacklevel=2)
    m0, top = tensor_levels(r, fine)
    m_max = m_max or top
    m = min(m or m0, m_max)
    prev = rule(f, L, m)
    err = np.full_like(prev, np.inf)
    if r == 0:
        err = np.zeros_like(prev)
    err_prev, ok = np.full_like(prev, np.inf), r == 0
    while r and m < m_max:
        m = min(2 * m, m_max)
        cur = rule(f, L, m)
        err_prev, err = err, np.abs(cur - prev)
        prev = cur
        ok = err <= atol + rtol * np.abs(cur)
        if np.all(ok):
            break
    if report is not None and not np.all(ok) and np.all(np.isfinite(err)):
        bad = ~np.asarray(ok).reshape(prev.shape[0], -1).all(-1)
        report.add(err[bad], err_prev[bad], prev[bad],
                   f"{C.shape[-1]}-sample, m = {m}" + (f" ({name} rule)" if name else ""))
    if single:
        return Estimate(prev[0], err[0])
    return Estimate(prev, err)
