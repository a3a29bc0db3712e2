"""The diagram pipeline for one statistic: expand → generate → select → weigh.

:func:`diagrams` returns the diagrams of a statistic's recursion at its declared order (leading,
1/n or 1/n²) as :class:`Diagram` objects: a representative term, the symmetry factor from
automorphisms, the brute-force weight of its class, and the coloured graph (drawn by
:mod:`feyntk.diagrams.draw`).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace

import networkx as nx
import sympy as sp

from feyntk.diagrams.expand import expand
from feyntk.diagrams.fields import Correlator
from feyntk.diagrams.generate import Candidate, Term, candidate_terms, generate
from feyntk.diagrams.select import Selector
from feyntk.diagrams.symmetry import automorphisms, group
from feyntk.errors import NotAvailableError
from feyntk.spec.statistic import REGISTRY, lookup, registry_token, second_order


@dataclass(frozen=True)
class Diagram:
    """One diagram of a statistic's recursion.

    Attributes:
        statistic: the statistic at layer ℓ+1 it contributes to.
        terms: its value, from the representative candidate, weights multiplied by the class
            multiplicity (dummies ``g*`` summed; blobs are Gaussian expectations at K^{(ℓ)}).
        symmetry: ``1/|Aut|`` from the coloured graph.
        weight: brute-force weight: the sum of the labelled candidates' weights in the class.
        members: number of labelled candidates in the class.
        kind: ``"gaussian"`` or the inserted layer-ℓ tensor(s).
    """

    statistic: str
    terms: tuple[Term, ...]
    symmetry: sp.Rational
    weight: sp.Rational
    members: int
    kind: str
    graph: nx.Graph = field(repr=False, compare=False, hash=False)
    candidate: Candidate = field(repr=False, compare=False, hash=False, default=None)

    @property
    def tensors(self) -> tuple[str, ...]:
        """Layer-ℓ tensors this diagram reads (K implicitly through every blob)."""
        out = []
        for t in self.terms:
            out += [name for name, _ in t.tensors]
            out += [m[0] for m in t.means]
        return tuple(dict.fromkeys(out))

    def _repr_png_(self):  # pragma: no cover - notebook hook
        from feyntk.diagrams.draw import to_png_bytes

        return to_png_bytes(self)

    def draw(self, ax=None):
        """Draw on a matplotlib axis (see :mod:`feyntk.diagrams.draw` for the conventions)."""
        from feyntk.diagrams.draw import draw

        return draw(self, ax)


def correlator(name: str) -> Correlator:
    """The defining correlator of a declared statistic (:mod:`feyntk.spec.statistic`; the
    second-order ones of :data:`~feyntk.spec.statistic.SECOND_ORDER` included)."""
    stat = lookup(name)
    if stat is None:
        raise NotAvailableError(
            f"the diagram engine does not derive {name!r} yet; derivable: "
            f"{', '.join(REGISTRY)}") from None
    return stat.correlator


def declared(name: str):
    """A context in which ``name`` is in the registry: :func:`~feyntk.spec.statistic.second_order`
    for a second-order statistic not declared by default (its recursion needs the order-1/n²
    vertices), else nothing to do."""
    correlator(name)
    return contextlib.nullcontext() if name in REGISTRY else second_order()


def candidates(name: str, selector: Selector | None = None) -> list[Candidate]:
    """All labelled candidates of a statistic that pass the selection rules."""
    corr = correlator(name)
    sel = selector or Selector()
    with declared(name):
        return [cand for c in expand(corr) for cand in generate(c, corr.order)
                if sel.keep(cand)]


def diagrams(name: str) -> tuple[Diagram, ...]:
    """The diagrams of statistic ``name`` (default selection rules), grouped and weighed.

    Cached per state of the registry (:func:`feyntk.spec.statistic.registry_token`)."""
    with declared(name):
        return _diagrams(name, registry_token())


@functools.lru_cache(maxsize=128)
def _diagrams(name: str, token: int) -> tuple[Diagram, ...]:
    out = []
    for rep, G, members in group(candidates(name)):
        terms = candidate_terms(rep)
        if not terms:
            continue
        weight = sum((m.weight for m in members), sp.Integer(0))
        scale = weight / rep.weight
        kind = "·".join(i.delta.tensor for i in rep.inserted) or "gaussian"
        out.append(Diagram(name, tuple(replace(t, weight=t.weight * scale) for t in terms),
                           sp.Rational(1, automorphisms(G)), weight, len(members), kind, G,
                           rep))
    order = {"gaussian": 0}
    out.sort(key=lambda d: (order.get(d.kind, 1), d.kind, str(d.terms)))
    return tuple(out)


def sigma_order_needed(name: str, form: str = "derivative") -> int:
    """Highest σ-derivative the recursion of ``name`` needs as an ordinary function.

    ``derivative`` form: a blob's σ^{(k)} plus one derivative per leg on it; ``inverse-metric``:
    the blob's own σ^{(k)} only (its legs become Hermite polynomials).
    """
    legs = form == "derivative"
    return max((max((k for k, _ in b.sigs), default=0) + (len(b.legs) if legs else 0)
                for d in diagrams(name) for t in d.terms for b in t.blobs), default=0)
