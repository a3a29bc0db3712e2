"""Two-sample tables ``E[f(z_a) g(z_b)]`` for all pairs of N samples by Mehler's expansion.

For z ~ N(0, K) with ``s_a = sqrt(K_aa)`` and the correlation ``ρ_ab = K_ab / (s_a s_b)``,
Mehler's formula (the bivariate normal density expanded in Hermite polynomials) gives

    E[f(z_a) g(z_b)] = Σ_k  c_k(f, s_a) · c_k(g, s_b) · ρ_ab^k,
    c_k(f, s) = E[f(s u) h_k(u)],   h_k = He_k / sqrt(k!)  (orthonormal, u ~ N(0, 1)).

The coefficients are one-dimensional and per *sample* (N of them per function), the pair sum
is a polynomial in ρ per *pair*: a layer's whole table costs ``O(N·m²)`` for the coefficients
(m Gauss–Hermite nodes, a matrix product) plus ``O(N²·n)`` for the sums (n + 1 terms, Horner
over all pairs at once), instead of thousands of 2-d nodes per pair.

Accuracy, per sample (:func:`coefficients`): the m-node Gauss–Hermite rule is a discrete
orthogonal transform (nodes x_i, ``Q[k, i] = sqrt(w_i) h_k(x_i)``, Q orthogonal), so the
discrete coefficients ``c = Q (sqrt(w) ∘ f(s x))`` carry all of Σ w_i f(s x_i)² (Parseval). A
sample keeps its coefficients up to the last one above :data:`NOISE` (1e-15) of ``sqrt(E[f²])``
(n_a) and is *resolved* at level m when n_a < m/2: the upper half of the spectrum is rounding, f
is represented far below m and the rule is exact to rounding for the coefficients kept; else m
doubles, up to :data:`LEVELS`' last. The error estimate of a pair (:func:`mehler_pairs`): each
coefficient's absolute error (:data:`COEF_ERR` of sqrt(E[f²]), which covers the dropped ones)
times the other sample's Σ_k |c_k| |ρ|^k, the rounding of the sum, and by Cauchy–Schwarz
``|ρ|^{n+1} sqrt(T_a T_b)`` for the terms beyond the table's n (T: tail energies). Pairs whose
estimate exceeds 1e-12 of their value (cancelling sums) or whose samples are not resolved go
to the polar rule.

Analytic activations whose singularities lie at a distance δ from the real axis have
coefficients falling like ``exp(-δ·sqrt(k)/s)``, so n grows like the variance: tanh needs
n ≈ 270 (m = 1024) at K_aa = 1, ≈ 900 (m = 2048) at K_aa = 4; gelu, softplus, swish, sin
far fewer. Samples not
resolved at the last level (large variances of tanh or erf, steep softplus_β, kinked or
too fast growing functions) are reported back; the caller integrates their pairs with the
2-d polar rule (:func:`feyntk.numbers.gaussian.expect`).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.special import roots_hermitenorm

LEVELS = (128, 256, 512, 1024, 2048)
"""Gauss–Hermite node counts m tried per sample, in order."""
NOISE = 1e-15
"""Resolution: the top quarter of a sample's discrete spectrum is below NOISE·sqrt(E[f(s u)²]);
the rounding floor of the transform is 1-2.5e-16 of it (measured, m = 128-2048)."""
AMP = 1e-8
"""The table's truncation n: past it every coefficient is below AMP of its sample's scale."""
COEF_ERR = 16 * np.finfo(float).eps
"""Absolute error of a coefficient relative to sqrt(E[f²]) (rounding, the orthogonality of Q to
~3e-15, and the coefficients below NOISE that a sample's truncation drops)."""
PAIR_RTOL = 1e-12
PAIR_ATOL = 1e-16
"""A pair is accepted when its error estimate is below PAIR_RTOL·|value| + PAIR_ATOL·
sqrt(E[f(z_a)²] E[g(z_b)²]); others (cancelling sums, e.g. sin at ρ ≈ -1 and large variances,
where the value is e^{-2K} of the terms) go to the polar rule."""


@functools.lru_cache(maxsize=8)
def hermite_basis(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes x (m,) of the m-point Gauss–Hermite rule (weight N(0, 1)) and the orthogonal matrix
    ``Q[k, i] = sqrt(w_i) h_k(x_i)`` (m, m), read-only.

    Q is built by the three-term recurrence of the orthonormal polynomials h_k from h_0 = 1 with
    a per-node scale exponent (h_k(x_i) exceeds 1e300 at the outer nodes), each column then
    normalised to unit length (``Σ_k h_k(x_i)² = 1/w_i``, Christoffel), so weights that
    underflow in float64 cause no loss of orthogonality; ``Q[0]² = w``.
    """
    x, _ = roots_hermitenorm(m)
    for _ in range(2):  # Newton on h_m (scipy's nodes are good to ~1e-14 absolute)
        a, b = np.ones(m), x.copy()
        for k in range(1, m):
            a, b = b, (x * b - np.sqrt(k) * a) / np.sqrt(k + 1)
            big = np.abs(b) > 1e100
            a, b = np.where(big, a * 1e-100, a), np.where(big, b * 1e-100, b)
        x = x - b / (np.sqrt(m) * a)  # h_m' = sqrt(m) h_{m-1}
    H = np.empty((m, m))
    LG = np.zeros((m, m))
    a, b, lg = np.ones(m), x.copy(), np.zeros(m)
    H[0], H[1] = a, b
    for k in range(1, m - 1):
        a, b = b, (x * b - np.sqrt(k) * a) / np.sqrt(k + 1)
        big = np.abs(b) > 1e100
        if big.any():
            a, b = np.where(big, a * 1e-100, a), np.where(big, b * 1e-100, b)
            lg = lg + big * (100 * np.log(10.0))
        H[k + 1], LG[k + 1] = b, lg
    with np.errstate(under="ignore"):
        Q = H * np.exp(LG - LG.max(0))
    Q /= np.sqrt(np.einsum("ki,ki->i", Q, Q))
    x.flags.writeable = Q.flags.writeable = False
    return x, Q


@functools.lru_cache(maxsize=8)
def _basis_parts(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, sqrt(w) and Qᵀ (contiguous) of :func:`hermite_basis`."""
    x, Q = hermite_basis(m)
    sw, QT = Q[0].copy(), np.ascontiguousarray(Q.T)
    sw.flags.writeable = QT.flags.writeable = False
    return x, sw, QT


def coefficients(f, s: np.ndarray, levels=LEVELS):
    """Hermite coefficients ``c_k = E[f(s u) h_k(u)]`` of f at each scale s (S,).

    Level by level (:data:`LEVELS`), a sample is resolved at m when the top quarter of its
    m-point discrete spectrum is below :data:`NOISE` of ``sqrt(E[f²])`` (the aliasing error
    of the coefficients k < 3m/4 is then below it too); it keeps those coefficients.

    Returns ``(rows, n)``: ``rows[a]`` the kept coefficients of sample a (None if not resolved
    at the last level, or f not finite at its nodes), ``n[a]`` the last of them above
    :data:`AMP` of ``sqrt(E[f²])`` (−1 if not resolved).
    """
    s = np.asarray(s, dtype=float)
    S = s.shape[0]
    rows: list[np.ndarray | None] = [None] * S
    n_amp = np.full(S, -1)
    todo = np.arange(S)
    for m in levels:
        if not len(todo):
            break
        x, sw, QT = _basis_parts(m)
        with np.errstate(all="ignore"):
            F = np.asarray(f(s[todo, None] * x[None, :]), dtype=float)
        F = np.broadcast_to(F, (len(todo), m))
        finite = np.all(np.isfinite(F), axis=1)
        F = np.where(finite[:, None], F, 0.0) * sw
        C = F @ QT  # (T, m): row j holds c_k of sample todo[j], k = 0..m-1
        rms = np.sqrt(np.einsum("tk,tk->t", C, C))
        keep = (3 * m) // 4
        ok = finite & (np.abs(C[:, keep:]).max(axis=1) <= NOISE * rms)
        big = np.abs(C[:, :keep]) > AMP * rms[:, None]
        last = np.where(big.any(axis=1), keep - 1 - np.argmax(big[:, ::-1], axis=1), 0)
        for j in np.nonzero(ok)[0]:
            rows[int(todo[j])] = C[j, :keep]
            n_amp[todo[j]] = last[j]
        todo = todo[~ok]
    return rows, n_amp


def _assemble(rows, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (S, n + 1) of the resolved samples (zeros past a sample's kept ones and for
    unresolved samples) and the tail energies Σ_{k > n} c_k² (S,) of what is left out."""
    S = len(rows)
    C, tail = np.zeros((S, n + 1)), np.zeros(S)
    for a, c in enumerate(rows):
        if c is not None:
            C[a, : min(len(c), n + 1)] = c[: n + 1]
            tail[a] = float(np.sum(c[n + 1:] ** 2))
    return C, tail


def mehler_pairs(f, g, variances: np.ndarray, ia: np.ndarray, ib: np.ndarray,
                 Kab: np.ndarray, same: bool = False):
    """``E[f(z_a) g(z_b)]`` for the pairs (ia[p], ib[p]) of samples with ``variances`` (N,) and
    covariances ``Kab`` (P,) (checked PSD by the caller).

    Returns ``(value, error, ok)`` (P,): pairs with ``ok`` False involve a sample whose
    coefficients are not resolved (:func:`coefficients`); their value and error are NaN.
    ``same``: g is f (its coefficients are reused).
    """
    var = np.asarray(variances, dtype=float)
    s = np.sqrt(np.clip(var, 0.0, None))
    rf, nf = coefficients(f, s)
    rg, ng = (rf, nf) if same else coefficients(g, s)
    # one truncation n for the table: past it every sample's coefficients (of f and of g) are
    # below AMP of their scale, so every dropped product is below AMP² of the pair's
    n = int(max(nf.max(), ng.max(), 0))
    Cf, Tf = _assemble(rf, n)
    Cg, Tg = (Cf, Tf) if same else _assemble(rg, n)
    okf, okg = nf >= 0, ng >= 0
    ok = okf[ia] & okg[ib]
    Ef = np.array([0.0 if c is None else float(c @ c) for c in rf])  # E[f(s_a u)²]
    Eg = Ef if same else np.array([0.0 if c is None else float(c @ c) for c in rg])
    norm = s[ia] * s[ib]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(norm > 0, Kab / np.where(norm > 0, norm, 1.0), 0.0)
    rho = np.clip(rho, -1.0, 1.0)
    arho = np.abs(rho)
    CfT, CgT = np.ascontiguousarray(Cf.T), np.ascontiguousarray(Cg.T)
    P = len(ia)
    value, size, Bf, Bg = np.zeros(P), np.zeros(P), np.zeros(P), np.zeros(P)
    for k in range(n, -1, -1):  # Horner in ρ over all pairs at once
        cf, cg = CfT[k][ia], CgT[k][ib]
        term = cf * cg
        value = value * rho + term
        size = size * arho + np.abs(term)
        Bf = Bf * arho + np.abs(cf)
        Bg = Bg * arho + np.abs(cg)
    with np.errstate(under="ignore"):
        trunc = arho ** (n + 1) * np.sqrt(Tf[ia] * Tg[ib])
    eps = np.finfo(float).eps
    # truncation (Cauchy–Schwarz), rounding of the sum, and each coefficient's absolute error
    # (~COEF_ERR·sqrt(E[f²]), the accuracy of the transform) times the other's Σ|c_k||ρ|^k
    error = (trunc + 2 * np.sqrt(n + 2) * eps * size
             + COEF_ERR * (np.sqrt(Ef[ia]) * Bg + np.sqrt(Eg[ib]) * Bf))
    # cancellation (an alternating sum far below its terms) or a tiny value: the polar rule
    ok &= error <= PAIR_RTOL * np.abs(value) + PAIR_ATOL * np.sqrt(Ef[ia] * Eg[ib])
    value = np.where(ok, value, np.nan)
    error = np.where(ok, error, np.nan)
    return value, error, ok
