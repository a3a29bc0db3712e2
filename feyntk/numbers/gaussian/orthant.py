"""Orthant probabilities and orthant moments of centred Gaussians in closed form (the relu
family's Gaussian integrals, :mod:`.relu`), for a batch of covariances at once.

Conventions: ``z = L u`` with ``u ~ N(0, I)`` and a factor L (B, d, r) (``K = L Lᵀ``; rank-
deficient K allowed). Variable a is the vector ``L_a``; conditioning on ``z_J = 0`` restricts
u to the orthogonal complement of ``span{L_j : j ∈ J}``, so the conditional variables are the
projected vectors ``v_a`` (the conditional Gaussian of ``z`` given ``z_J = 0`` is centred with
covariance ``v_a·v_b``). Working with projected vectors (not Schur complements) keeps
conditional variances accurate to rounding of the vectors, so a variable determined by the
conditioned ones (collinear inputs) is recognised by ``|v_a| ≤ DEGENERATE |L_a|``.

Orthant probabilities ``P_m = P(z_t > 0, t ∈ T)``, m = |T|, with φ_st the angle between v_s
and v_t (computed as ``2 atan2(|w_s − w_t|, |w_s + w_t|)`` of unit vectors, accurate also at
ρ = ±1, where ``arccos ρ`` loses half the digits):

    P_0 = 1,   P_1 = 1/2,   P_2 = 1/2 − φ_12/(2π) = (π − φ_12)/(2π)      (Sheppard)
    P_3 = 1/2 − (φ_12 + φ_13 + φ_23)/(4π)                                (spherical excess)
    P_4 = 1/16 + Σ_{i<j} ρ_ij ∫_0^1 φ_2(0, 0; tρ_ij) P_2(ρ_kl·ij(t)) dt   (Plackett)

For P_4 (no closed form) Plackett's identity ``∂P/∂ρ_ij = φ_2(0, 0; ρ_ij) P(z_k > 0, z_l > 0 |
z_i = z_j = 0)`` is integrated along ``R(t) = (1 − t) I + t R`` from the identity (P = 1/16)
to the correlation matrix R; ``φ_2(0, 0; r) = 1/(2π√(1 − r²))`` and the conditional pair is
centred with the partial correlation ρ_kl·ij of R(t). R(t) is positive definite for t < 1; the
integrand's singularities lie at real t = 1/(1 − λ) for eigenvalues λ of principal submatrices
of R, i.e. at t ≤ −1/3 or just beyond t = 1 (at t = 1 itself for singular R: collinear inputs,
where it behaves like √(1 − t) or 1/√(1 − t)). The substitution t = 1 − s² makes those endpoint
singularities analytic in s, and a composite Gauss–Legendre rule on panels graded
geometrically towards s = 0 (:data:`PLACKETT_PANELS`) resolves near-singular R to rounding.

Orthant moments ``M(J, T, α) = E[z^α Π_{t∈T} 1{z_t > 0} | z_J = 0]`` by Gaussian integration
by parts (Stein), ``E[z_i g(z)] = Σ_j C_ij E[∂_j g(z)]``, with the distributional derivative of
the indicators, ``∂_j 1{z_j > 0} = δ(z_j)``, and ``E[δ(z_j) h(z)] = E[h | z_j = 0]/√(2π C_jj)``:

    M(J, T, α) = Σ_j C_ij (α − e_i)_j M(J, T, α − e_i − e_j)
               + Σ_{j ∈ T, (α − e_i)_j = 0} (C_ij/√(2π C_jj)) M(J ∪ {j}, T ∖ {j}, α − e_i)

(C the conditional covariance given z_J = 0, i any variable with α_i > 0; a factor z_j of
g vanishes on z_j = 0). Each step lowers the degree or the dimension, ending in orthant
probabilities. A variable with zero conditional variance is identically 0: a moment with a
positive power of it vanishes; its indicator is undefined (the value would depend on how the
covariance was approached), and such rows are returned as ``bad`` for the caller to integrate
another way (the oracle's quadrature, which splits cones at the extra kink planes).
"""

from __future__ import annotations

import functools

import numpy as np

from feyntk.numbers.gaussian.gauss1d import legendre_rule

DEGENERATE = 1e-7
"""A variable whose conditional standard deviation is below this fraction of its own is taken
as determined by the conditioned ones (the oracle's rank decision, eigenvalues of the
correlation matrix below 1e-13, in units of a standard deviation)."""

PLACKETT_PANELS = (40, 16)
"""Panels (s ∈ [2^-k-1, 2^-k], k < 40, and [0, 2^-40]) and Gauss–Legendre nodes per panel of
the Plackett integral for P_4."""


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle between unit vectors a, b (..., r): ``2 atan2(|a − b|, |a + b|)``, accurate at 0
    and π (where ``arccos(a·b)`` has an infinite slope)."""
    return 2.0 * np.arctan2(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))


@functools.lru_cache(maxsize=4)
def plackett_nodes(panels: int = PLACKETT_PANELS[0], m: int = PLACKETT_PANELS[1]):
    """Nodes t, weights of ∫_0^1 dt = ∫_0^1 2s ds (t = 1 − s²) on panels graded towards
    s = 0: [0, 2^-panels], …, [1/4, 1/2], [1/2, 1], and 1 − t = s² (kept exactly: t itself
    rounds to 1 for s < 1e-8). Read-only arrays."""
    x, w = legendre_rule(m)
    edges = np.concatenate([[0.0], 2.0 ** -np.arange(panels, -1, -1)])
    lo, hi = edges[:-1, None], edges[1:, None]
    s = (lo + (hi - lo) * (x + 1) / 2).ravel()
    ws = ((hi - lo) / 2 * w).ravel()
    t, wt, s2 = 1.0 - s * s, 2.0 * s * ws, s * s
    t.flags.writeable = wt.flags.writeable = s2.flags.writeable = False
    return t, wt, s2


PAIRS4 = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2), (1, 2, 0, 3), (1, 3, 0, 2), (2, 3, 0, 1))
"""The six pairs (i, j) of four variables with their complements (k, l)."""


def orthant4(R: np.ndarray, nodes=None) -> np.ndarray:
    """P(z > 0) for four centred variables of correlation matrix R (B, 4, 4) by Plackett's
    integral (module docstring); singular R allowed, duplicates (ρ_ij = ±1) included.

    The conditional covariance of (z_k, z_l) given z_i = z_j = 0 along R(t) is evaluated in
    the forms free of cancellation at ρ_ij(t) → 1: ``1 − ρ t = (1 − ρ) + ρ s²`` and
    ``a_i² − 2r a_i a_j + a_j² = (a_i − a_j)² + 2(1 − r) a_i a_j`` (and its cross analogue),
    so a duplicate pair still has q = 1 − r² > 0 at every node."""
    t, wt, s2 = plackett_nodes() if nodes is None else nodes
    R = np.clip(R, -1.0, 1.0)  # |ρ| ≤ 1 exactly: 1 − ρ t must stay ≥ 0 at t → 1
    total = np.full(R.shape[0], 1.0 / 16.0)
    for i, j, k, l in PAIRS4:
        r0 = R[:, i, j][:, None]
        r = r0 * t
        aki, akj = R[:, k, i][:, None] * t, R[:, k, j][:, None] * t
        ali, alj = R[:, l, i][:, None] * t, R[:, l, j][:, None] * t
        c = R[:, k, l][:, None] * t
        om = (1.0 - r0) + r0 * s2  # 1 − r, accurate at r → 1
        op = (1.0 + r0) - r0 * s2  # 1 + r, accurate at r → −1
        q = om * op  # > 0 at every node: s² > 0 and |ρ| ≤ 1
        dk, dl = aki - akj, ali - alj
        sk, sl = aki + akj, ali + alj
        # numerators in the form that cancels least: near r = 1 through (a_i − a_j) and 1 − r,
        # near r = −1 through (a_i + a_j) and 1 + r
        near1 = r0 >= 0
        nkk = np.where(near1, dk * dk + 2 * om * aki * akj, sk * sk - 2 * op * aki * akj)
        nll = np.where(near1, dl * dl + 2 * om * ali * alj, sl * sl - 2 * op * ali * alj)
        nkl = np.where(near1, dk * dl + om * (aki * alj + akj * ali),
                       sk * sl - op * (aki * alj + akj * ali))
        ckk = 1.0 - nkk / q
        cll = 1.0 - nll / q
        ckl = c - nkl / q
        rho = np.clip(ckl / np.sqrt(np.maximum(ckk * cll, 1e-300)), -1.0, 1.0)
        f = (0.25 + np.arcsin(rho) / (2 * np.pi)) / (2 * np.pi * np.sqrt(q))
        total = total + R[:, i, j] * (f @ wt)
    return total


def orthant_from_vectors(W: np.ndarray) -> np.ndarray:
    """P(w_t·u > 0 for all t) for unit vectors W (B, m, r), u ~ N(0, I), m ≤ 4."""
    m = W.shape[1]
    if m == 0:
        return np.ones(W.shape[0])
    if m == 1:
        return np.full(W.shape[0], 0.5)
    if m == 2:
        return 0.5 - angle(W[:, 0], W[:, 1]) / (2 * np.pi)
    if m == 3:
        return 0.5 - (angle(W[:, 0], W[:, 1]) + angle(W[:, 0], W[:, 2])
                      + angle(W[:, 1], W[:, 2])) / (4 * np.pi)
    if m == 4:
        R = np.clip(np.einsum("bir,bjr->bij", W, W), -1.0, 1.0)
        R[:, np.arange(4), np.arange(4)] = 1.0
        return orthant4(R)
    raise ValueError(f"orthant probabilities over at most 4 variables, got {m}")


class OrthantMoments:
    """``M(J, T, α) = E[z^α Π_{t∈T} 1{z_t > 0} | z_J = 0]`` for a batch of centred Gaussians
    ``z = L u`` (module docstring), memoised per (J, T, α) so that every pattern of one batch of
    sample subsets shares them.

    :meth:`moment` returns ``(value, bad)``: ``bad`` (B,) marks rows that needed the indicator
    of a variable with zero conditional variance (undefined here; the caller integrates them
    another way). Values of bad rows are finite but meaningless.
    """

    def __init__(self, L: np.ndarray):
        self.L = np.asarray(L, dtype=float)
        self.B, self.d = self.L.shape[:2]
        self.norm0 = np.linalg.norm(self.L, axis=-1)  # (B, d)
        self._vec: dict = {(): self.L}
        self._memo: dict = {}

    def vectors(self, J: tuple[int, ...]) -> np.ndarray:
        """Projected vectors v (B, d, r) given z_J = 0 (J sorted)."""
        if J not in self._vec:
            prev, j = self.vectors(J[:-1]), J[-1]
            vj = prev[:, j]
            nj = np.linalg.norm(vj, axis=-1)
            ok = nj > DEGENERATE * self.norm0[:, j]
            n = np.where(ok[:, None], vj / np.where(ok, nj, 1.0)[:, None], 0.0)
            v = prev - np.einsum("bar,br->ba", prev, n)[..., None] * n[:, None, :]
            v = v - np.einsum("bar,br->ba", v, n)[..., None] * n[:, None, :]  # twice: rounding
            v[:, j] = 0.0
            self._vec[J] = v
        return self._vec[J]

    def degenerate(self, J: tuple[int, ...]) -> np.ndarray:
        """(B, d): variables with zero conditional variance given z_J = 0 (those in J too)."""
        key = ("deg", J)
        if key not in self._memo:
            v = self.vectors(J)
            self._memo[key] = np.linalg.norm(v, axis=-1) <= DEGENERATE * self.norm0
        return self._memo[key]

    def probability(self, J: tuple[int, ...], T: tuple[int, ...]) -> np.ndarray:
        key = ("p", J, T)
        if key not in self._memo:
            v = self.vectors(J)[:, list(T)]
            nv = np.linalg.norm(v, axis=-1, keepdims=True)
            W = v / np.where(nv > 0, nv, 1.0)
            self._memo[key] = orthant_from_vectors(W)
        return self._memo[key]

    def moment(self, J: tuple[int, ...], T: tuple[int, ...], alpha: tuple[int, ...]):
        """``(M(J, T, α), bad)``; J, T sorted tuples of variables, α a length-d exponent tuple
        (zero on J)."""
        # variables neither in T nor in z^α do not matter
        key = ("m", J, T, alpha)
        if key in self._memo:
            return self._memo[key]
        deg = self.degenerate(J)
        pw = [a for a in range(self.d) if alpha[a]]
        zero = deg[:, pw].any(-1) if pw else np.zeros(self.B, bool)  # z_a ≡ 0, a power of it
        bad = deg[:, list(T)].any(-1) & ~zero if T else np.zeros(self.B, bool)
        if not pw:
            val = self.probability(J, T)
        else:
            outside = [a for a in pw if a not in T]
            i = outside[0] if outside else pw[0]
            rest = list(alpha)
            rest[i] -= 1
            v = self.vectors(J)
            val = np.zeros(self.B)
            for j in range(self.d):
                if rest[j]:
                    low = list(rest)
                    low[j] -= 1
                    m, b = self.moment(J, T, tuple(low))
                    val = val + rest[j] * np.einsum("br,br->b", v[:, i], v[:, j]) * m
                    bad = bad | b
            for j in T:
                if rest[j]:
                    continue
                nj = np.linalg.norm(v[:, j], axis=-1)
                live = ~deg[:, j]
                coef = np.where(live, np.einsum("br,br->b", v[:, i], v[:, j])
                                / np.where(live, nj, 1.0), 0.0) / np.sqrt(2 * np.pi)
                m, b = self.moment(tuple(sorted(J + (j,))), tuple(t for t in T if t != j),
                                   tuple(rest))
                val = val + coef * m
                bad = bad | (b & live)
        val = np.where(zero, 0.0, val)
        bad = bad & ~zero
        self._memo[key] = (val, bad)
        return self._memo[key]
