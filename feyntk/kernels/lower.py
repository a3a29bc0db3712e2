"""Lowering: a statistic's diagram terms → products of array reads at external samples.

A diagram term (:class:`feyntk.diagrams.generate.Term`) is
``weight · coeff · Σ_g tensor[index] · Π means · Π_blobs ⟨∂_{legs} Π σ^{(k)}(z_s)⟩_K``.
Both forms of MATH.md §4.4 remove every dummy sum g *exactly*:

* ``derivative``: each leg g differentiates one σ factor of its blob (product rule), so g takes
  that factor's sample: a sum over *picks* (leg → factor), each a plain expectation
  ``⟨Π σ^{(k')}⟩`` with raised orders k'.
* ``inverse-metric``: ``⟨∂_{g1..gq} F⟩ = ⟨F · He_{g1..gq}(z)⟩`` with g running over the blob's
  *distinct* samples. A pick (leg → one of the blob's labels) reads the Hermite component of
  the labels it picked; the table is masked to zero where a picked label repeats the sample of
  an earlier label of the blob, so each distinct sample is counted once (as in the oracle).

What is left is a sum of :class:`Product` s, each ``coeff · Π array[labels]`` with only the
external labels of the output: the whole contraction is elementwise over output entries.
The arrays are the layer-ℓ state tensors and *tables* (:class:`Table`): Gaussian expectations
over all sample assignments of a blob's labels, computed by :mod:`feyntk.kernels.tables`.

Index symmetries of every statistic are found from the terms themselves
(:func:`symmetries`): a permutation of output axes is a symmetry when it maps the multiset of
terms onto itself, with the layer-ℓ tensors canonicalised under their own symmetries (a
greatest fixed point, sound by induction over layers since layer 1 satisfies every symmetry).

Invariants:
    * Blob labels, means and table reads use external labels only; dummies appear only in the
      inserted tensor's index and in legs (checked in :func:`lower`).
    * Plain tables are canonical up to relabelling (shared between terms and statistics);
      Hermite tables keep their blob's label order because their mask depends on it.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from dataclasses import dataclass

import sympy as sp

from feyntk.diagrams.diagram import correlator, diagrams
from feyntk.spec.statistic import registry_token

SLOTS = "abcdefgh"
FORMS = ("derivative", "inverse-metric")


@dataclass(frozen=True)
class Table:
    """A Gaussian-expectation table over the labels (slots) of one blob.

    ``T[x_0, ..., x_{p-1}] = ⟨Π_{(k, s) in sigs} σ^{(k)}(z_{x_s}) · He_comp(z)⟩_K`` where ``He`` is
    the order-``legs`` Hermite polynomial (``legs = 0``: none) whose indices are the samples of
    the slots in ``comp``; Hermite entries vanish where a slot of ``comp`` repeats the sample of an
    earlier slot.

    Attributes:
        sigs: sorted ``(k, slot)`` pairs, slots ``0..p-1``.
        legs: Hermite order (inverse-metric form); 0 for a plain expectation.
        comp: sorted slots the legs picked (length ``legs``).
        kind: ``"hermite"``, or ``"dist"`` for kinked activations in the derivative form: the
            legs differentiate the whole product at the sample they picked, as one
            distribution (``feyntk.numbers.distributions``); same mask as Hermite tables.
    """

    sigs: tuple[tuple[int, int], ...]
    legs: int = 0
    comp: tuple[int, ...] = ()
    kind: str = "hermite"

    @property
    def p(self) -> int:
        return len({s for _, s in self.sigs})

    @property
    def name(self) -> str:
        body = "".join(f"{k}{SLOTS[s]}" for k, s in self.sigs) or "1"
        if not self.legs:
            return f"E_{body}"
        tag = "H" if self.kind == "hermite" else "D"
        return f"{tag}{self.legs}_{body}_{''.join(SLOTS[c] for c in self.comp)}"


@dataclass(frozen=True)
class Read:
    """``array[index]`` with external sample labels (repeats read diagonals)."""

    array: str
    index: tuple[str, ...]


@dataclass(frozen=True)
class Product:
    """``coeff · Π reads``; coeff is a sympy expression in the layer-(ℓ+1) hyperparameters."""

    coeff: sp.Expr
    reads: tuple[Read, ...]


@dataclass(frozen=True)
class Lowered:
    """A statistic's recursion as products of reads (see the module docstring).

    Attributes:
        name, form: the statistic and the form of its blobs.
        output: external labels in the stored array's index order (MATH.md §3).
        products: the summands of one output entry.
        tables: the tables read, by name.
        tensors: the layer-ℓ state tensors read, sorted.
    """

    name: str
    form: str
    output: tuple[str, ...]
    products: tuple[Product, ...]
    tables: dict
    tensors: tuple[str, ...]

    def expr(self) -> sp.Expr:
        """One output entry as a sympy expression in ``IndexedBase`` reads (index symbols = labels)."""
        labels = {a: sp.Symbol(a, integer=True) for a in self.output}
        total = sp.Integer(0)
        for prod in self.products:
            term = prod.coeff
            for r in prod.reads:
                term = term * sp.IndexedBase(r.array)[tuple(labels[a] for a in r.index)]
            total += term
        return total

    @property
    def arrays(self) -> tuple[str, ...]:
        """Kernel array arguments: state tensors then tables (sorted)."""
        return self.tensors + tuple(sorted(self.tables))


def _canonical_plain(sigs: tuple[tuple[int, str], ...]) -> tuple[Table, tuple[str, ...]]:
    """Canonical plain table of a blob (min over relabellings) and the labels of its slots."""
    labels = sorted({s for _, s in sigs})
    best = None
    for perm in itertools.permutations(range(len(labels))):
        slot = dict(zip(labels, perm))
        key = tuple(sorted((k, slot[s]) for k, s in sigs))
        if best is None or key < best[0]:
            order = [None] * len(labels)
            for lab, sl in slot.items():
                order[sl] = lab
            best = (key, tuple(order))
    return Table(best[0]), best[1]


def _blob_labels(sigs) -> tuple[str, ...]:
    """Labels of a blob in order of first appearance in its sorted sigs."""
    return tuple(dict.fromkeys(s for _, s in sorted(sigs)))


def _hermite_table(sigs, picked: tuple[str, ...], kind: str = "hermite"):
    labels = _blob_labels(sigs)
    slot = {lab: i for i, lab in enumerate(labels)}
    return (Table(tuple(sorted((k, slot[s]) for k, s in sigs)), len(picked),
                  tuple(sorted(slot[g] for g in picked)), kind), labels)


def _blob_options(blob, form: str, smooth: bool = True):
    """Per blob: list of (table, table labels, {dummy: label}) whose sum is the blob."""
    sigs = tuple(blob.sigs)
    if not blob.legs:
        t, labs = _canonical_plain(sigs)
        return [(t, labs, {})]
    out = []
    if form == "derivative" and not smooth:  # legs pick samples; product differentiated whole
        for pick in itertools.product(_blob_labels(sigs), repeat=len(blob.legs)):
            t, labs = _hermite_table(sigs, pick, "dist")
            out.append((t, labs, dict(zip(blob.legs, pick))))
    elif form == "derivative":
        for pick in itertools.product(range(len(sigs)), repeat=len(blob.legs)):
            ks = [k for k, _ in sigs]
            for m in pick:
                ks[m] += 1
            t, labs = _canonical_plain(tuple((k, s) for k, (_, s) in zip(ks, sigs)))
            out.append((t, labs, {g: sigs[m][1] for g, m in zip(blob.legs, pick)}))
    else:
        labels = _blob_labels(sigs)
        for pick in itertools.product(labels, repeat=len(blob.legs)):
            t, labs = _hermite_table(sigs, pick)
            out.append((t, labs, dict(zip(blob.legs, pick))))
    return out


def _table_group(t: Table) -> tuple[tuple[int, ...], ...]:
    """Slot permutations that leave a plain table's pattern unchanged (Hermite: identity)."""
    if t.legs:
        return (tuple(range(t.p)),)
    return tuple(g for g in itertools.permutations(range(t.p))
                 if tuple(sorted((k, g[s]) for k, s in t.sigs)) == t.sigs)


def _canonical_read(r: Read, groups: dict, tables: dict) -> Read:
    """Read a symmetric array at its canonical index (so equal products merge)."""
    if r.array in tables:
        group = _table_group(tables[r.array])
        # T[idx] = T[idx∘g⁻¹]; both directions run over the group
        return Read(r.array, min(tuple(r.index[g.index(i)] for i in range(len(g)))
                                 for g in group))
    return Read(r.array, _canon_index(r.index, groups[r.array]))


def lower(name: str, form: str, smooth: bool = True) -> Lowered:
    """Lower statistic ``name``'s diagram terms in ``form`` to products of reads.

    ``smooth=False`` (kinked activations): in the derivative form the legs pick samples and
    differentiate the blob's product as one distribution (``"dist"`` tables), as the oracle does.
    Cached per state of the statistic registry.
    """
    return _lower(name, form, smooth, registry_token())


@functools.lru_cache(maxsize=256)
def _lower(name: str, form: str, smooth: bool, token: int) -> Lowered:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    output = tuple(correlator(name).output)
    ext = set(output)
    groups = symmetries([name])
    acc: dict[tuple[Read, ...], sp.Expr] = {}
    tables: dict[str, Table] = {}
    tensors: set[str] = set()
    for d in diagrams(name):
        for term in d.terms:
            for blob in term.blobs:
                bad = {s for _, s in blob.sigs} - ext
                if bad:
                    raise NotImplementedError(
                        f"{name}: blob samples {sorted(bad)} are not external labels; the "
                        "lowering assumes dummies occur only as legs and tensor indices")
            base = []
            for mname, idx in term.means:
                base.append(Read(mname, tuple(idx)))
                tensors.add(mname)
            coeff = term.weight * term.coeff
            for combo in itertools.product(*(_blob_options(b, form, smooth)
                                              for b in term.blobs)):
                g: dict[str, str] = {}
                reads = list(base)
                for t, labs, gb in combo:
                    g.update(gb)
                    tables[t.name] = t
                    reads.append(Read(t.name, labs))
                if term.tensor is not None:
                    tname, idx = term.tensor
                    tensors.add(tname)
                    missing = [s for s in idx if s not in ext and s not in g]
                    if missing:
                        raise NotImplementedError(f"{name}: dummy {missing} has no leg")
                    reads.append(Read(tname, tuple(g.get(s, s) for s in idx)))
                reads = [_canonical_read(r, groups, tables) for r in reads]
                key = tuple(sorted(reads, key=lambda r: (r.array, r.index)))
                acc[key] = acc.get(key, sp.Integer(0)) + coeff
    products = tuple(Product(sp.factor(c), k) for k, c in acc.items() if sp.expand(c) != 0)
    used = {r.array for p in products for r in p.reads}
    return Lowered(name, form, output, products,
                   {k: v for k, v in sorted(tables.items()) if k in used},
                   tuple(sorted(t for t in tensors if t in used)))


# -- index symmetries ------------------------------------------------------------------------
def _rank(name: str) -> int:
    return len(correlator(name).output)


def _closure_tensors(names) -> tuple[str, ...]:
    seen, todo = [], list(names)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.append(n)
        for d in diagrams(n):
            for t in d.terms:
                todo += [m for m, _ in t.means]
                if t.tensor is not None:
                    todo.append(t.tensor[0])
    return tuple(sorted(set(seen) | {"K"}))


def _canon_index(idx, group) -> tuple:
    return min(tuple(idx[p] for p in g) for g in group)


def _term_key(term, relabel: dict, groups: dict) -> tuple:
    """Canonical form of a term after relabelling its external labels."""
    labels = {s for b in term.blobs for s in b.legs}
    if term.tensor is not None:
        labels |= set(term.tensor[1])
    dummies = sorted(labels - set(relabel))
    best = None
    for perm in itertools.permutations(dummies):
        mp = dict(relabel)
        mp.update({d: f"~{i}" for i, d in enumerate(perm)})
        tensor = None
        if term.tensor is not None:
            tname, idx = term.tensor
            tensor = (tname, _canon_index(tuple(mp.get(s, s) for s in idx), groups[tname]))
        means = tuple(sorted((m, _canon_index(tuple(mp[s] for s in idx), groups[m]))
                             for m, idx in term.means))
        blobs = tuple(sorted((tuple(sorted((k, mp[s]) for k, s in b.sigs)),
                              tuple(sorted(mp[s] for s in b.legs))) for b in term.blobs))
        key = (tensor, means, blobs)
        if best is None or key < best:
            best = key
    return best


def _invariant(name: str, perm: tuple[int, ...], groups: dict) -> bool:
    out = correlator(name).output
    relabel = {out[i]: out[perm[i]] for i in range(len(out))}
    ident = {a: a for a in out}

    def multiset(mp):
        acc: dict = {}
        for d in diagrams(name):
            for t in d.terms:
                k = _term_key(t, mp, groups)
                acc[k] = acc.get(k, 0) + t.weight * t.coeff
        return {k: sp.expand(v) for k, v in acc.items() if sp.expand(v) != 0}

    a, b = multiset(ident), multiset(relabel)
    return a.keys() == b.keys() and all(sp.expand(a[k] - b[k]) == 0 for k in a)


@functools.lru_cache(maxsize=64)
def _symmetries(names: tuple[str, ...], token: int) -> dict[str, tuple[tuple[int, ...], ...]]:
    allnames = _closure_tensors(names)
    groups = {n: tuple(itertools.permutations(range(_rank(n)))) for n in allnames}
    changed = True
    while changed:
        changed = False
        for n in allnames:
            keep = tuple(g for g in groups[n] if _invariant(n, g, groups))
            if keep != groups[n]:
                groups[n], changed = keep, True
    return groups


def symmetries(names) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Axis permutations ``g`` with ``X[idx] == X[idx[g]]`` for each statistic, found from its terms.

    Returns a dict over the closure of ``names`` (K included); each value is a permutation group
    as a tuple of tuples (identity first).
    """
    return _symmetries(tuple(sorted(set(names))), registry_token())


def diagram_hash(names) -> str:
    """Hash of the diagram terms of ``names`` (part of every cache key)."""
    return _diagram_hash(tuple(sorted(set(names))), registry_token())


@functools.lru_cache(maxsize=64)
def _diagram_hash(names: tuple[str, ...], token: int) -> str:
    h = hashlib.sha256()
    for n in sorted(set(names)):
        h.update(n.encode())
        for d in diagrams(n):
            h.update(repr(d.terms).encode())
    return h.hexdigest()[:16]
