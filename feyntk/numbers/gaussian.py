"""Gaussian expectations ⟨f⟩_K over the preactivations of up to four samples.

Conventions: ``⟨f⟩_K = E[f(z)]`` with ``z ~ N(0, K)``, ``K`` a d×d covariance (d ≤ 4 samples).

Two methods, one result type :class:`Estimate` (value and an error estimate):

* **Quadrature** (any f): K = L Lᵀ is factorised (:func:`factor`: a pivoted triangular factor
  for d ≥ 3, eigen directions for d ≤ 2), directions with zero variance are dropped (so
  duplicate inputs, zero-norm inputs and rank-deficient Gram matrices give the correct limit,
  never NaN), and a tensor-product Gauss–Hermite rule is applied: m points along the widest
  direction, fewer along narrower ones (∝ the column norm, :func:`node_counts`), nodes of
  negligible weight pruned (:data:`PRUNE`); 2-d integrals use a polar rule, and 3- and 4-d
  integrands whose kinks all sit at z_a = 0 (the relu family) a conical rule, its
  generalisation (:func:`conical_nodes`). The rule is refined (m → 2m) until two successive
  results agree to ``atol + rtol·|value|``; the error estimate is their difference. Smooth
  integrands converge exponentially, and so do kinked ones on the polar and conical rules;
  Gauss–Hermite on a kinked integrand converges only algebraically (and can look converged
  while wrong by ~1e-3), so it is the fallback only for kinks elsewhere or a factor too
  ill-conditioned to invert.
* **Closed forms** for pairs of σ-derivatives: linear; the ReLU/leaky-ReLU arc-cosine family;
  erf (Williams' arcsine kernel). Exact up to rounding (error reported as 0).

:func:`pair_table` evaluates ``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]`` for all pairs (a, b) of N
samples at once: the workhorse of the infinite-width kernels.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import warnings
from dataclasses import dataclass
from typing import Callable

import mpmath as mp
import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import roots_hermitenorm

from feyntk.errors import DegenerateKernelError, QuadratureWarning
from feyntk.numbers.pairs import mehler_pairs
from feyntk.spec.activation import Activation, with_derivatives

RTOL = 1e-12
"""Default relative tolerance of the adaptive quadrature."""
ATOL = 1e-14
M_START = 48
M_MAX = 768
_EIG_TOL = 1e-13
PRUNE = 1e-20
"""Tensor-product rules drop nodes whose weight is below PRUNE × the largest node weight: the
Gaussian tails (~6x fewer nodes at 48⁴, changing ⟨f⟩ by < 3e-13 relative even for f ~ e^{|u|₁})."""


@dataclass(frozen=True)
class Estimate:
    """A numerical value with an estimate of its absolute integration error (same shape)."""

    value: np.ndarray
    error: np.ndarray


POLAR_LEVELS = (8, 128)
"""First and largest m of the polar rule (2-d integrals)."""


def tensor_levels(r: int, fine: bool = False) -> tuple[int, int]:
    """First and largest m per direction of the tensor rule for a rank-r Gaussian.

    The caps (48 nodes per direction in 4-d, 128 in 3-d) bound the cost of the C(N, 4) and
    C(N, 3) many-sample integrals; ``fine`` doubles them for r ≥ 3 (16× / 8× the nodes at the
    last level) for when :class:`QuadratureReport` flags integrals that stopped unconverged.
    """
    m_max = M_MAX if r <= 1 else 384 if r == 2 else 128 if r == 3 else 48
    if fine and r >= 3:
        m_max *= 2
    return min(M_START if r <= 2 else 32 if r == 3 else 12, m_max), m_max


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


CONE_LEVELS = {3: (12, 24), 4: (6, 12)}
"""First and largest angular m per simplex direction of the conical rule, by dimension."""
CONE_SPLIT = 0.0
"""Cones are bisected until the cosine between any two generators is at least this."""
CONE_MAX = 4096
"""Most cones per covariance; more means inputs too nearly collinear (an error, see below)."""
CONE_COND = 1e7
"""The conical rule needs the factor L inverted; above this condition number it is not used."""


def kink_planes(L: np.ndarray) -> list[int]:
    """Rows of a factor L (d, r) that define distinct planes z_a = (L u)_a = 0 in whitened
    space: zero rows (deterministic z_a) define none, proportional rows (duplicate inputs) one."""
    norms = np.linalg.norm(L, axis=1)
    out: list[int] = []
    for a in np.argsort(-norms, kind="stable"):
        if norms[a] <= 1e-150 * max(norms.max(), 1e-300):
            continue
        n = L[a] / norms[a]
        if all(abs(n @ L[b]) / norms[b] < 1 - 1e-12 for b in out):
            out.append(int(a))
    return sorted(out)


def _base_planes(L: np.ndarray) -> tuple[list[int], list[int], float]:
    """Split the kink planes of a factor L (d, r) into r base rows, the best-conditioned choice
    (their orthants make the first cones), and the extra rows that cut those cones; with the
    condition number of the base (inf if fewer than r planes)."""
    rows, r = kink_planes(L), L.shape[-1]
    best, cond = rows[:r], np.inf
    if len(rows) >= r:
        unit = L / np.maximum(np.linalg.norm(L, axis=1, keepdims=True), 1e-300)
        for base in itertools.combinations(rows, r):
            sv = np.linalg.svd(unit[list(base)], compute_uv=False)
            c = sv[0] / sv[-1] if sv[-1] > 0 else np.inf
            if c < cond:
                best, cond = list(base), c
    return best, [a for a in rows if a not in best], cond


def cone_simplices(L: np.ndarray) -> list[np.ndarray]:
    """Partition of whitened space into simplicial cones on which no z_a = (L u)_a changes sign.

    For a factor L (d, r) with base rows L_P (:func:`_base_planes`; all rows unless inputs
    repeat or are collinear), the orthant with signs s of z_P is the cone generated by the
    columns s_a (L_P⁻¹)_{·a}. A cone is split at an edge until it is done, each split an exact
    partition (the edge's point p replaces either end): an edge crossing an extra plane
    n·u = 0 (collinear inputs, e.g. x₃ = x₁ + x₂) is split where it crosses, then an edge wider
    than a right angle at its normalised midpoint, until every pair of generators is at most 90°
    apart, which keeps the quadrature on each cone smooth (:func:`conical_nodes`). Returns the
    unit generators of each cone as the columns of an (r, r) matrix.
    """
    base, extra = _base_planes(L)[:2]
    M = np.linalg.inv(L[base])
    normals = L[extra] / np.linalg.norm(L[extra], axis=1, keepdims=True)
    d = M.shape[0]
    out = []
    for signs in itertools.product((1.0, -1.0), repeat=d):
        C = M * np.asarray(signs)
        todo = [C / np.linalg.norm(C, axis=0)]
        while todo:
            V = todo.pop()
            split = None
            for n in normals:  # a plane crossing the cone: split where an edge crosses it
                s = n @ V
                i, j = int(np.argmax(s)), int(np.argmin(s))
                if s[i] > 1e-12 and s[j] < -1e-12:
                    split = (i, j, s[i] * V[:, j] - s[j] * V[:, i])
                    break
            if split is None:
                G = V.T @ V
                i, j = np.unravel_index(np.argmin(G), G.shape)
                if G[i, j] >= CONE_SPLIT - 1e-12:
                    out.append(V)
                    continue
                split = (i, j, V[:, i] + V[:, j])
            if len(out) + len(todo) >= CONE_MAX:
                raise DegenerateKernelError(
                    f"the conical rule needed more than {CONE_MAX} cones for a kinked "
                    "activation's integral: the inputs are too nearly collinear. Remove "
                    "near-duplicate inputs")
            i, j, mid = split
            mid = mid / np.linalg.norm(mid)
            for k in (i, j):
                W = V.copy()
                W[:, k] = mid
                todo.append(W)
    return out


@functools.lru_cache(maxsize=16)
def _simplex_rule(k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric nodes (k + 1, P) and weights (P,) on the standard k-simplex (measure in the
    first k coordinates, total 1/k!): Gauss–Legendre on [0, 1]^k collapsed by Duffy's map."""
    x, w = legendre_rule(m)
    x, w = (x + 1) / 2, w / 2
    grids = np.meshgrid(*([x] * k), indexing="ij")
    wts = np.prod(np.meshgrid(*([w] * k), indexing="ij"), axis=0).ravel()
    lam, rest = [], np.ones(m ** k)
    for j in range(k):
        xi = grids[j].ravel()
        lam.append(rest * xi)
        rest = rest * (1 - xi)
    lam.append(rest)
    jac = np.ones(m ** k)
    for j in range(k - 1):
        jac = jac * (1 - grids[j].ravel()) ** (k - 1 - j)
    out = np.stack(lam), wts * jac
    for a in out:
        a.flags.writeable = False
    return out


CONE_CHUNK = 1 << 18
"""Nodes per row evaluated at once by the conical rule (bounds its memory)."""


def conical_nodes(L: np.ndarray, m: int, cones: list | None = None):
    """Nodes z (B, d, P) and weights (B, P) of the conical rule for factors L (B, d, r) of
    :func:`conical_applies`, yielded in chunks of about :data:`CONE_CHUNK` nodes per row.

    The d-dimensional generalisation of the polar rule (:func:`polar_nodes`): each cone of
    :func:`cone_simplices` is parametrised as u = t·x/|x| with x = Vλ on the flat simplex of its
    unit generators V and t > 0, so that ``du = |det V| t^{r-1} |x|^{-r} dt dλ``; λ takes the
    collapsed Gauss–Legendre rule with m points per direction (:func:`_simplex_rule`), t the
    half-range rule of weight ``t^{r-1} e^{-t²/2}`` with max(m/2, 5) points (exact to degree 9,
    which covers the relu family's pieces: four σ factors times Hermite polynomials of degree
    ≤ 4). An integrand whose
    kinks and jumps sit on the planes z_a = 0 (the relu family, its derivatives, the deltas'
    conditional integrals) is smooth on every cone, so the rule converges exponentially where
    Gauss–Hermite converges algebraically. Rows with fewer cones are padded with zero weights.
    ``cones``: :func:`cone_simplices` of each row, if already known.
    """
    B, d, rank = L.shape
    lam, wl = _simplex_rule(rank - 1, m)
    t, wt = halfrange_rule(max(m // 2, 5), rank - 1)
    cones = cones or [np.stack(cone_simplices(L[b])) for b in range(B)]  # (S_b, d, d)
    S = max(len(c) for c in cones)
    V = np.stack([np.concatenate([c, np.repeat(c[:1], S - len(c), axis=0)]) for c in cones])
    live = np.arange(S)[None, :] < np.array([len(c) for c in cones])[:, None]  # (B, S)
    det = np.abs(np.linalg.det(V)) * live * (2 * np.pi) ** (-rank / 2)
    per = lam.shape[1] * len(t)
    step = max(1, CONE_CHUNK // per)
    for lo in range(0, S, step):
        x = np.einsum("bkij,jp->bkip", V[:, lo:lo + step], lam)  # (B, k, d, Pa)
        r = np.sqrt(np.einsum("bkip,bkip->bkp", x, x))
        zdir = np.ascontiguousarray(np.einsum("bij,bkjp->bikp", L, x / r[:, :, None, :]))
        z = (zdir[..., None] * t).reshape(B, d, -1)  # (B, d, k·Pa·T), contiguous
        w = (det[:, lo:lo + step, None] * wl / r ** rank)[..., None] * wt
        yield z, w.reshape(B, -1)


def _conical_apply(f: Callable, L: np.ndarray, m: int, cones: list | None = None) -> np.ndarray:
    """The conical rule (:func:`conical_nodes`) applied to f, chunk by chunk."""
    out = 0.0
    for z, weights in conical_nodes(L, m, cones):
        out = out + np.einsum("b...p,bp->b...", np.asarray(f(z), dtype=float), weights)
    return out


def kinks_at_origin(kinks, shift) -> bool:
    """Kinks all at 0 and not shifted: they lie on the planes z_a = 0 through the origin, where
    the polar and conical rules cut."""
    return (bool(kinks) and all(c == 0 for c in kinks)
            and (shift is None or not np.any(np.asarray(shift) != 0)))


def conical_applies(L: np.ndarray, kinks, shift) -> bool:
    """Whether :func:`expect` uses the conical rule: a factor L (B, d, r) of rank r = 3 or 4
    whose kink planes include r well-conditioned ones (:func:`_base_planes`, condition below
    :data:`CONE_COND`; further planes cut the cones), all kinks at 0 and no shift of them."""
    r = L.shape[-1]
    if r not in CONE_LEVELS or not kinks_at_origin(kinks, shift):
        return False
    return all(_base_planes(Lb)[2] < CONE_COND for Lb in L)


def polar_applies(L: np.ndarray, kinks, shift) -> bool:
    """Whether :func:`expect` uses the polar rule for d > 2 variables of rank 2 (repeated or
    collinear inputs): kinks all at 0 and unshifted, so that they lie on lines through 0."""
    return L.shape[-1] == 2 and kinks_at_origin(kinks, shift)


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


def prune_cuts(wmax: np.ndarray) -> np.ndarray:
    """Pruning thresholds of a tensor rule whose directions have largest weights ``wmax``:
    a partial product w_0⋯w_j below ``cut[j]`` cannot reach PRUNE × the largest node weight
    (its subtree is skipped). Shared by :func:`_tensor_rule` and the generated kernels."""
    wmax = np.asarray(wmax, dtype=float)
    rest = np.concatenate([np.cumprod(wmax[::-1])[::-1][1:], [1.0]])  # Π_{k>j} wmax[k]
    return PRUNE * wmax.prod() / rest


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
        fine: larger default caps for 3- and 4-sample integrals (:func:`tensor_levels`).
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
    rule = _apply_rule
    if 1 <= r <= 2 and C.shape[-1] == 2:  # polar rule: best for all 2-d integrals
        rule, m, m_max = _polar_apply, m or POLAR_LEVELS[0], m_max or POLAR_LEVELS[1]
    if C.shape[-1] > 2 and polar_applies(L, kinks, shift):  # kinks at 0 on a plane
        rule, m, m_max = _polar_apply, m or POLAR_LEVELS[0], m_max or POLAR_LEVELS[1]
    if r >= 3 and conical_applies(L, kinks, shift):  # kinks at 0: the conical rule
        cones = [np.stack(cone_simplices(Lb)) for Lb in L]  # once for all levels
        rule = lambda f_, L_, m_: _conical_apply(f_, L_, m_, cones)  # noqa: E731
        m, m_max = m or CONE_LEVELS[r][0], m_max or CONE_LEVELS[r][1]
    if r == 1 and kinks:
        sh = None if shift is None else np.asarray(shift, dtype=float).reshape(1, -1)
        rule = lambda f_, L_, m_: _piecewise_apply(f_, L_, m_, tuple(kinks), sh)  # noqa: E731
        m, m_max = m or 16, m_max or 128
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
        report.add(err[bad], err_prev[bad], prev[bad], f"{C.shape[-1]}-sample, m = {m}")
    if single:
        return Estimate(prev[0], err[0])
    return Estimate(prev, err)


# -- pairs of σ-derivatives ----------------------------------------------------------------
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


def check_kinks_at_zero_variance(act: Activation, ks: tuple[int, ...], K: np.ndarray,
                                 labels) -> None:
    """A deterministic z = 0 sitting exactly on a jump of σ^{(k)} has no defined value."""
    zero = np.nonzero(np.diag(K) <= 1e-300)[0]
    if not len(zero):
        return
    for k in ks:
        # σ^{(k)} is undefined at 0 if it holds a delta there or jumps there (then σ^{(k+1)}
        # holds an order-0 delta at 0)
        dist = with_derivatives(act, "distributional")  # a jump stays a jump when σ'' = 0
        here = [t for t in dist.derivative(k).deltas if t.point == 0.0] + [
            t for t in dist.derivative(k + 1).deltas if t.point == 0.0 and t.order == 0]
        if here:
            names = [labels[i] if labels is not None else int(i) for i in zero]
            raise DegenerateKernelError(
                f"inputs {names} have zero preactivation variance (K_aa = 0, e.g. a zero input "
                f"with C_b = 0), so z sits exactly on the kink of {act.name!r} at 0 and "
                f"σ^({k})(0) is undefined. Remove or perturb these inputs, or use C_b > 0.")


def pair_table(act: Activation, K, k1: int = 0, k2: int | None = None, *,
               method: str = "auto", rtol: float = RTOL, labels=None) -> Estimate:
    """``E[σ^{(k1)}(z_a) σ^{(k2)}(z_b)]_K`` for all a, b as an (N, N) table.

    Only the regular part of each derivative is integrated (for relu, σ' = step); callers
    that need delta contributions must integrate them separately.

    Args:
        act: the activation.
        K: (N, N) covariance of the preactivations.
        k1, k2: derivative orders (k2 defaults to k1); for k1 ≠ k2 every ordered pair is
            integrated (the table is not symmetric).
        method: ``"auto"`` (closed form when one exists, else quadrature), ``"closed"``,
            ``"quadrature"`` (smooth σ: Mehler's expansion, :mod:`feyntk.numbers.pairs`, with
            the polar rule for the pairs it does not resolve; kinked σ: the polar rule) or
            ``"polar"`` (the 2-d polar rule of :func:`expect` for every pair: the oracle).
        labels: names of the samples for error messages (default: their indices).
    """
    k2 = k1 if k2 is None else k2
    K = np.asarray(K, dtype=float)
    N = K.shape[0]
    check_kinks_at_zero_variance(act, (k1, k2), K, labels)
    # pairs (a ≤ b) of a symmetric table, every ordered pair (a, b) of an asymmetric one
    iu = np.triu_indices(N) if k1 == k2 else tuple(np.indices((N, N)).reshape(2, -1))
    Kaa, Kbb, Kab = K[iu[0], iu[0]], K[iu[1], iu[1]], K[iu]
    value = err = None
    if method in ("auto", "closed"):
        value = _closed_pair(act, k1, k2, Kaa, Kbb, Kab)
        if value is not None:
            err = np.zeros_like(value)
        elif method == "closed":
            raise NotImplementedError(
                f"no closed form for E[σ^({k1}) σ^({k2})] of {act.name!r}")
    if value is None:
        f1, f2 = act.numpy(k1), act.numpy(k2)
        cov = np.stack([np.stack([Kaa, Kab], -1), np.stack([Kab, Kbb], -1)], -2)
        eigen_directions(cov)  # the refusals of expect (finite, PSD) for every pair
        todo = np.ones(len(Kab), bool)
        value, err = np.empty(len(Kab)), np.empty(len(Kab))
        if method != "polar" and act.is_smooth:  # Mehler's expansion, all pairs at once
            v, e, ok = mehler_pairs(f1, f2, np.diagonal(K), iu[0], iu[1], Kab, same=k1 == k2)
            value[ok], err[ok], todo = v[ok], e[ok], ~ok

        def integrand(z):
            with np.errstate(over="ignore", under="ignore"):
                return f1(z[:, 0]) * f2(z[:, 1])

        if np.any(todo):  # the 2-d polar rule (kinked σ, or samples Mehler did not resolve)
            est = expect(integrand, cov[todo], rtol=rtol, kinks=act.kinks)
            value[todo], err[todo] = est.value, est.error
    V = np.empty((N, N))
    E = np.empty((N, N))
    V[iu] = value
    E[iu] = err
    if k1 == k2:
        V[iu[1], iu[0]] = value
        E[iu[1], iu[0]] = err
    if not np.all(np.isfinite(V)):
        raise DegenerateKernelError(
            f"Gaussian expectation of {act.name!r} is not finite for this kernel "
            f"(max |K| = {np.abs(K).max():.3g}); the activation may grow too fast")
    return Estimate(V, E)
