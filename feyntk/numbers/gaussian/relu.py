"""Closed forms of the relu family's blobs: Gaussian expectations of products of relu, leaky
relu, their steps, deltas and derivatives of deltas over 1–4 distinct samples, for all sample
subsets of a layer at once (numpy, vectorised over subsets).

A blob over d distinct samples is ``⟨Π_s D_s(z_s) · w(z)⟩_K`` with ``D_s = d^{j_s}/dz^{j_s}
Π_m σ^{(k_m)}(z)`` formed as one distribution (MATH.md's definition, as the oracle,
:mod:`feyntk.numbers.distributions`) and w an optional Hermite polynomial (inverse-metric form).
For an activation whose kinks all sit at 0 and whose pieces are polynomials (relu:
σ = z H(z); leaky relu: σ = z (s + (1 − s) H(z)); the ``pointwise`` variants), every factor is

    D_s(z) = p⁻_s(z) + p^Δ_s(z) H(z) + Σ_q c_q δ^{(q)}(z)

(p⁻ the polynomial for z < 0, p^Δ = p⁺ − p⁻). Expanding the product, a choice of delta terms
on a set D of samples is, by Gaussian integration by parts as in the oracle,

    ⟨Π_{a∈D} δ^{(q_a)}(z_a) G(z)⟩ = ρ_D(0) · E[G(z) He_{D^q}(z) | z_D = 0],
    ρ_D(0) = ((2π)^{|D|} det K_DD)^{-1/2},

with the Hermite polynomials ``He`` of ``K_S⁻¹`` (``y = K_S⁻¹ z``, :func:`hermite_polynomial`),
and the rest is a polynomial times indicators H(z_t) of the samples t ∈ T that took p^Δ:
orthant moments ``E[z^α Π_{t∈T} 1{z_t > 0} | z_D = 0]`` of the centred conditional Gaussian
(:class:`~feyntk.numbers.gaussian.orthant.OrthantMoments`: Stein's recursion down to the
orthant probabilities 1/2, Sheppard's (π − φ)/(2π), the spherical-triangle 1/2 − Σφ/(4π) and
Plackett's 1-d integral for four samples).

Examples (K unit diagonal, ρ = cos φ): ``⟨relu relu⟩ = (sin φ + (π − φ) cos φ)/(2π)`` (Cho and
Saul's arc-cosine kernel), ``⟨H H⟩ = (π − φ)/(2π)``, ``⟨δ(z_a) relu(z_b)⟩ = ρ_a(0) E[relu(z_b) |
z_a = 0] = √(1 − ρ²)/(2π)``.

Rows the closed forms cannot take are returned as ``bad`` for the caller to integrate with the
oracle's quadrature (which also raises its refusals there): a sample of zero variance, delta
functions at perfectly correlated samples, a singular K_S where Hermite polynomials are needed,
and an indicator of a variable determined by the conditioned ones (collinear inputs).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import sympy as sp

from feyntk.numbers.gaussian.factors import factor, invertible
from feyntk.numbers.gaussian.orthant import OrthantMoments
from feyntk.spec.activation import Z, Activation


ENABLED = True
"""Whether the oracle (:class:`feyntk.numbers.evaluate.BlobCache`) and the generated kernels'
tables (:func:`feyntk.kernels.tables.fill_from_cache`) use these closed forms for the relu
family; False: the quadrature of :mod:`feyntk.numbers.distributions` for every blob (the
conical rule; tests compare the two)."""


def applies(act: Activation) -> bool:
    """Whether the closed forms cover ``act``: all kinks at 0, σ piecewise polynomial there."""
    return act.kinks == (0.0,) and _pieces(act, (0,), 0) is not None


def use(act: Activation) -> bool:
    """:data:`ENABLED` and :func:`applies`."""
    return ENABLED and applies(act)


def _poly1(expr: sp.Expr) -> dict[int, float] | None:
    """{power: coefficient} of a polynomial in z, None if expr is none."""
    expr = sp.expand(expr)
    if expr.has(sp.Heaviside, sp.DiracDelta) or not expr.is_polynomial(Z):
        return None
    return {int(m[0]): float(c) for m, c in sp.Poly(expr, Z).terms() if float(c) != 0.0}


@functools.lru_cache(maxsize=1024)
def _pieces(act: Activation, ks: tuple[int, ...], j: int):
    """(p⁻, p^Δ, deltas) of ``act.blob_factor(ks, j)`` (module docstring): polynomials as
    {power: coefficient}, deltas as ((order, coefficient), ...); None if the factor is not of
    that form. Raises the oracle's :class:`~feyntk.errors.ActivationError` for ill-defined
    products (δ·δ at one sample)."""
    part = act.blob_factor(ks, j)
    if any(t.point != 0.0 for t in part.deltas):
        return None
    reg = part.regular
    if reg.atoms(sp.Heaviside) - {sp.Heaviside(Z)}:
        return None
    plus = _poly1(reg.subs(sp.Heaviside(Z), 1))
    minus = _poly1(reg.subs(sp.Heaviside(Z), 0))
    if plus is None or minus is None:
        return None
    diff = {p: plus.get(p, 0.0) - minus.get(p, 0.0) for p in set(plus) | set(minus)}
    diff = {p: c for p, c in diff.items() if c != 0.0}
    return minus, diff, tuple((t.order, float(t.coeff)) for t in part.deltas)


# -- polynomials in d variables with per-row coefficients: {exponent tuple: (B,) or float} ----
def _mul(a: dict, b: dict) -> dict:
    out: dict = {}
    for ea, ca in a.items():
        for eb, cb in b.items():
            e = tuple(x + y for x, y in zip(ea, eb))
            out[e] = out.get(e, 0.0) + ca * cb
    return out


def _add(a: dict, b: dict, scale=1.0) -> dict:
    out = dict(a)
    for e, c in b.items():
        out[e] = out.get(e, 0.0) + scale * c
    return out


def _unit(d: int, i: int) -> tuple[int, ...]:
    return tuple(int(k == i) for k in range(d))


def hermite_polynomial(idx: tuple[int, ...], P: np.ndarray) -> dict:
    """He_idx(z) for y = P z (P = K_S⁻¹, (B, d, d)) as a polynomial in z, by the oracle's
    recursion ``He_{i,rest} = y_i He_rest − Σ_m P_{i,rest_m} He_{rest∖m}``."""
    d = P.shape[-1]
    if not idx:
        return {(0,) * d: 1.0}
    i, rest = idx[0], idx[1:]
    y = {_unit(d, j): P[:, i, j] for j in range(d)}
    out = _mul(y, hermite_polynomial(rest, P))
    for m, r in enumerate(rest):
        out = _add(out, hermite_polynomial(rest[:m] + rest[m + 1:], P), -P[:, i, r])
    return out


class ReluBlobs:
    """Blob values of a relu-family activation over all d-subsets of N samples at one K.

    :meth:`value` is memoised per pattern; the orthant moments of one d are shared by all
    patterns (:class:`~feyntk.numbers.gaussian.orthant.OrthantMoments`).
    """

    def __init__(self, act: Activation, K: np.ndarray):
        self.act, self.K = act, np.asarray(K, dtype=float)
        self._batch: dict = {}
        self._memo: dict = {}

    def subsets(self, d: int) -> np.ndarray:
        return self.batch(d)["S"]

    def batch(self, d: int) -> dict:
        if d not in self._batch:
            N = self.K.shape[0]
            S = np.array(list(itertools.combinations(range(N), d)),
                         dtype=np.int64).reshape(-1, d)
            KS = self.K[S[:, :, None], S[:, None, :]]
            L = factor(KS, smooth=False)  # the oracle's rank decision and refusals
            zero = (np.diagonal(KS, axis1=1, axis2=2) <= 1e-300).any(-1)
            self._batch[d] = {"S": S, "KS": KS, "mom": OrthantMoments(L), "zero": zero}
        return self._batch[d]

    def _inverse(self, d: int):
        b = self.batch(d)
        if "P" not in b:
            ok, _ = invertible(b["KS"])
            P = np.zeros_like(b["KS"])
            P[ok] = np.linalg.inv(b["KS"][ok])
            b["P"], b["Pok"] = P, ok
        return b["P"], b["Pok"]

    def _density(self, d: int, D: tuple[int, ...]):
        """ρ_D(0) per row and the rows where K_DD is singular (the oracle's test)."""
        b = self.batch(d)
        key = ("rho", D)
        if key not in b:
            KDD = b["KS"][:, list(D)][:, :, list(D)]
            w = np.linalg.eigvalsh(KDD)
            ok = w.min(-1) > 1e-12 * np.maximum(w.max(-1), 1e-300)
            det = np.where(ok, np.linalg.det(KDD), 1.0)
            b[key] = (np.where(ok, 1.0 / np.sqrt((2 * np.pi) ** len(D) * det), 0.0), ~ok)
        return b[key]

    def value(self, groups: tuple[tuple[tuple[int, ...], int], ...],
              weight: tuple[int, ...] | None = None):
        """``(values (C,), bad (C,))`` of ``⟨Π_s D_s(z_s) · He_weight(z)⟩`` over the d-subsets
        (``combinations`` order), slot s the s-th sample of the subset; ``groups[s] = (ks, j)``:
        ``D_s = d^j/dz^j Π_k σ^{(k)}``; ``weight``: slots of a Hermite polynomial of K_S⁻¹ (the
        inverse-metric form) or None. Returns None if a factor is not piecewise polynomial."""
        key = (groups, weight)
        if key in self._memo:
            return self._memo[key]
        d = len(groups)
        parts = [_pieces(self.act, tuple(sorted(ks)), j) for ks, j in groups]
        if any(p is None for p in parts):
            return None
        b = self.batch(d)
        mom: OrthantMoments = b["mom"]
        C = len(b["S"])
        total = np.zeros(C)
        bad = b["zero"].copy()
        wpoly = None
        if weight:
            P, ok = self._inverse(d)
            wpoly = hermite_polynomial(tuple(weight), P)
            bad |= ~ok
        options = []
        for minus, diff, deltas in parts:
            opts = [("m", minus)] if minus else []
            opts += [("h", diff)] if diff else []
            opts += [("d", q, c) for q, c in deltas]
            options.append(opts)
        for combo in itertools.product(*options):
            D = tuple(s for s, o in enumerate(combo) if o[0] == "d")
            T = tuple(s for s, o in enumerate(combo) if o[0] == "h")
            poly = {(0,) * d: 1.0}
            for s, o in enumerate(combo):
                if o[0] != "d":
                    poly = _mul(poly, {tuple(p if k == s else 0 for k in range(d)): c
                                       for p, c in o[1].items()})
            scale = np.ones(C)
            if D:
                rho, sing = self._density(d, D)
                scale = rho * np.prod([o[2] for o in combo if o[0] == "d"])
                bad |= sing
                q = tuple(s for s, o in enumerate(combo) if o[0] == "d" for _ in range(o[1]))
                if q:
                    P, ok = self._inverse(d)
                    poly = _mul(poly, hermite_polynomial(q, P))
                    bad |= ~ok
            if wpoly is not None:
                poly = _mul(poly, wpoly)
            acc = np.zeros(C)
            for e, c in poly.items():
                if any(e[s] for s in D):  # z_D = 0
                    continue
                if np.all(np.asarray(c) == 0.0):
                    continue
                m, mb = mom.moment(D, T, e)
                acc = acc + c * m
                bad |= mb
            total = total + scale * acc
        self._memo[key] = (total, bad)
        return self._memo[key]
