"""The layer-ℓ interaction vertices (insertions) of the 1/n expansion, as a declarative table.

Each :class:`Insertion` is one connected cumulant of layer-ℓ fields at order 1/n_{ℓ-1}
(MATH.md §3–4): its legs are ``z`` legs (each acts as ∂/∂z on the blob it attaches to, with a
dummy sample ``g<k>``) and NTK-type legs (each consumes one ``H``/``dH``/... factor). Its value is
a sum of Kronecker-δ terms over the neurons its legs reach; each term names a layer-ℓ tensor and
the order of its sample indices. Neuron references: ``z<k>`` is the blob of z-leg k,
``H<k>.<m>`` slot m of the k-th H leg; sample references ``g<k>`` and ``H<k>.s<m>``.

Leading-order means (:data:`MEANS`) give the O(1) value of an NTK-type factor that no
insertion consumes: ``E[Ĥ_{jk}] = δ_{jk} Θ``, all others vanish.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeltaTerm:
    """``Π δ(pairs) · tensor[index]``: neuron refs that must coincide, tensor, sample refs."""

    pairs: tuple[tuple[str, str], ...]
    tensor: str
    index: tuple[str, ...]


@dataclass(frozen=True)
class Insertion:
    """A layer-ℓ vertex: leg kinds and δ-terms (the cumulant's neuron structure)."""

    name: str
    legs: tuple[str, ...]
    terms: tuple[DeltaTerm, ...]

    @property
    def z_legs(self) -> int:
        return sum(1 for k in self.legs if k == "z")

    @property
    def tensors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.tensor for t in self.terms))


INSERTIONS: tuple[Insertion, ...] = (
    Insertion("K1", ("z", "z"), (DeltaTerm((("z0", "z1"),), "K1", ("g0", "g1")),)),
    Insertion("V", ("z",) * 4, tuple(
        DeltaTerm(p, "V", tuple(f"g{i}" for i in idx)) for p, idx in (
            ((("z0", "z1"), ("z2", "z3")), (0, 1, 2, 3)),
            ((("z0", "z2"), ("z1", "z3")), (0, 2, 1, 3)),
            ((("z0", "z3"), ("z1", "z2")), (0, 3, 1, 2))))),
    Insertion("Theta1", ("H",), (DeltaTerm((("H0.0", "H0.1"),), "Theta1", ("H0.s0", "H0.s1")),)),
    Insertion("AB", ("H", "H"), (
        DeltaTerm((("H0.0", "H0.1"), ("H1.0", "H1.1")), "A", ("H0.s0", "H0.s1", "H1.s0", "H1.s1")),
        DeltaTerm((("H0.0", "H1.0"), ("H0.1", "H1.1")), "B", ("H0.s0", "H1.s0", "H0.s1", "H1.s1")),
        DeltaTerm((("H0.0", "H1.1"), ("H0.1", "H1.0")), "B", ("H0.s0", "H1.s1", "H0.s1", "H1.s0")))),
    Insertion("DF", ("H", "z", "z"), (
        DeltaTerm((("H0.0", "H0.1"), ("z0", "z1")), "D", ("H0.s0", "H0.s1", "g0", "g1")),
        DeltaTerm((("H0.0", "z0"), ("H0.1", "z1")), "F", ("H0.s0", "g0", "H0.s1", "g1")),
        DeltaTerm((("H0.0", "z1"), ("H0.1", "z0")), "F", ("H0.s0", "g1", "H0.s1", "g0")))),
    Insertion("PQ", ("dH", "z"), (
        DeltaTerm((("dH0.0", "z0"), ("dH0.1", "dH0.2")), "P",
                  ("dH0.s0", "dH0.s1", "dH0.s2", "g0")),
        DeltaTerm((("dH0.0", "dH0.1"), ("dH0.2", "z0")), "Q",
                  ("dH0.s0", "dH0.s1", "dH0.s2", "g0")),
        DeltaTerm((("dH0.0", "dH0.2"), ("dH0.1", "z0")), "Q",
                  ("dH0.s0", "dH0.s2", "dH0.s1", "g0")))),
    Insertion("R", ("ddI",), (
        DeltaTerm((("ddI0.0", "ddI0.1"), ("ddI0.2", "ddI0.3")), "R",
                  ("ddI0.s0", "ddI0.s1", "ddI0.s2", "ddI0.s3")),
        DeltaTerm((("ddI0.0", "ddI0.2"), ("ddI0.3", "ddI0.1")), "R",
                  ("ddI0.s0", "ddI0.s2", "ddI0.s3", "ddI0.s1")),
        DeltaTerm((("ddI0.0", "ddI0.3"), ("ddI0.1", "ddI0.2")), "R",
                  ("ddI0.s0", "ddI0.s3", "ddI0.s1", "ddI0.s2")))),
    Insertion("STU", ("ddII",), (
        DeltaTerm((("ddII0.0", "ddII0.1"), ("ddII0.2", "ddII0.3")), "S",
                  ("ddII0.s0", "ddII0.s1", "ddII0.s2", "ddII0.s3")),
        DeltaTerm((("ddII0.0", "ddII0.2"), ("ddII0.1", "ddII0.3")), "T",
                  ("ddII0.s0", "ddII0.s1", "ddII0.s2", "ddII0.s3")),
        DeltaTerm((("ddII0.0", "ddII0.3"), ("ddII0.1", "ddII0.2")), "U",
                  ("ddII0.s0", "ddII0.s1", "ddII0.s2", "ddII0.s3")))),
)
"""Every order-1/n vertex of layer ℓ. Adding a statistic adds one entry here."""

MEANS = {"H": "Theta"}
"""Leading-order means of NTK-type fields (diagonal only); kinds not listed have zero mean."""
