"""Addition theorems that move transcendental functions out of the innermost quadrature loop.

In the triangular kernels (:func:`feyntk.kernels.tables.integrand_source`, d ≥ 3) the last
sample is ``z = t + a``: ``t`` is fixed by the outer loops and ``a = L_ll·x_i`` runs over the
innermost nodes. An atom ``f(c·z)`` whose f has an addition theorem is a combination of products
``outer_j(t)·inner_j(a)``. The outer factors are evaluated once per outer iteration, the inner
ones once per subset into a table, and the innermost loop is left with products and divisions,
which vectorise.

=========  ======================  ===========================================
atom       products                value
=========  ======================  ===========================================
tanh(cz)   e^{2ct}·e^{2ca}         1 − 2/(1 + p₀)   (absolute error ~1e-16)
σ(cz)      e^{−ct}·e^{−ca}         1/(1 + p₀)       (:class:`~feyntk.spec.activation.Sigmoid`)
exp(cz)    e^{ct}·e^{ca}           p₀
sin(cz)    sin(ct)cos(ca), …       p₀ + p₁
cos(cz)    cos(ct)cos(ca), …       p₀ − p₁
=========  ======================  ===========================================

Other atoms (erf, log, softplus, e^{−z²/2}, …) stay in the innermost loop. Exponential products
overflow for large |z|: :attr:`Split.rate` bounds the exponent per unit |z|, and the kernels use
the products only for subsets with ``rate·max|z| ≤ EXP_LIMIT`` (direct evaluation elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from feyntk.spec.activation import Sigmoid

T, A = sp.symbols("T A", real=True)
"""The outer part t and the inner part a of the last sample z = t + a."""

EXP_LIMIT = 600.0
"""Largest exponent the products may reach (e^600 ≈ 1e260: products of two stay finite)."""


@dataclass(frozen=True)
class Split:
    """Expressions with separable atoms replaced by combinations of ``p{j}``.

    Attributes:
        exprs: the inputs, atoms replaced (may still contain z for the other atoms and powers).
        pairs: ``p_j = outer_j(T)·inner_j(A)``, as ``(outer_j, inner_j)``.
        rate: the largest |k| of an exponential ``e^{k z}`` among the products (0: none).
    """

    exprs: tuple
    pairs: tuple
    rate: float


def _rule(f, c):
    """``(pairs, combine, rate)`` for the atom ``f(c·z)``, or None without an addition theorem."""
    if f is sp.tanh:
        return [(sp.exp(2 * c * T), sp.exp(2 * c * A))], lambda p: 1 - 2 / (1 + p[0]), abs(2 * c)
    if f is Sigmoid:
        return [(sp.exp(-c * T), sp.exp(-c * A))], lambda p: 1 / (1 + p[0]), abs(c)
    if f is sp.exp:
        return [(sp.exp(c * T), sp.exp(c * A))], lambda p: p[0], abs(c)
    if f is sp.sin:
        return ([(sp.sin(c * T), sp.cos(c * A)), (sp.cos(c * T), sp.sin(c * A))],
                lambda p: p[0] + p[1], 0)
    if f is sp.cos:
        return ([(sp.cos(c * T), sp.cos(c * A)), (sp.sin(c * T), sp.sin(c * A))],
                lambda p: p[0] - p[1], 0)
    return None


def split(exprs, z: sp.Symbol) -> Split:
    """Replace every separable atom ``f(c·z)`` (c a nonzero number) of ``exprs``."""
    exprs = [sp.sympify(e) for e in exprs]
    pairs: list = []
    rate = 0.0

    def product(pair):
        if pair not in pairs:
            pairs.append(pair)
        return sp.Symbol(f"p{pairs.index(pair)}")

    rep = {}
    atoms = set().union(*[e.atoms(sp.Function) for e in exprs]) if exprs else set()
    for atom in sorted(atoms, key=sp.default_sort_key):
        if len(atom.args) != 1 or not atom.args[0].has(z):
            continue
        c = sp.simplify(atom.args[0] / z)
        if not c.is_number or c == 0:
            continue
        rule = _rule(atom.func, c)
        if rule is None:
            continue
        ps, combine, r = rule
        rep[atom] = combine([product(p) for p in ps])
        rate = max(rate, float(r))
    return Split(tuple(e.xreplace(rep) for e in exprs), tuple(pairs), rate)
