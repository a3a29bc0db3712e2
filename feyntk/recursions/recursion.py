"""The sympy layer: diagrams -> the layer-to-layer recursion of a statistic.

``recursion("F")`` builds ``F^{(ℓ+1)}_{α1α3α2α4} = Σ_diagrams …`` from the engine's diagrams, in
the derivative form (``⟨∂_γ(…)⟩``) or the inverse-metric form (``⟨(…)·𝓗^{γ…}(z)⟩``), with the
hyperparameters of layer ℓ+1 and the width ratio ``n_ℓ/n_{ℓ-1}``. Both forms come from the
same diagrams and print to LaTeX (``.latex()``, ``_repr_latex_`` in Jupyter).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from feyntk.diagrams.diagram import Diagram, correlator, diagrams
from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b
from feyntk.diagrams.generate import Term
from feyntk.recursions.nodes import (DummySum, GaussExp, HermiteK, SigmaFactor, sample_symbol,
                                     tensor)

FORMS = ("derivative", "inverse-metric")

SYMBOL_NAMES = {C_W: r"C_W^{(\ell+1)}", C_b: r"C_b^{(\ell+1)}", lam_W: r"\lambda_W^{(\ell+1)}",
                lam_b: r"\lambda_b^{(\ell+1)}", RATIO: r"\frac{n_{\ell}}{n_{\ell-1}}"}


def _blob_expr(blob, form: str) -> sp.Expr:
    body = sp.Mul(*(SigmaFactor(k, sample_symbol(s)) for k, s in blob.sigs))
    legs = [sample_symbol(g) for g in blob.legs]
    if form == "derivative" or not legs:
        return GaussExp(body, *legs)
    return GaussExp(body * HermiteK(*legs))


def term_expr(term: Term, form: str = "derivative", layer: str = r"\ell") -> sp.Expr:
    """One diagram term as a sympy expression."""
    factors = [term.weight, term.coeff]
    dummies = []
    for name, idx in term.tensors:
        factors.append(tensor(name, layer)[tuple(sample_symbol(s) for s in idx)])
    for name, idx in term.means:
        factors.append(tensor(name, layer)[tuple(sample_symbol(s) for s in idx)])
    for blob in term.blobs:
        factors.append(_blob_expr(blob, form))
        dummies += [sample_symbol(g) for g in blob.legs]
    body = sp.Mul(*factors[2:])
    if dummies:
        body = DummySum(body, *sorted(dummies, key=str))
    return factors[0] * factors[1] * body


@dataclass(frozen=True)
class Recursion:
    """``lhs = rhs``: a statistic at layer ℓ+1 in terms of layer ℓ, derived from diagrams."""

    statistic: str
    form: str
    lhs: sp.Expr
    rhs: sp.Expr
    diagrams: tuple[Diagram, ...]

    def latex(self) -> str:
        """LaTeX of the equation (hyperparameters labelled with their layer)."""
        rows = [sp.latex(t, symbol_names=SYMBOL_NAMES) for t in sp.Add.make_args(self.rhs)]
        ratio = SYMBOL_NAMES[RATIO]  # powers of the width ratio (order 1/n²) in parentheses
        rows = [r.replace(ratio + "^{", rf"\left({ratio}\right)^{{") for r in rows]
        body = rows[0] + "".join(
            (r" \\ &\quad " + (r if r.startswith("-") else "+ " + r)) for r in rows[1:])
        return rf"\begin{{aligned}} {sp.latex(self.lhs)} &= {body} \end{{aligned}}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def __str__(self) -> str:
        rows = [str(t) for t in sp.Add.make_args(self.rhs)]
        body = rows[0] + "".join("\n  - " + r[1:] if r.startswith("-") else "\n  + " + r
                                 for r in rows[1:])
        return (f"{self.lhs} =\n    {body}\n"
                "(C_W, C_b, lambda_W, lambda_b of layer l+1; r = n_l/n_(l-1); <...> Gaussian "
                "expectations at K of layer l; d[g] = derivative by z_g; He = inverse-metric "
                "Hermite polynomial; tensors on the right are of layer l)")

    __repr__ = __str__


def recursion(name: str, form: str = "derivative") -> Recursion:
    """Derive the recursion of statistic ``name`` in the given form."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    corr = correlator(name)
    ds = diagrams(name)
    lhs = tensor(name, r"\ell+1")[tuple(sample_symbol(s) for s in corr.output)]
    rhs = sp.Add(*(term_expr(t, form) for d in ds for t in d.terms))
    return Recursion(name, form, lhs, rhs, ds)
