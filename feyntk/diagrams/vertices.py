"""The layer-ℓ interaction vertices (insertions) of the 1/n expansion, derived from declarations.

Each :class:`Insertion` is one connected cumulant of layer-ℓ fields at one order 1/n_{ℓ-1}^k
(MATH.md §3–4, §7; k = :attr:`Insertion.order`: V and K¹ at k = 1; K² and V¹, the corrections
of the two- and four-leg vertices, and the six-leg V6 at k = 2). Its legs are ``z`` legs (each
acts as ∂/∂z on the blob it attaches to, with a dummy sample ``g<k>``) and NTK-type legs (each
consumes one ``H``/``dH``/... factor). Its value is a sum of Kronecker-δ terms over the neurons
its legs reach; each term names a layer-ℓ tensor and the order of its sample indices. Neuron
references: ``z<k>`` is the blob of z-leg k, ``H<k>.<m>`` slot m of the k-th H leg; sample
references ``g<k>`` and ``H<k>.s<m>``.

Nothing here is typed by hand: :func:`insertions` derives the vertices from the statistics of
:data:`feyntk.spec.statistic.REGISTRY`. A statistic of order k ≥ 1 whose neurons pair up (every
neuron label occurs exactly twice, like ``H_{ij} z_{i} z_{j}``) is one δ-term of the vertex of its
field kinds at order k; the vertex's δ-terms are the perfect matchings of its legs' neuron slots,
each matched by exactly one declared statistic (up to field order, field symmetries and neuron
names), which fixes the order of the tensor's sample indices. A matching that no statistic
covers, or that two cover, is refused (:class:`~feyntk.errors.SpecError`): this is the
consistency check of the declarations as a whole. Other statistics (order 0, or a neuron that
occurs more than twice, as in ``H_{ii} z_{i} z_{i}``) are derived but are not vertices.

Leading-order means (:func:`means`) give the O(1) value of an NTK-type factor that no insertion
consumes: an order-0 statistic that is the mean of one field on one neuron (``E[Ĥ_{jk}] =
δ_{jk} Θ``); all other kinds have zero mean.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from feyntk.diagrams.expand import perfect_matchings
from feyntk.errors import SpecError
from feyntk.spec.statistic import (FIELD_KINDS, REGISTRY, External, Statistic, alignments,
                                   registry_token)


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
    order: int = 1
    """Its order in 1/n_{ℓ-1} (1: V, K¹, …; 2: K², V¹, V6)."""

    @property
    def z_legs(self) -> int:
        return sum(1 for k in self.legs if k == "z")

    @property
    def tensors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.tensor for t in self.terms))


def leg_refs(legs: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Neuron refs and sample refs of the legs, in leg order (see the module docstring)."""
    slots, samples, count = [], [], {}
    for kind in legs:
        k = count.get(kind, 0)
        count[kind] = k + 1
        if kind == "z":
            slots.append(f"z{k}")
            samples.append(f"g{k}")
        else:
            slots += [f"{kind}{k}.{m}" for m in range(FIELD_KINDS[kind].rank)]
            samples += [f"{kind}{k}.s{m}" for m in range(FIELD_KINDS[kind].rank)]
    return slots, samples


def is_vertex(stat: Statistic) -> bool:
    """Order ≥ 1 and every neuron label on exactly two slots: a δ-term of a layer-ℓ vertex."""
    fields = stat.correlator.fields
    return stat.order >= 1 and all(sum(f.labels.count(x) for f in fields) == 2
                                   for x in stat.labels)


def legs_of(stat: Statistic) -> tuple[str, ...]:
    """The vertex's legs: NTK-type kinds first (in MATH.md order), then the z legs."""
    kinds = [f.kind for f in stat.correlator.fields]
    order = list(FIELD_KINDS)
    ntk = sorted((k for k in kinds if k != "z"), key=order.index)
    return tuple(ntk) + ("z",) * kinds.count("z")


def _leg_fields(legs, matching) -> tuple[External, ...]:
    """The legs as fields whose neuron labels are the matching's pairs and samples the refs."""
    slots, samples = leg_refs(legs)
    pair = {s: str(k) for k, (a, b) in enumerate(matching) for s in (a, b)}
    out, pos = [], 0
    for kind in legs:
        r = FIELD_KINDS[kind].rank
        out.append(External(kind, tuple(pair[s] for s in slots[pos:pos + r]),
                            tuple(samples[pos:pos + r])))
        pos += r
    return tuple(out)


def _delta_term(stat: Statistic, legs, matching) -> DeltaTerm | None:
    """The δ-term of ``stat`` for one matching of the legs' slots, or None if it is not its."""
    targets = _leg_fields(legs, matching)
    for perm, images, _ in alignments(stat.correlator.fields, targets):
        sample = {s: t for img, k in zip(images, perm)
                  for s, t in zip(img.samples, targets[k].samples)}
        return DeltaTerm(tuple(matching), stat.name, tuple(sample[a] for a in stat.output))
    return None


@functools.lru_cache(maxsize=16)
def _derive(token: int) -> tuple[tuple[Insertion, ...], dict[str, str]]:
    stats = list(REGISTRY.values())
    groups: dict[tuple[tuple[str, ...], int], list[Statistic]] = {}
    for s in stats:
        if is_vertex(s):
            groups.setdefault((legs_of(s), s.order), []).append(s)
    out = []
    for (legs, order), members in groups.items():
        terms = []
        for m, matching in enumerate(perfect_matchings(leg_refs(legs)[0])):
            found = [(stats.index(s), m, t) for s in members
                     if (t := _delta_term(s, legs, matching)) is not None]
            if not found:
                raise SpecError(
                    f"the layer-ℓ vertex with legs {legs} at order 1/n^{order} has the neuron "
                    "pattern "
                    f"{' '.join(f'δ({a},{b})' for a, b in matching)}, but none of the declared "
                    f"statistics {[s.name for s in members]} is that pattern: declare it, "
                    "or the recursions would miss its contributions")
            if len(found) > 1:
                raise SpecError(
                    f"the neuron pattern {matching} of the vertex with legs {legs} is declared "
                    f"twice: {[stats[i].name for i, _, _ in found]}")
            terms.append(found[0])
        terms = tuple(t for _, _, t in sorted(terms, key=lambda x: x[:2]))
        name = "".join(dict.fromkeys(t.tensor for t in terms))
        out.append(Insertion(name, legs, terms, order))
    means = {}
    for s in stats:
        fields = s.correlator.fields
        if s.order == 0 and len(fields) == 1 and len(s.labels) == 1 and fields[0].kind != "z":
            means.setdefault(fields[0].kind, s.name)
    return tuple(out), means


def insertions() -> tuple[Insertion, ...]:
    """Every vertex of layer ℓ (orders 1/n, 1/n², …), derived from the declared statistics."""
    return _derive(registry_token())[0]


def means() -> dict[str, str]:
    """Leading-order means of NTK-type fields (diagonal only); kinds not listed have zero mean."""
    return dict(_derive(registry_token())[1])


def __getattr__(name):  # the tables as module attributes, derived on access
    if name == "INSERTIONS":
        return insertions()
    if name == "MEANS":
        return means()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
