"""Sympy nodes of the recursions: σ-factors, Gaussian expectations, dummy sums, tensors.

All nodes print to LaTeX through ``_latex(printer)`` hooks (children go through
``printer._print``), so ``sympy.latex`` and Jupyter render them without global settings.

* ``SigmaFactor(k, α)`` — σ^{(k)}(z_α), printed σ_α, σ'_α, σ''_α, σ^{(3)}_α …;
* ``GaussExp(body, γ1, …)`` — ⟨∂_{γ1}…(body)⟩_K in the derivative form;
* ``HermiteK(γ1, …)`` — the Hermite polynomial of the inverse metric, so that
  ``⟨∂_{γ1}…∂_{γk} F⟩ = ⟨F · HermiteK(γ1, …, γk)⟩`` (k = 1: Σ_β K^{γβ} z_β;
  k = 2: Σ K^{γβ}K^{δε}(z_β z_ε − K_{βε}); …) with K restricted to the blob's distinct samples;
* ``DummySum(expr, γ1, …)`` — Σ over the dummy sample indices.
"""

from __future__ import annotations

import sympy as sp

from feyntk.spec.statistic import lookup


def sample_symbol(label: str) -> sp.Symbol:
    """``a1`` -> α₁ (external sample), ``g0`` -> γ₁ (dummy sample)."""
    if label.startswith("a"):
        return sp.Symbol(f"alpha_{int(label[1:])}")
    return sp.Symbol(f"gamma_{int(label[1:]) + 1}")


class SigmaFactor(sp.Expr):
    """σ^{(k)}(z_α) at layer ℓ."""

    is_commutative = True

    def __new__(cls, k, alpha):
        return sp.Expr.__new__(cls, sp.Integer(k), alpha)

    @property
    def k(self) -> int:
        return int(self.args[0])

    def _latex(self, printer):
        k = self.k
        prime = "" if k == 0 else "'" * k if k <= 3 else f"^{{({k})}}"
        return rf"\sigma{prime}_{{{printer._print(self.args[1])}}}"

    def _sympystr(self, printer):
        return f"sigma{'' if not self.k else self.k * chr(39)}[{printer._print(self.args[1])}]"


class GaussExp(sp.Expr):
    """⟨∂_{γ1}…∂_{γk}(body)⟩_{K^{(ℓ)}}; the derivative list may be empty."""

    is_commutative = True

    def _latex(self, printer):
        body, derivs = self.args[0], self.args[1:]
        inner = printer._print(body)
        if derivs:
            d = "".join(rf"\partial_{{{printer._print(g)}}}" for g in derivs)
            inner = rf"{d}\left({inner}\right)"
        return rf"\left\langle {inner} \right\rangle_{{K}}"

    def _sympystr(self, printer):
        body, derivs = self.args[0], self.args[1:]
        d = "".join(f"d[{printer._print(g)}]" for g in derivs)
        return f"<{d}({printer._print(body)})>"


class HermiteK(sp.Expr):
    """Hermite polynomial of the inverse metric K^{-1} (restricted to the blob's samples)."""

    is_commutative = True

    def _latex(self, printer):
        idx = "".join(printer._print(g) for g in self.args)
        return rf"\mathcal{{H}}^{{{idx}}}(z)"

    def _sympystr(self, printer):
        return f"He[{','.join(printer._print(g) for g in self.args)}]"


class DummySum(sp.Expr):
    """Σ over dummy sample indices (args[1:]) of args[0]."""

    is_commutative = True

    def _latex(self, printer):
        idx = "".join(printer._print(g) for g in self.args[1:])
        return rf"\sum_{{{idx}}} {printer._print(self.args[0])}"

    def _sympystr(self, printer):
        return f"Sum[{','.join(printer._print(g) for g in self.args[1:])}]({printer._print(self.args[0])})"


def tensor(name: str, layer: str = r"\ell") -> sp.IndexedBase:
    """The IndexedBase of a statistic at a layer (LaTeX ``V^{(\\ell)}`` etc.), with the symbol
    declared in :mod:`feyntk.spec.statistic`."""
    stat = lookup(name)
    sym = stat.latex if stat is not None else name
    if "^" in sym:
        base, sup = sym.split("^", 1)
        return sp.IndexedBase(f"{base}^{{{sup[1:-1]},({layer})}}")
    return sp.IndexedBase(f"{sym}^{{({layer})}}")
