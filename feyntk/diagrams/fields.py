"""Fields, layer maps and defining correlators: the input of the diagram engine.

Notation (MATH.md §2): W, b, λ without a layer label belong to layer ℓ+1; everything inside
the layer-ℓ expectation is a *lower* object:

* :class:`Sig` — ``σ^{(k)}(z^{(ℓ)}_{v;s})``, a factor that depends on the preactivation of the
  internal neuron ``v`` at sample ``s``;
* :class:`Low` — a layer-ℓ NTK-type field (``H`` = Ĥ, ``dH`` = dĤ, ``ddI``, ``ddII``) whose neuron
  slots are internal indices and whose samples are labels.

A :class:`MapTerm` is one term of a field's layer map: a coefficient, Kronecker deltas among the
field's external neuron slots, layer-(ℓ+1) weights ``W_{i j}`` (external slot, internal index),
biases ``b_i``, neuron averages ``(1/n_ℓ) Σ_j`` (``averaged``) and the lower factors.
Internal index names are local to a term; the engine renames them apart.

A :class:`~feyntk.spec.statistic.Correlator` (declared with its statistic in
:mod:`feyntk.spec.statistic`) defines a statistic at layer ℓ+1 as the joint cumulant of external
fields with concrete neuron labels (distinct letters = distinct neurons), as in MATH.md §3.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from feyntk.spec.statistic import FIELD_KINDS, REGISTRY, Correlator, External  # noqa: F401

# hyperparameters of layer ℓ+1 and the width ratio r = n_ℓ / n_{ℓ-1}
C_W, C_b, lam_W, lam_b = sp.symbols("C_W C_b lambda_W lambda_b", positive=True)
RATIO = sp.Symbol("r", positive=True)
"""Width ratio n_ℓ/n_{ℓ-1} that multiplies every layer-ℓ 1/n insertion."""

NTK_KINDS = tuple(k for k in FIELD_KINDS if k != "z")
NTK_RANK = {k: FIELD_KINDS[k].rank for k in NTK_KINDS}


@dataclass(frozen=True)
class Sig:
    """σ^{(k)} of the internal neuron ``var`` at sample ``sample`` (a z-dependent factor)."""

    k: int
    var: str
    sample: str


@dataclass(frozen=True)
class Low:
    """A layer-ℓ NTK-type field with internal neuron slots ``vars`` and ``samples``."""

    kind: str
    vars: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass(frozen=True)
class MapTerm:
    """One term of a layer map (see module docstring). Slots index the external field."""

    coeff: sp.Expr
    deltas: tuple[tuple[int, int], ...] = ()
    weights: tuple[tuple[int, str], ...] = ()
    biases: tuple[int, ...] = ()
    averaged: tuple[str, ...] = ()
    factors: tuple[Sig | Low, ...] = ()
    name: str = ""


def layer_map(kind: str, s: tuple[str, ...]) -> tuple[MapTerm, ...]:
    """Layer map of an external field with samples ``s`` (MATH.md §2), as data.

    The maps are exact identities obtained by differentiating the forward pass; they are tested
    against automatic differentiation of real networks.
    """
    if kind == "z":
        (a,) = s
        return (MapTerm(sp.Integer(1), biases=(0,), name="bias"),
                MapTerm(sp.Integer(1), weights=((0, "j"),), factors=(Sig(0, "j", a),),
                        name="weight"))
    if kind == "H":
        a1, a2 = s
        return (
            MapTerm(lam_b, deltas=((0, 1),), name="lambda_b"),
            MapTerm(lam_W, deltas=((0, 1),), averaged=("j",),
                    factors=(Sig(0, "j", a1), Sig(0, "j", a2)), name="lambda_W"),
            MapTerm(sp.Integer(1), weights=((0, "j1"), (1, "j2")),
                    factors=(Sig(1, "j1", a1), Sig(1, "j2", a2), Low("H", ("j1", "j2"), (a1, a2))),
                    name="chain"),
        )
    if kind == "dH":
        a0, a1, a2 = s
        return (
            MapTerm(lam_W, deltas=((0, 1),), averaged=("j",), weights=((2, "k"),),
                    factors=(Sig(1, "j", a0), Sig(0, "j", a1), Sig(1, "k", a2),
                             Low("H", ("j", "k"), (a0, a2))), name="lambda_W.1"),
            MapTerm(lam_W, deltas=((0, 2),), averaged=("j",), weights=((1, "k"),),
                    factors=(Sig(1, "j", a0), Sig(0, "j", a2), Sig(1, "k", a1),
                             Low("H", ("j", "k"), (a0, a1))), name="lambda_W.2"),
            MapTerm(sp.Integer(1), weights=((0, "j"), (1, "k1"), (2, "k2")),
                    factors=(Sig(2, "j", a0), Sig(1, "k1", a1), Sig(1, "k2", a2),
                             Low("H", ("j", "k1"), (a0, a1)), Low("H", ("j", "k2"), (a0, a2))),
                    name="chain.HH"),
            MapTerm(sp.Integer(1), weights=((0, "j"), (1, "k1"), (2, "k2")),
                    factors=(Sig(1, "j", a0), Sig(1, "k1", a1), Sig(1, "k2", a2),
                             Low("dH", ("j", "k1", "k2"), (a0, a1, a2))), name="chain.dH"),
        )
    if kind == "ddI":
        return _ddI_map(s)
    if kind == "ddII":
        return _ddII_map(s)
    raise NotImplementedError(f"no layer map for field {kind!r}")


def _ddI_map(s: tuple[str, ...]) -> tuple[MapTerm, ...]:
    """ddÎ^{(ℓ+1)}_{i0i1i2i3;α0α1α2α3}: ∂³z_{i0} along the NTK directions of z_{i1}, z_{i2}, z_{i3}."""
    a0, a1, a2, a3 = s
    W4 = ((0, "j"), (1, "k1"), (2, "k2"), (3, "k3"))
    legs = (Sig(1, "k1", a1), Sig(1, "k2", a2), Sig(1, "k3", a3))
    H = {m: Low("H", ("j", f"k{m}"), (a0, s[m])) for m in (1, 2, 3)}

    def dH(p, q):
        return Low("dH", ("j", f"k{p}", f"k{q}"), (a0, s[p], s[q]))

    terms = [
        MapTerm(sp.Integer(1), weights=W4, factors=(Sig(3, "j", a0), *legs, H[1], H[2], H[3]),
                name="chain.HHH"),
        *(MapTerm(sp.Integer(1), weights=W4,
                  factors=(Sig(2, "j", a0), *legs, dH(p, q), H[r]), name=f"chain.dH{p}{q}.H{r}")
          for p, q, r in ((1, 2, 3), (1, 3, 2), (2, 3, 1))),
        MapTerm(sp.Integer(1), weights=W4,
                factors=(Sig(1, "j", a0), *legs, Low("ddI", ("j", "k1", "k2", "k3"), s)),
                name="chain.ddI"),
    ]
    for m, p, q in ((1, 2, 3), (2, 1, 3), (3, 1, 2)):  # top-layer weight along direction m
        base = dict(deltas=((0, m),), averaged=("j",), weights=((p, f"k{p}"), (q, f"k{q}")))
        rest = (Sig(0, "j", s[m]), Sig(1, f"k{p}", s[p]), Sig(1, f"k{q}", s[q]))
        terms.append(MapTerm(lam_W, **base, factors=(Sig(2, "j", a0), *rest, H[p], H[q]),
                             name=f"lambda_W.{m}.HH"))
        terms.append(MapTerm(lam_W, **base, factors=(Sig(1, "j", a0), *rest, dH(p, q)),
                             name=f"lambda_W.{m}.dH"))
    return tuple(terms)


def _ddII_map(s: tuple[str, ...]) -> tuple[MapTerm, ...]:
    """ddÎÎ^{(ℓ+1)}_{i1i2i3i4;α1..α4} = Σ λλλ ∂_{μ1}∂_{μ2}z_{i1} ∂_{μ1}∂_{μ3}z_{i2} ∂_{μ2}z_{i3} ∂_{μ3}z_{i4}.

    Internal indices: j (z_{i1}), m (z_{i2}), p (z_{i3}), q (z_{i4}); a top-layer weight can
    carry μ1 (δ_{i1i2}), μ2 (δ_{i1i3}), μ3 (δ_{i2i4}) or μ2 and μ3 together.
    """
    a1, a2, a3, a4 = s
    W4 = ((0, "j"), (1, "m"), (2, "p"), (3, "q"))
    pq = (Sig(1, "p", a3), Sig(1, "q", a4))
    Hjp, Hmq, Hjm = (Low("H", ("j", "p"), (a1, a3)), Low("H", ("m", "q"), (a2, a4)),
                     Low("H", ("j", "m"), (a1, a2)))
    dH_m = Low("dH", ("m", "j", "q"), (a2, a1, a4))  # Σ ∂μ1∂μ3 z_m ∂μ1 z_j ∂μ3 z_q
    dH_j = Low("dH", ("j", "m", "p"), (a1, a2, a3))  # Σ ∂μ1∂μ2 z_j ∂μ1 z_m ∂μ2 z_p
    one = sp.Integer(1)
    return (
        MapTerm(one, weights=W4, factors=(Sig(2, "j", a1), Sig(2, "m", a2), *pq, Hjp, Hmq, Hjm),
                name="chain.HHH"),
        MapTerm(one, weights=W4, factors=(Sig(2, "j", a1), Sig(1, "m", a2), *pq, Hjp, dH_m),
                name="chain.H.dH"),
        MapTerm(one, weights=W4, factors=(Sig(1, "j", a1), Sig(2, "m", a2), *pq, Hmq, dH_j),
                name="chain.dH.H"),
        MapTerm(one, weights=W4, factors=(Sig(1, "j", a1), Sig(1, "m", a2), *pq,
                                          Low("ddII", ("j", "m", "p", "q"), s)), name="chain.ddII"),
        # μ1 on a top-layer weight: δ_{i1i2}, j = m
        MapTerm(lam_W, deltas=((0, 1),), averaged=("j",), weights=((2, "p"), (3, "q")),
                factors=(Sig(1, "j", a1), Sig(1, "j", a2), *pq, Low("H", ("j", "p"), (a1, a3)),
                         Low("H", ("j", "q"), (a2, a4))), name="lambda_W.mu1"),
        # μ2 and μ3 on top-layer weights: δ_{i1i3} δ_{i2i4}
        MapTerm(lam_W**2, deltas=((0, 2), (1, 3)), averaged=("j", "m"),
                factors=(Sig(1, "j", a1), Sig(0, "j", a3), Sig(1, "m", a2), Sig(0, "m", a4), Hjm),
                name="lambda_W2.mu2mu3"),
        # μ2 on a top-layer weight: δ_{i1i3}, p = j
        MapTerm(lam_W, deltas=((0, 2),), averaged=("j",), weights=((1, "m"), (3, "q")),
                factors=(Sig(1, "j", a1), Sig(0, "j", a3), Sig(2, "m", a2), Sig(1, "q", a4),
                         Hmq, Hjm), name="lambda_W.mu2.HH"),
        MapTerm(lam_W, deltas=((0, 2),), averaged=("j",), weights=((1, "m"), (3, "q")),
                factors=(Sig(1, "j", a1), Sig(0, "j", a3), Sig(1, "m", a2), Sig(1, "q", a4), dH_m),
                name="lambda_W.mu2.dH"),
        # μ3 on a top-layer weight: δ_{i2i4}, q = m
        MapTerm(lam_W, deltas=((1, 3),), averaged=("m",), weights=((0, "j"), (2, "p")),
                factors=(Sig(1, "m", a2), Sig(0, "m", a4), Sig(2, "j", a1), Sig(1, "p", a3),
                         Hjp, Hjm), name="lambda_W.mu3.HH"),
        MapTerm(lam_W, deltas=((1, 3),), averaged=("m",), weights=((0, "j"), (2, "p")),
                factors=(Sig(1, "m", a2), Sig(0, "m", a4), Sig(1, "j", a1), Sig(1, "p", a3), dH_j),
                name="lambda_W.mu3.dH"),
    )


class _Correlators(Mapping):
    """The defining correlators of the declared statistics (a live view of the registry)."""

    def __getitem__(self, name: str) -> Correlator:
        return REGISTRY[name].correlator

    def __iter__(self):
        return iter(tuple(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)

    def __repr__(self) -> str:
        return repr(dict(self))


CORRELATORS: Mapping[str, Correlator] = _Correlators()
"""Defining correlators (MATH.md §3) of the statistics the engine derives: read from
:data:`feyntk.spec.statistic.REGISTRY`, where each statistic is declared once."""
