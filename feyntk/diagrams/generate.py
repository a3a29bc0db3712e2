"""Step 2, *generate*: split neuron sums into distinct neurons and insert layer-ℓ vertices.

Each :class:`~feyntk.diagrams.expand.Contraction` sums its vertices' neuron indices freely over
n_ℓ values. Splitting the sum by which indices coincide gives *blocks* (distinct neurons: the
paper's propagators, or blobs) with a falling-factorial count
``n_ℓ(n_ℓ-1)…(n_ℓ-p+1) = n_ℓ^p − C(p,2) n_ℓ^{p-1} + …``. The layer-ℓ expectation of the product
over blocks is then expanded to first order in 1/n_{ℓ-1} by inserting at most one vertex of
:func:`~feyntk.diagrams.vertices.insertions`.

Every labelled choice (blocks, insertion, leg assignment, δ-term) is a :class:`Candidate` with
a weight (1/k! for k identical legs of one kind). Its value is a list of :class:`Term`s: the
main product and, at Gaussian order, the falling-factorial corrections ``−⟨F_{b1}⟩⟨F_{b2}⟩``
for every way of splitting a block in two (this is what makes a blob a cumulant, e.g.
``⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩``). Power counting of a candidate (in units of 1/n):
``order = #vertices − #blocks + #insertions``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import sympy as sp

from feyntk.diagrams.expand import Contraction
from feyntk.diagrams.fields import RATIO, Low, Sig
from feyntk.diagrams.vertices import DeltaTerm, Insertion, insertions, means


@dataclass(frozen=True)
class Blob:
    """A Gaussian expectation ⟨∂_{legs} Π_m σ^{(k_m)}(z_{s_m})⟩_K on one neuron.

    Attributes:
        sigs: ``(k, sample)`` pairs, sorted.
        legs: dummy samples of the z-legs acting as derivatives on this blob.
    """

    sigs: tuple[tuple[int, str], ...]
    legs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Term:
    """``weight · coeff · tensor[index] · Π means · Π blobs`` (dummies ``g*`` summed)."""

    weight: sp.Rational
    coeff: sp.Expr
    tensor: tuple[str, tuple[str, ...]] | None
    means: tuple[tuple[str, tuple[str, ...]], ...]
    blobs: tuple[Blob, ...]


@dataclass(frozen=True)
class Candidate:
    """A labelled diagram before grouping.

    Attributes:
        contraction: the Wick contraction it comes from.
        blocks: vertex indices of each distinct neuron.
        insertion, delta: the inserted layer-ℓ vertex and its δ-term (None at Gaussian order).
        legs: per insertion leg, a block index (z-leg) or a factor index (NTK-type leg).
        weight: combinatorial weight of this labelled choice.
    """

    contraction: Contraction
    blocks: tuple[tuple[int, ...], ...]
    insertion: Insertion | None = None
    delta: DeltaTerm | None = None
    legs: tuple[int, ...] = ()
    weight: sp.Rational = sp.Integer(1)

    @property
    def order(self) -> int:
        return len(self.contraction.vertices) - len(self.blocks) + (self.insertion is not None)

    def block_of_vertex(self) -> dict[int, int]:
        return {v: b for b, vs in enumerate(self.blocks) for v in vs}

    def block_of_var(self, var: str) -> int:
        return self.block_of_vertex()[self.contraction.vertex_of[var]]

    def consumed(self) -> set[int]:
        """Indices of NTK-type factors consumed by the insertion."""
        if self.insertion is None:
            return set()
        return {f for k, f in zip(self.insertion.legs, self.legs) if k != "z"}

    def leg_refs(self) -> dict[str, tuple]:
        """Resolve the insertion's neuron refs to blocks and sample refs to labels."""
        ins, c = self.insertion, self.contraction
        refs: dict[str, tuple] = {}
        counts: dict[str, int] = {}
        for kind, target in zip(ins.legs, self.legs):
            k = counts.get(kind, 0)
            counts[kind] = k + 1
            if kind == "z":
                refs[f"z{k}"] = ("block", target)
                refs[f"g{k}"] = ("sample", f"g{k}")
            else:
                fac = c.factors[target]
                for m, (v, s) in enumerate(zip(fac.vars, fac.samples)):
                    refs[f"{kind}{k}.{m}"] = ("block", self.block_of_var(v))
                    refs[f"{kind}{k}.s{m}"] = ("sample", s)
        return refs


def set_partitions(items: list) -> list[list[list]]:
    """All set partitions of a list."""
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in set_partitions(rest):
        out.append([[first]] + part)
        for i in range(len(part)):
            out.append(part[:i] + [[first] + part[i]] + part[i + 1:])
    return out


def _leg_assignments(c: Contraction, nblocks: int, ins: Insertion):
    """All ordered assignments of the insertion's legs (z -> block, NTK leg -> factor)."""
    choices = []
    for kind in ins.legs:
        if kind == "z":
            choices.append(range(nblocks))
        else:
            choices.append([i for i, f in enumerate(c.factors)
                            if isinstance(f, Low) and f.kind == kind])
    for combo in itertools.product(*choices):
        fl = [t for k, t in zip(ins.legs, combo) if k != "z"]
        if len(set(fl)) == len(fl):
            yield combo


def _leg_weight(ins: Insertion) -> sp.Rational:
    counts: dict[str, int] = {}
    for k in ins.legs:
        counts[k] = counts.get(k, 0) + 1
    return sp.Rational(1, math.prod(math.factorial(n) for n in counts.values()))


def generate(c: Contraction, order: int):
    """All candidates of one contraction whose power counting equals ``order``.

    Power counting is pushed down here (it fixes the number of blocks); the other selection
    rules are applied by :mod:`feyntk.diagrams.select`.
    """
    nv = len(c.vertices)
    for part in set_partitions(list(range(nv))):
        blocks = tuple(tuple(b) for b in part)
        p = len(blocks)
        if nv - p == order:
            yield Candidate(c, blocks)
        if nv - p + 1 == order:
            for ins in insertions():
                w = _leg_weight(ins)
                for legs in _leg_assignments(c, p, ins):
                    for delta in ins.terms:
                        yield Candidate(c, blocks, ins, delta, tuple(legs), w)


# -- values --------------------------------------------------------------------------------
def _means(cand: Candidate, blocks_of_var) -> tuple | None:
    """Means of the unconsumed NTK-type factors, or None if one vanishes."""
    out = []
    used = cand.consumed()
    mean_of = means()
    for i, f in enumerate(cand.contraction.factors):
        if isinstance(f, Low) and i not in used:
            if f.kind not in mean_of or len({blocks_of_var(v) for v in f.vars}) != 1:
                return None
            out.append((mean_of[f.kind], tuple(f.samples)))
    return tuple(out)


def _blobs(cand: Candidate, groups: list[tuple[int, ...]], legs_by_block) -> tuple[Blob, ...]:
    c = cand.contraction
    vb = {v: b for b, vs in enumerate(groups) for v in vs}
    vo = c.vertex_of
    sigs: dict[int, list] = {b: [] for b in range(len(groups))}
    for f in c.factors:
        if isinstance(f, Sig):
            sigs[vb[vo[f.var]]].append((f.k, f.sample))
    return tuple(Blob(tuple(sorted(sigs[b])), tuple(legs_by_block.get(b, ())))
                 for b in range(len(groups)))


def candidate_terms(cand: Candidate) -> list[Term]:
    """The value of a candidate as a list of terms (empty if it vanishes)."""
    c = cand.contraction
    coeff = c.coeff
    if cand.insertion is None:
        return _gaussian_terms(cand)
    refs = cand.leg_refs()
    legs_by_block: dict[int, list[str]] = {}
    for kind, target, name in zip(cand.insertion.legs, cand.legs, _leg_names(cand.insertion)):
        if kind == "z":
            legs_by_block.setdefault(target, []).append(refs[f"g{name}"][1])
    means = _means(cand, cand.block_of_var)
    if means is None:
        return []
    index = tuple(refs[r][1] for r in cand.delta.index)
    blobs = _blobs(cand, list(cand.blocks), legs_by_block)
    return [Term(cand.weight, coeff * RATIO, (cand.delta.tensor, index), means, blobs)]


def _leg_names(ins: Insertion):
    counts: dict[str, int] = {}
    for kind in ins.legs:
        k = counts.get(kind, 0)
        counts[kind] = k + 1
        yield k


def _gaussian_terms(cand: Candidate) -> list[Term]:
    c = cand.contraction
    vo = c.vertex_of
    out = []

    def term(groups, weight):
        vb = {v: b for b, vs in enumerate(groups) for v in vs}
        means = _means(cand, lambda var: vb[vo[var]])
        if means is None:
            return None
        return Term(weight, c.coeff, None, means, _blobs(cand, groups, {}))

    main = term(list(cand.blocks), cand.weight)
    if main is not None:
        out.append(main)
    for bi, block in enumerate(cand.blocks):
        if len(block) < 2:
            continue
        first, rest = block[0], block[1:]
        for r in range(len(rest)):  # unordered bipartitions: first stays in part one
            for other in itertools.combinations(rest, r):
                one = (first, *other)
                two = tuple(v for v in rest if v not in other)
                groups = list(cand.blocks[:bi]) + [one, two] + list(cand.blocks[bi + 1:])
                t = term(groups, -cand.weight)
                if t is not None:
                    out.append(t)
    return out
