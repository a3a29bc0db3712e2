"""Factors K = L Lᵀ of covariances shared by every rule (and the generated kernels): eigen
directions of the correlation matrix, the pivoted triangular factor, the rank decision, and the
invertibility checks of the inverse-metric form."""

from __future__ import annotations

import numpy as np

from feyntk.errors import DegenerateKernelError

_EIG_TOL = 1e-13


def eigen_directions(cov: np.ndarray):
    """Factor directions of a batch of covariances (B, d, d), checked finite and PSD.

    Returns ``(w, U, keep)`` with ``cov = U diag(w) Uᵀ``: the eigen-decomposition of the
    *correlation* matrix ``D^-1/2 cov D^-1/2`` (w ascending, in [0, d]) with ``U = D^1/2 V``, and
    the mask (B, d) of directions with w above ``_EIG_TOL`` × the largest. Working with the
    correlation matrix makes the rank decision scale-invariant per variable: a variable of tiny
    variance is kept unless it is collinear with the others (dropping it by its eigenvalue
    relative to cov's largest cost ~sqrt(_EIG_TOL) relative errors for relu, whose expectations
    scale like the square root of a variance); a zero-variance variable is a zero row. Shared
    by the oracle (:func:`_whiten`) and the generated kernels' per-subset factors.
    """
    if not np.all(np.isfinite(cov)):
        raise DegenerateKernelError("covariance contains NaN or inf")
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    if np.any(diag < 0):
        raise DegenerateKernelError(
            f"covariance has a negative variance ({diag.min():.3g}); check the kernel for "
            "numerical problems")
    top = np.maximum(diag.max(-1, keepdims=True), 1e-300)
    live = diag > 1e-300 * top  # zero-variance variables: identically zero
    sd = np.where(live, np.sqrt(np.where(live, diag, 1.0)), 0.0)
    inv = np.where(live, 1.0 / np.where(live, sd, 1.0), 0.0)
    corr = cov * inv[..., :, None] * inv[..., None, :]
    w, V = np.linalg.eigh(corr)
    scale = np.maximum(np.max(np.abs(w), axis=-1, keepdims=True), 1e-300)
    if np.any(w < -1e-9 * scale):
        raise DegenerateKernelError(
            f"covariance is not positive semidefinite (smallest eigenvalue of the correlation "
            f"matrix {w.min():.3g}); check the kernel for numerical problems")
    return w, sd[..., :, None] * V, w > _EIG_TOL * scale


def triangular_directions(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pivoted triangular factor of a batch of covariances (B, d, d), checked finite and PSD.

    Returns ``(L, perm)`` with ``cov = L Lᵀ`` and ``L[b, perm[b]]`` lower triangular: direction
    j is private to variable ``perm[j]`` given the variables ``perm[:j]``, its entry there the
    conditional standard deviation. Pivoting takes the variable of largest conditional variance
    in correlation units next (scale-invariant per variable), so a variable nearly collinear
    with earlier ones comes last, where its thin direction touches no other variable. A variable
    whose conditional variance is below ``_EIG_TOL`` of its own variance (the rank decision of
    :func:`eigen_directions`) or that has zero variance gets a zero column.

    Why triangular for tensor rules (d ≥ 3): the last variable depends on the innermost
    direction only, so the generated kernels evaluate σ of that variable alone per node and
    everything else once per outer iteration (:mod:`feyntk.kernels.tables`).
    """
    eigen_directions(cov)  # checks
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    sd = np.sqrt(np.clip(diag, 0.0, None))
    live = diag > 1e-300 * np.maximum(diag.max(-1, keepdims=True), 1e-300)
    inv = np.where(live, 1.0 / np.where(live, sd, 1.0), 0.0)
    R = cov * inv[..., :, None] * inv[..., None, :]
    B, d = R.shape[0], R.shape[-1]
    C = np.zeros_like(R)
    rows = np.arange(B)
    free = np.ones((B, d), bool)
    perm = np.zeros((B, d), dtype=np.int64)
    for j in range(d):
        v = np.diagonal(R, axis1=-2, axis2=-1) - np.einsum("bik,bik->bi", C[:, :, :j], C[:, :, :j])
        v = np.where(free & live, v, -np.inf)
        # next: the free variable of largest conditional variance (zero-variance ones last)
        i = np.argmax(np.where(free, np.where(np.isfinite(v), v, -1.0), -2.0), axis=-1)
        perm[:, j] = i
        free[rows, i] = False
        vi = v[rows, i]
        ok = np.isfinite(vi) & (vi > _EIG_TOL)
        c = np.sqrt(np.where(ok, vi, 1.0))
        col = (R[rows, :, i] - np.einsum("bik,bk->bi", C[:, :, :j], C[rows, i, :j])) / c[:, None]
        col = np.where(free, col, 0.0)
        col[rows, i] = c
        C[:, :, j] = np.where(ok[:, None], col, 0.0)
    return sd[..., :, None] * C, perm


def factor(cov: np.ndarray, smooth: bool = True) -> np.ndarray:
    """The factor L (B, d, d) with cov = L Lᵀ that every quadrature rule here uses: triangular
    (:func:`triangular_directions`) for d ≥ 3, where tensor rules apply; eigen directions
    (kept ones first, ascending) for d ≤ 2 (the polar rule) and for integrands with kinks
    (``smooth=False``: the eigenbasis needs about half the nodes of the triangular one there, and
    relu's tables never reach the triangular kernels). Zero directions are zero columns."""
    if cov.shape[-1] >= 3 and smooth:
        return triangular_directions(cov)[0]
    w, U, keep = eigen_directions(cov)
    L = U * np.sqrt(np.where(keep, np.clip(w, 0.0, None), 0.0))[..., None, :]
    order = np.argsort(~keep, axis=-1, kind="stable")
    return np.take_along_axis(L, order[..., None, :], axis=-1)


def _whiten(cov: np.ndarray, smooth: bool = True) -> np.ndarray:
    """Return a (B, d, r) factor L with cov = L Lᵀ (:func:`factor`), directions that are zero
    for the whole batch dropped."""
    L = factor(cov, smooth)
    keep = np.any(L != 0, axis=(0, 1))
    return L[..., :, keep]


INVERSE_FLOOR = 1e-60
"""Smallest eigenvalue of K_S the inverse-metric form accepts: its Hermite tables hold up to
four powers of K_S⁻¹, which overflow float64 near 1e-77."""


def invertible(KS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, eigenvalues) over a batch of kernels (..., d, d): K_S is invertible for the
    inverse-metric form (eigenvalues above 1e-12 of the largest and above
    :data:`INVERSE_FLOOR`)."""
    w = np.linalg.eigvalsh(KS)
    lo = w.min(-1)
    return (lo > 1e-12 * np.maximum(w.max(-1), 1e-300)) & (lo > INVERSE_FLOOR), w


def require_invertible(KS: np.ndarray, samples) -> np.ndarray:
    """Raise :class:`DegenerateKernelError` unless K_S (d, d) of ``samples`` is
    :func:`invertible`; returns K_S⁻¹."""
    ok, w = invertible(KS)
    if not ok:
        why = ("duplicate or collinear inputs" if w.min() <= 1e-12 * max(w.max(), 1e-300) else
               f"its smallest eigenvalue {w.min():.3g} is below {INVERSE_FLOOR:g} (inputs of "
               "almost zero variance, e.g. a zero input with a tiny C_b), so the powers of K⁻¹ "
               "the form needs overflow")
        raise DegenerateKernelError(
            f"the inverse-metric form needs K restricted to samples {list(samples)} to be "
            f"invertible, but it is singular (eigenvalues {[float(f'{v:.4g}') for v in w]}): "
            f"{why}. Use form='derivative' (smooth activations) or remove those inputs.")
    return np.linalg.inv(KS)
