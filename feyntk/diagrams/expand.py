"""Step 1, *expand*: layer maps + Wick contraction of the layer-(ℓ+1) weights and biases.

For a :class:`~feyntk.diagrams.fields.Correlator`, every choice of one layer-map term per
external field and every Wick pairing of the W's (``W_{ij} W_{i'j'} → δ_{ii'} δ_{jj'} C_W/n_ℓ``)
and of the b's (``→ δ_{ii'} C_b``) is a :class:`Contraction`. Pairings between different external
neuron labels vanish (δ_{ii'} = 0), so they are never generated: the selection rule
``external_deltas`` is pushed down to this level.

After contraction each W-pair, and each neuron average ``(λ_W/n_ℓ) Σ_j``, is a *vertex*: one
internal neuron index of layer ℓ summed over n_ℓ values with a factor 1/n_ℓ (the paper's
cubic vertex). Internal variables are renamed ``f<field>.<var>`` to keep them apart.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from feyntk.diagrams.fields import C_W, C_b, Correlator, Low, MapTerm, Sig, layer_map


@dataclass(frozen=True)
class Vertex:
    """An internal neuron index of layer ℓ: the variables it identifies and the fields it joins."""

    vars: tuple[str, ...]
    fields: tuple[int, ...]
    kind: str  # "W" (a Wick pair) or "avg" (a neuron average)
    slots: tuple[tuple[int, int], ...] = ()  # (field, external slot) of each W


@dataclass(frozen=True)
class Contraction:
    """One Wick-contracted product of layer-map terms.

    Attributes:
        terms: the chosen layer-map term of each external field.
        coeff: product of term coefficients, C_W per W-pair and C_b per bias pair.
        vertices: internal neuron indices (each carries 1/n_ℓ).
        bias_pairs: pairs of fields joined by a bias contraction.
        factors: lower factors, variables renamed.
        var_vertex: variable -> index into ``vertices``.
    """

    terms: tuple[MapTerm, ...]
    coeff: sp.Expr
    vertices: tuple[Vertex, ...]
    bias_pairs: tuple[tuple[int, int], ...]
    factors: tuple[Sig | Low, ...]
    var_vertex: tuple[tuple[str, int], ...]

    @property
    def vertex_of(self) -> dict[str, int]:
        return dict(self.var_vertex)


def perfect_matchings(items: list) -> list[list[tuple]]:
    """All perfect matchings of a list (empty list -> one empty matching)."""
    if not items:
        return [[]]
    if len(items) % 2:
        return []
    first, rest = items[0], items[1:]
    out = []
    for i, other in enumerate(rest):
        for m in perfect_matchings(rest[:i] + rest[i + 1:]):
            out.append([(first, other)] + m)
    return out


def _rename(f: int, x):
    if isinstance(x, Sig):
        return Sig(x.k, f"f{f}.{x.var}", x.sample)
    return Low(x.kind, tuple(f"f{f}.{v}" for v in x.vars), x.samples)


def expand(corr: Correlator) -> list[Contraction]:
    """Every non-vanishing Wick contraction of the correlator's fields (step 1)."""
    fields = corr.fields
    out = []
    for terms in itertools.product(*(layer_map(f.kind, f.samples) for f in fields)):
        if any(f.labels[a] != f.labels[b] for f, t in zip(fields, terms) for a, b in t.deltas):
            continue  # a Kronecker delta of the layer map between distinct labels
        ws = [(fi, slot, f"f{fi}.{v}") for fi, t in enumerate(terms) for slot, v in t.weights]
        bs = [(fi, slot) for fi, t in enumerate(terms) for slot in t.biases]
        factors = tuple(_rename(fi, x) for fi, t in enumerate(terms) for x in t.factors)
        avg = [(fi, f"f{fi}.{v}") for fi, t in enumerate(terms) for v in t.averaged]
        coeff0 = sp.Mul(*(t.coeff for t in terms))
        for wm in perfect_matchings(ws):
            if any(fields[a[0]].labels[a[1]] != fields[b[0]].labels[b[1]] for a, b in wm):
                continue
            for bm in perfect_matchings(bs):
                if any(fields[a[0]].labels[a[1]] != fields[b[0]].labels[b[1]] for a, b in bm):
                    continue
                verts = [Vertex((a[2], b[2]), tuple(sorted({a[0], b[0]})), "W",
                                ((a[0], a[1]), (b[0], b[1]))) for a, b in wm]
                verts += [Vertex((v,), (fi,), "avg") for fi, v in avg]
                var_vertex = tuple((v, k) for k, vx in enumerate(verts) for v in vx.vars)
                coeff = coeff0 * C_W ** len(wm) * C_b ** len(bm)
                out.append(Contraction(terms, coeff, tuple(verts),
                                       tuple((a[0], b[0]) for a, b in bm), factors, var_vertex))
    return out
