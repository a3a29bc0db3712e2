"""Step 2, *generate*: split neuron sums into distinct neurons and insert layer-ℓ vertices.

Each :class:`~feyntk.diagrams.expand.Contraction` sums its vertices' neuron indices freely over
n_ℓ values. Splitting the sum by which indices coincide gives *blocks* (distinct neurons: the
paper's propagators, or blobs) with a falling-factorial count
``n_ℓ(n_ℓ-1)…(n_ℓ-p+1) = n_ℓ^p − C(p,2) n_ℓ^{p-1} + …``. The layer-ℓ expectation of the product
over blocks is then expanded in 1/n_{ℓ-1} by inserting products of the vertices of
:func:`~feyntk.diagrams.vertices.insertions` (the Gram–Charlier series ``exp(Σ vertices)``: one
vertex at order 1/n, one order-1/n² vertex or two order-1/n ones at 1/n², …).

The expansion order is a parameter: every labelled choice (blocks, inserted vertices, leg
assignments, δ-terms) is a :class:`Candidate` whose power counting (in units of 1/n)
``order = #vertices − #blocks + Σ orders of the inserted vertices`` equals the statistic's order,
with a weight (1/k! for k identical legs of one kind, 1/k! for k inserted vertices). Its value is
a list of :class:`Term`s: the sum over the refinements of its blocks with Möbius weights
(:func:`refinements`, the falling factorials to all orders; at order 1/n the corrections
``−⟨F_{b1}⟩⟨F_{b2}⟩`` for every way of splitting a block in two, which make a blob a cumulant,
e.g. ``⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import sympy as sp

from feyntk.diagrams.expand import Contraction
from feyntk.diagrams.fields import RATIO, Low, Sig
from feyntk.diagrams.vertices import DeltaTerm, Insertion, insertions, means
from feyntk.errors import NotAvailableError


@dataclass(frozen=True)
class Blob:
    """A Gaussian expectation ⟨∂_{legs} Π_m σ^{(k_m)}(z_{s_m})⟩_K on one neuron.

    Attributes:
        sigs: ``(k, sample)`` pairs, sorted.
        legs: dummy samples of the z-legs acting as derivatives on this blob.
    """

    sigs: tuple[tuple[int, str], ...]
    legs: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class Term:
    """``weight · coeff · Π tensors[index] · Π means · Π blobs`` (dummies ``g*`` summed).

    ``tensors`` holds one entry per inserted layer-ℓ vertex (none at Gaussian order, two for a
    product of two order-1/n vertices at order 1/n²). :attr:`tensor` is the single one, for
    consumers that handle at most one vertex per term: it refuses terms with two.
    """

    weight: sp.Rational
    coeff: sp.Expr
    tensors: tuple[tuple[str, tuple[str, ...]], ...]
    means: tuple[tuple[str, tuple[str, ...]], ...]
    blobs: tuple[Blob, ...]

    @property
    def tensor(self) -> tuple[str, tuple[str, ...]] | None:
        if len(self.tensors) > 1:
            raise NotAvailableError(
                f"this diagram term reads {len(self.tensors)} layer-ℓ tensors "
                f"({', '.join(t for t, _ in self.tensors)}): a product of vertices at order "
                "1/n²; evaluate it with feyntk.numbers.second_order")
        return self.tensors[0] if self.tensors else None

    def __repr__(self) -> str:  # the dataclass repr of one tensor per term (stable sort keys)
        if len(self.tensors) <= 1:
            head = f"tensor={self.tensor!r}"
        else:
            head = f"tensors={self.tensors!r}"
        return (f"Term(weight={self.weight!r}, coeff={self.coeff!r}, {head}, "
                f"means={self.means!r}, blobs={self.blobs!r})")


@dataclass(frozen=True)
class Inserted:
    """One inserted layer-ℓ vertex of a candidate.

    Attributes:
        insertion: the vertex (:class:`~feyntk.diagrams.vertices.Insertion`).
        delta: the δ-term chosen.
        legs: per leg, a block index (z-leg) or a factor index (NTK-type leg).
        offset: number of z-legs of the vertices inserted before it (its dummy samples are
            ``g<offset>``, ``g<offset+1>``, …).
    """

    insertion: Insertion
    delta: DeltaTerm
    legs: tuple[int, ...]
    offset: int = 0


@dataclass(frozen=True)
class Candidate:
    """A labelled diagram before grouping.

    Attributes:
        contraction: the Wick contraction it comes from.
        blocks: vertex indices of each distinct neuron (the coarse partition σ of the
            falling-factorial expansion, see :func:`candidate_terms`).
        inserted: the inserted layer-ℓ vertices (none at Gaussian order; a product of several
            at higher order).
        weight: combinatorial weight of this labelled choice.
    """

    contraction: Contraction
    blocks: tuple[tuple[int, ...], ...]
    inserted: tuple[Inserted, ...] = ()
    weight: sp.Rational = sp.Integer(1)

    @property
    def insertion(self) -> Insertion | None:
        """The first inserted vertex (the only one at order 1/n), or None."""
        return self.inserted[0].insertion if self.inserted else None

    @property
    def delta(self) -> DeltaTerm | None:
        return self.inserted[0].delta if self.inserted else None

    @property
    def legs(self) -> tuple[int, ...]:
        return self.inserted[0].legs if self.inserted else ()

    @property
    def order(self) -> int:
        """Power counting in units of 1/n: vertices − blocks + the inserted vertices' orders."""
        return (len(self.contraction.vertices) - len(self.blocks)
                + sum(i.insertion.order for i in self.inserted))

    def block_of_vertex(self) -> dict[int, int]:
        return {v: b for b, vs in enumerate(self.blocks) for v in vs}

    def block_of_var(self, var: str) -> int:
        return self.block_of_vertex()[self.contraction.vertex_of[var]]

    def consumed(self) -> set[int]:
        """Indices of NTK-type factors consumed by the inserted vertices."""
        return {f for ins in self.inserted
                for k, f in zip(ins.insertion.legs, ins.legs) if k != "z"}

    def leg_refs(self, t: int = 0, block_of_var=None, z_block=None) -> dict[str, tuple]:
        """Resolve the neuron refs of inserted vertex ``t`` to blocks and sample refs to labels.

        ``block_of_var`` and ``z_block`` (leg position -> block) resolve on a finer partition
        than :attr:`blocks` (default: the candidate's own blocks and leg targets)."""
        ins = self.inserted[t]
        c = self.contraction
        bov = block_of_var or self.block_of_var
        refs: dict[str, tuple] = {}
        counts: dict[str, int] = {}
        for pos, (kind, target) in enumerate(zip(ins.insertion.legs, ins.legs)):
            k = counts.get(kind, 0)
            counts[kind] = k + 1
            if kind == "z":
                refs[f"z{k}"] = ("block", target if z_block is None else z_block[pos])
                refs[f"g{k}"] = ("sample", f"g{ins.offset + k}")
            else:
                fac = c.factors[target]
                for m, (v, s) in enumerate(zip(fac.vars, fac.samples)):
                    refs[f"{kind}{k}.{m}"] = ("block", bov(v))
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


def vertex_products(order: int, table=None) -> list[tuple[Insertion, ...]]:
    """Ordered tuples of layer-ℓ vertices whose orders add up to ``order``.

    The layer-ℓ expectation is the Gram–Charlier series ``exp(Σ_vertices)`` acting on Gaussian
    blobs, so k vertices come with ``1/k!`` over ordered tuples (:func:`generate`). Order 0: the
    empty product; order 1: each order-1/n vertex; order 2: each order-1/n² vertex and every
    ordered pair of order-1/n vertices."""
    table = insertions() if table is None else table
    if order == 0:
        return [()]
    out = []
    for ins in table:
        if ins.order <= order:
            out += [(ins, *rest) for rest in vertex_products(order - ins.order, table)]
    return out


def generate(c: Contraction, order: int):
    """All candidates of one contraction whose power counting equals ``order``.

    Power counting is pushed down here: a partition of the contraction's vertices into p
    blocks costs ``#vertices − p`` powers of 1/n, and the inserted vertices make up the rest
    (:func:`vertex_products`). The other selection rules are applied by
    :mod:`feyntk.diagrams.select`.
    """
    nv = len(c.vertices)
    for part in set_partitions(list(range(nv))):
        blocks = tuple(tuple(b) for b in part)
        p = len(blocks)
        if nv - p > order:
            continue
        for product in vertex_products(order - (nv - p)):
            if not product:
                yield Candidate(c, blocks)
                continue
            w = sp.Rational(1, math.factorial(len(product)))
            for ins in product:
                w *= _leg_weight(ins)
            per_vertex = [[(legs, delta) for legs in _leg_assignments(c, p, ins)
                           for delta in ins.terms] for ins in product]
            for combo in itertools.product(*per_vertex):
                ntk = [t for ins, (legs, _) in zip(product, combo)
                       for k, t in zip(ins.legs, legs) if k != "z"]
                if len(set(ntk)) != len(ntk):
                    continue  # one NTK-type factor consumed by two vertices
                inserted, offset = [], 0
                for ins, (legs, delta) in zip(product, combo):
                    inserted.append(Inserted(ins, delta, tuple(legs), offset))
                    offset += ins.z_legs
                yield Candidate(c, blocks, tuple(inserted), w)


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


def refinements(blocks: tuple[tuple[int, ...], ...]):
    """The partitions π ≤ σ of the blocks σ with their Möbius weight μ(π, σ), σ itself first.

    Splitting a neuron sum by coinciding indices counts ``(n)_p`` distinct assignments; the
    identity ``(n)_{|π|} = Σ_{σ ≥ π} μ(π, σ) n^{|σ|}`` (μ of the partition lattice:
    ``Π_{B∈σ} (−1)^{k_B−1} (k_B−1)!`` for B split into k_B parts) attributes every power of n
    to a coarser partition σ, so a candidate on σ (power counting by |σ|) carries the values of
    all its refinements. At order 1/n only one block of σ has two vertices (one split, μ = −1:
    ``⟨σσσσ⟩ − ⟨σσ⟩⟨σσ⟩``); at 1/n² a block of three (μ = 2 for the full split) or two pairs.
    Each yield is (groups, μ, parent) with ``parent[g]`` the σ-block of group g; the groups of
    one σ-block stay in place, the one with its first vertex first."""
    per_block = []
    for b in blocks:
        parts = []
        for part in set_partitions(list(b)):
            parts.append(sorted((tuple(x) for x in part), key=lambda x: b.index(x[0])))
        parts.sort(key=len)  # the block itself first
        per_block.append(parts)
    combos = list(itertools.product(*per_block))
    combos.sort(key=lambda cs: sum(len(x) for x in cs))
    for cs in combos:
        groups, parent, mu = [], [], 1
        for bi, part in enumerate(cs):
            groups += part
            parent += [bi] * len(part)
            mu *= (-1) ** (len(part) - 1) * math.factorial(len(part) - 1)
        yield groups, mu, parent


def candidate_terms(cand: Candidate) -> list[Term]:
    """The value of a candidate as a list of terms (empty if it vanishes).

    The sum over the refinements π of the candidate's blocks σ (:func:`refinements`) with their
    Möbius weights; on each π the z-legs of the inserted vertices are lifted from their σ-block
    to each of its π-blocks in turn, and the vertices' δ-terms and the means must hold on π
    (distinct neurons). At order 1/n with a vertex σ has single blocks only, so π = σ."""
    c = cand.contraction
    vo = c.vertex_of
    ratio = RATIO ** sum(i.insertion.order for i in cand.inserted)
    out = []
    for groups, mu, parent in refinements(cand.blocks):
        vb = {v: g for g, vs in enumerate(groups) for v in vs}

        def bov(var, vb=vb):
            return vb[vo[var]]

        means = _means(cand, bov)
        if means is None:
            continue
        # lifts: every z-leg (over all inserted vertices) to a group inside its block
        slots = [(t, pos, target) for t, ins in enumerate(cand.inserted)
                 for pos, (kind, target) in enumerate(zip(ins.insertion.legs, ins.legs))
                 if kind == "z"]
        options = [[g for g in range(len(groups)) if parent[g] == target]
                   for _, _, target in slots]
        for lift in itertools.product(*options):
            z_block = {}
            for (t, pos, _), g in zip(slots, lift):
                z_block.setdefault(t, {})[pos] = g
            tensors, legs_by_group, ok = [], {}, True
            for t, ins in enumerate(cand.inserted):
                refs = cand.leg_refs(t, bov, z_block.get(t, {}))
                if not all(refs[a] == refs[b] for a, b in ins.delta.pairs):
                    ok = False
                    break
                k = 0
                for kind, pos in zip(ins.insertion.legs, range(len(ins.legs))):
                    if kind == "z":
                        legs_by_group.setdefault(z_block[t][pos], []).append(
                            f"g{ins.offset + k}")
                        k += 1
                tensors.append((ins.delta.tensor, tuple(refs[r][1] for r in ins.delta.index)))
            if not ok:
                continue
            out.append(Term(cand.weight * mu, c.coeff * ratio, tuple(tensors), means,
                            _blobs(cand, groups, legs_by_group)))
    return out
