"""Step 3, *select*: declarative selection rules on candidate diagrams.

Each rule is a named predicate on a :class:`~feyntk.diagrams.generate.Candidate` (True =
keep), in the spirit of qgraf's filters. A :class:`Selector` keeps a candidate when every one of
its rules keeps it. The defaults, with the paper's rules they implement (REFERENCES.md):

* ``connected`` — the external fields are joined (joint cumulant = connected diagrams);
* ``neuron_deltas`` — the inserted vertex's Kronecker deltas hold on the blocks (rule d: all
  lines at a propagator share one neuron index);
* ``zero_mean`` — every NTK-type factor left unconsumed has a non-zero mean, i.e. is a diagonal
  Ĥ (rules e–f: dotted lines pair up and give Θ);

Rule (c) of the paper (a z-line acts as ∂/∂z inside the expectation) needs no filter here: every
blob carries σ factors, because every layer-(ℓ+1) vertex brings one from each field it joins.

Power counting (``order``) is pushed down into generation; ``external_deltas`` (Wick pairs only
between equal external neuron labels) into expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from feyntk.diagrams.fields import Low
from feyntk.diagrams.generate import Candidate


def _find(parent, x):
    while parent.setdefault(x, x) != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


def connected(cand: Candidate) -> bool:
    """External fields joined by Wick pairs, shared blocks, bias pairs or the inserted vertices."""
    c = cand.contraction
    parent: dict = {}

    def union(a, b):
        parent[_find(parent, a)] = _find(parent, b)

    nfields = len(c.terms)
    for b, vs in enumerate(cand.blocks):
        for v in vs:
            for f in c.vertices[v].fields:
                union(("f", f), ("b", b))
    for a, b in c.bias_pairs:
        union(("f", a), ("f", b))
    for ins in cand.inserted:
        touched = [("b", blk) for kind, blk in zip(ins.insertion.legs, ins.legs) if kind == "z"]
        for kind, fi in zip(ins.insertion.legs, ins.legs):
            if kind != "z":
                touched += [("b", cand.block_of_var(v)) for v in c.factors[fi].vars]
        for t in touched[1:]:
            union(touched[0], t)
    roots = {_find(parent, ("f", f)) for f in range(nfields)}
    return len(roots) == 1


def neuron_deltas(cand: Candidate) -> bool:
    """The δ-terms of the inserted vertices are satisfied by the block assignment."""
    for t, ins in enumerate(cand.inserted):
        refs = cand.leg_refs(t)
        if not all(refs[a] == refs[b] for a, b in ins.delta.pairs):
            return False
    return True


def zero_mean(cand: Candidate) -> bool:
    """Unconsumed NTK-type factors must be diagonal Ĥ's (the only fields with O(1) mean)."""
    used = cand.consumed()
    for i, f in enumerate(cand.contraction.factors):
        if isinstance(f, Low) and i not in used:
            if f.kind != "H" or len({cand.block_of_var(v) for v in f.vars}) != 1:
                return False
    return True


@dataclass(frozen=True)
class Rule:
    """A named selection rule."""

    name: str
    keep: Callable[[Candidate], bool]
    doc: str = ""


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("neuron_deltas", neuron_deltas, "the inserted vertex's deltas hold"),
    Rule("zero_mean", zero_mean, "unconsumed NTK factors are diagonal Ĥ"),
    Rule("connected", connected, "external fields are connected"),
)


@dataclass(frozen=True)
class Selector:
    """A conjunction of rules; ``without("connected")`` gives the moment instead of the cumulant."""

    rules: tuple[Rule, ...] = field(default=DEFAULT_RULES)

    def keep(self, cand: Candidate) -> bool:
        return all(r.keep(cand) for r in self.rules)

    def why_dropped(self, cand: Candidate) -> str | None:
        for r in self.rules:
            if not r.keep(cand):
                return r.name
        return None

    def without(self, *names: str) -> "Selector":
        return Selector(tuple(r for r in self.rules if r.name not in names))

    def with_rule(self, rule: Rule) -> "Selector":
        return Selector(self.rules + (rule,))
