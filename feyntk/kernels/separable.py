"""Exponential addition theorems: transcendental calls replaced by products carried down the loops.

In the triangular kernels (:func:`feyntk.kernels.tables.integrand_source`, d ≥ 2) sample s is
``z_s = Σ_{j≤s} L_sj·u_j`` with u_j the node of loop level j. An atom whose function is a
rational function of one exponential ``e^{k z}`` is evaluated from

    e^{k z_s} = Π_{j≤s} e^{k L_sj u_j},

a product of one table entry per level (tables of ``e^{k L_sj x_i}`` filled once per subset):
each loop level multiplies the partial product it inherits by its own entry, so no loop runs an
``exp``, and the innermost loop (products and one division per node) vectorises.

============  ==========  =====================================
atom          e^{k z}     value
============  ==========  =====================================
tanh(c·z)     k = 2c      1 − 2/(1 + E)   (absolute error ~1e-16)
σ(c·z)        k = −c      1/(1 + E)       (:class:`~feyntk.spec.activation.Sigmoid`)
exp(c·z)      k = c       E
============  ==========  =====================================

Other atoms (erf, log, softplus, sin, e^{−z²/2}, …) are evaluated directly. The products
overflow for large |z|: the kernels use them only for subsets whose every ``|k|·max|z_s|`` stays
below :data:`EXP_LIMIT` and evaluate directly elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from feyntk.spec.activation import Sigmoid

EXP_LIMIT = 600.0
"""Largest |k·z| for which the products are used (e^600 ≈ 1e260: finite, and so are partial
products, which are bounded by the same sum of |k L_sj u_j|)."""


@dataclass(frozen=True)
class Split:
    """Expressions with their exponential atoms replaced.

    Attributes:
        exprs: the inputs, each atom replaced by its value in the symbol ``<prefix><r>`` that
            stands for ``e^{rates[r]·z}`` (other atoms and powers of z stay).
        rates: the exponents k per unit z, one per symbol.
    """

    exprs: tuple
    rates: tuple


def _rule(f, c):
    """``(k, value(E))`` for the atom ``f(c·z)`` with ``E = e^{k z}``, or None."""
    if f is sp.tanh:
        return 2 * c, lambda E: 1 - 2 / (1 + E)
    if f is Sigmoid:
        return -c, lambda E: 1 / (1 + E)
    if f is sp.exp:
        return c, lambda E: E
    return None


def split(exprs, z: sp.Symbol, prefix: str) -> Split:
    """Replace every atom ``f(c·z)`` (c a nonzero real number) of ``exprs`` that has a rule."""
    exprs = [sp.sympify(e) for e in exprs]
    rates: list = []
    rep = {}
    atoms = set().union(*[e.atoms(sp.Function, sp.exp) for e in exprs]) if exprs else set()
    for atom in sorted(atoms, key=sp.default_sort_key):
        if len(atom.args) != 1 or not atom.args[0].has(z):
            continue
        c = sp.simplify(atom.args[0] / z)
        if not (c.is_number and c.is_real) or c == 0:
            continue
        rule = _rule(atom.func, c)
        if rule is None:
            continue
        k, value = rule
        k = float(k)
        if k not in rates:
            rates.append(k)
        rep[atom] = value(sp.Symbol(f"{prefix}{rates.index(k)}"))
    return Split(tuple(e.xreplace(rep) for e in exprs), tuple(rates))
