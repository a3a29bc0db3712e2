"""The statistics of the 1/n expansion, one declaration each (MATH.md §2–3).

A statistic is declared once, by its **defining correlator**: the joint cumulant of fields of
layer ℓ with explicit neuron labels (distinct letters = distinct neurons) and sample labels, its
order in 1/n (0: leading, 1: coefficient of 1/n with n = n_{ℓ-1}, 2: of 1/n², see
:data:`SECOND_ORDER`) and the sample order of the stored array. A name and a LaTeX symbol
complete the declaration, e.g.::

    Statistic.declare("F", "F", "H_{ij;a1a2} z_{i;a3} z_{j;a4}", 1, "a1 a3 a2 a4")

Everything else is derived from it:

* here: the rank, the index symmetries (:func:`symmetry_group`: the sample permutations that
  map the correlator onto itself up to the order of its fields, the symmetries of each field
  (:data:`FIELD_KINDS`) and a renaming of neurons) and the smoothness the Monte Carlo sampler
  needs (:attr:`Statistic.sigma_order`);
* :mod:`feyntk.diagrams.vertices`: the layer-ℓ vertices and their Kronecker-δ terms (every
  order-1 statistic whose neurons pair up is one δ-term of the vertex of its field kinds);
* :mod:`feyntk.diagrams`: the recursion, hence the σ-derivative order it needs
  (:func:`feyntk.diagrams.diagram.sigma_order_needed`);
* :mod:`feyntk.recursions.nodes`: the LaTeX symbol of the tensor in printed recursions;
* :mod:`feyntk.validate.estimators`: the Monte Carlo estimator (the neuron pattern of every
  per-network average, the cumulant's product terms, the offset of K¹ and Θ¹).

The index symmetries found here are checked once against those found from the recursion's
terms (:func:`feyntk.kernels.lower.symmetries`) in ``tests/test_kernels.py``.

The registry is a value that can be extended: :func:`registered` declares statistics for the
duration of a ``with`` block and restores the registry afterwards; caches downstream are keyed
by :func:`registry_token`, so a restored registry finds its old entries again.

Index order is the subscript order of MATH.md §3, e.g. ``B[a1, a3, a2, a4]`` holds
``n·Cov[Ĥ_{ij;a1a2}, Ĥ_{ij;a3a4}]`` and ``F[a1, a3, a2, a4] = n·E[Ĥ_{ij;a1a2} z_{i;a3} z_{j;a4}]``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from feyntk.errors import SpecError


# -- field kinds -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldKind:
    """A random tensor of MATH.md §2 with equally many neuron and sample slots.

    Attributes:
        name: ``z``, ``H`` (Ĥ), ``dH`` (dĤ), ``ddI`` (ddÎ), ``ddII`` (ddÎÎ).
        rank: number of neuron slots (= sample slots).
        symmetries: the slot permutations ``p`` with ``F[x∘p; s∘p] = F[x; s]`` (neuron and
            sample slots permuted together), identity first; the order is the order of
            preference when a field is matched to a pattern (rotations before reflections).
        sigma_order: highest σ-derivative in the field's definition: what sampling it by
            automatic differentiation needs of the activation.
        latex: LaTeX symbol (diagram pictures).
    """

    name: str
    rank: int
    symmetries: tuple[tuple[int, ...], ...]
    sigma_order: int
    latex: str


FIELD_KINDS: dict[str, FieldKind] = {k.name: k for k in (
    FieldKind("z", 1, ((0,),), 0, "z"),
    FieldKind("H", 2, ((0, 1), (1, 0)), 1, r"\hat H"),
    FieldKind("dH", 3, ((0, 1, 2), (0, 2, 1)), 2, r"d\hat H"),
    FieldKind("ddI", 4, ((0, 1, 2, 3), (0, 2, 3, 1), (0, 3, 1, 2), (0, 1, 3, 2), (0, 2, 1, 3),
                         (0, 3, 2, 1)), 3, r"dd\hat I"),
    FieldKind("ddII", 4, ((0, 1, 2, 3), (1, 0, 3, 2)), 2, r"dd\hat{II}"),
)}
"""The fields of MATH.md §2 in MATH.md order. A new kind also needs its layer map
(:func:`feyntk.diagrams.fields.layer_map`) and its autodiff definition in the sampler."""


@dataclass(frozen=True)
class External:
    """A field in a correlator: kind (``z``, ``H``, ...), neuron labels, sample labels."""

    kind: str
    labels: tuple[str, ...]
    samples: tuple[str, ...]

    def text(self) -> str:
        return f"{self.kind}_{{{''.join(self.labels)};{''.join(self.samples)}}}"


@dataclass(frozen=True)
class Correlator:
    """A statistic at layer ℓ+1 as the joint cumulant of ``fields``.

    Attributes:
        fields: the external fields (distinct labels = distinct neurons).
        order: 0 for the leading kernel, k for the coefficient of 1/n_ℓ^k (k ≤ MAX_ORDER).
        output: the stored array's index order, as sample labels (MATH.md §3).
    """

    fields: tuple[External, ...]
    order: int
    output: tuple[str, ...] = field(default=())

    def text(self) -> str:
        return " ".join(f.text() for f in self.fields)


_FIELD_RE = re.compile(r"(\w+?)_\{(\w+);((?:[a-z]\d+)+)\}")


def parse_fields(text: str) -> tuple[External, ...]:
    """``"H_{ij;a1a2} z_{i;a3}"`` -> the fields (one neuron letter and one sample per slot)."""
    out, pos = [], 0
    for m in _FIELD_RE.finditer(text):
        if text[pos:m.start()].strip():
            break
        kind, labels, samples = m.group(1), tuple(m.group(2)), tuple(
            re.findall(r"[a-z]\d+", m.group(3)))
        out.append(External(kind, labels, samples))
        pos = m.end()
    if not out or text[pos:].strip():
        raise SpecError(f"cannot read the correlator {text!r}: write fields like "
                        "'H_{ij;a1a2} z_{i;a3}' (kind, neuron letters, one sample per letter)")
    return tuple(out)


# -- statistics --------------------------------------------------------------------------------
MAX_ORDER = 2
"""Highest order in 1/n a statistic may be declared at (the engine's expansion is generic in the
order: power counting, falling factorials and products of vertices; 2 is what is checked)."""

@dataclass(frozen=True)
class Statistic:
    """One tensor of the 1/n expansion: its declaration (see the module docstring).

    Attributes:
        name: registry key (``"K1"``, ``"Theta"``, ...), as used in configs and JSON.
        latex: LaTeX symbol.
        correlator: the defining correlator: fields with neuron and sample labels, order in
            1/n, stored index order.
    """

    name: str
    latex: str
    correlator: Correlator

    @classmethod
    def declare(cls, name: str, latex: str, fields: str, order: int,
                output: str | Sequence[str] | None = None) -> "Statistic":
        """A statistic from its correlator written as in MATH.md, e.g. ``"H_{ii;a1a2}"``.

        ``output`` (default: the samples in the order they appear) is the stored index order.
        """
        fs = parse_fields(fields)
        natural = tuple(s for f in fs for s in f.samples)
        if output is None:
            out = natural
        else:
            out = tuple(output.split()) if isinstance(output, str) else tuple(output)
        stat = cls(name, latex, Correlator(fs, order, out))
        stat.check()
        return stat

    @property
    def order(self) -> int:
        return self.correlator.order

    @property
    def output(self) -> tuple[str, ...]:
        return self.correlator.output

    @property
    def rank(self) -> int:
        """Number of sample indices of the stored array."""
        return len(self.correlator.output)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field kinds the correlator involves (distinct, in order of appearance)."""
        return tuple(dict.fromkeys(f.kind for f in self.correlator.fields))

    @property
    def definition(self) -> str:
        """The correlator as text, e.g. ``"n κ(H_{ij;a1a2}, z_{i;a3}, z_{j;a4})"``."""
        body = ", ".join(f.text() for f in self.correlator.fields)
        body = f"κ({body})" if len(self.correlator.fields) > 1 else f"E[{body}]"
        return {0: body, 1: f"n {body}"}.get(self.order, f"n^{self.order} {body}")

    @property
    def sigma_order(self) -> int:
        """Highest σ-derivative in the fields: what Monte Carlo sampling by autodiff needs."""
        return max(FIELD_KINDS[f.kind].sigma_order for f in self.correlator.fields)

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct neuron labels, in order of appearance."""
        return tuple(dict.fromkeys(x for f in self.correlator.fields for x in f.labels))

    @property
    def symmetries(self) -> tuple[tuple[int, ...], ...]:
        """The index permutations that leave the tensor unchanged (a group, identity first)."""
        return _symmetry_group(self.correlator)

    def check(self) -> None:
        """Refuse malformed declarations (unknown kinds, labels, orders, index order)."""
        corr = self.correlator
        if not self.name or not isinstance(self.name, str):
            raise SpecError(f"a statistic needs a name, got {self.name!r}")
        if not isinstance(corr.order, int) or isinstance(corr.order, bool) or not (
                0 <= corr.order <= MAX_ORDER):
            raise SpecError(f"{self.name}: order must be an integer 0..{MAX_ORDER}, "
                            f"got {corr.order!r}")
        samples = [s for f in corr.fields for s in f.samples]
        for f in corr.fields:
            kind = FIELD_KINDS.get(f.kind)
            if kind is None:
                raise SpecError(f"{self.name}: unknown field {f.kind!r}; fields: "
                                f"{', '.join(FIELD_KINDS)}")
            if len(f.labels) != kind.rank or len(f.samples) != kind.rank:
                raise SpecError(f"{self.name}: {f.kind} has {kind.rank} neuron and sample slots, "
                                f"got {f.text()}")
        if len(set(samples)) != len(samples):
            raise SpecError(f"{self.name}: every sample label must occur once, got {samples}")
        if sorted(corr.output) != sorted(samples):
            raise SpecError(f"{self.name}: the index order {corr.output} must list the samples "
                            f"{samples} once each")
        for x in self.labels:
            if sum(f.labels.count(x) for f in corr.fields) % 2:
                raise SpecError(
                    f"{self.name}: neuron {x} occurs an odd number of times, so the correlator "
                    "vanishes identically (flipping the signs of that neuron's incoming weights "
                    "and bias flips it)")


_STATISTICS = (
    Statistic.declare("K", "K", "z_{i;a1} z_{i;a2}", 0),
    Statistic.declare("K1", "K^{1}", "z_{i;a1} z_{i;a2}", 1),
    Statistic.declare("V", "V", "z_{i;a1} z_{i;a2} z_{j;a3} z_{j;a4}", 1),
    Statistic.declare("Theta", r"\Theta", "H_{ii;a1a2}", 0),
    Statistic.declare("Theta1", r"\Theta^{1}", "H_{ii;a1a2}", 1),
    Statistic.declare("A", "A", "H_{ii;a1a2} H_{jj;a3a4}", 1),
    Statistic.declare("B", "B", "H_{ij;a1a2} H_{ij;a3a4}", 1, "a1 a3 a2 a4"),
    Statistic.declare("D", "D", "H_{ii;a1a2} z_{j;a3} z_{j;a4}", 1),
    Statistic.declare("F", "F", "H_{ij;a1a2} z_{i;a3} z_{j;a4}", 1, "a1 a3 a2 a4"),
    Statistic.declare("P", "P", "dH_{ijj;a0a1a2} z_{i;a3}", 1),
    Statistic.declare("Q", "Q", "dH_{iij;a0a1a2} z_{j;a3}", 1),
    Statistic.declare("R", "R", "ddI_{iijj;a0a1a2a3}", 1),
    Statistic.declare("S", "S", "ddII_{iijj;a1a2a3a4}", 1),
    Statistic.declare("T", "T", "ddII_{ijij;a1a2a3a4}", 1),
    Statistic.declare("U", "U", "ddII_{ijji;a1a2a3a4}", 1),
)

REGISTRY: dict[str, Statistic] = {s.name: s for s in _STATISTICS}
"""The declared statistics, in MATH.md's order (the fifteen; :func:`registered` adds more)."""

SECOND_ORDER: tuple[Statistic, ...] = (
    Statistic.declare("K2", "K^{2}", "z_{i;a1} z_{i;a2}", 2),
    Statistic.declare("V1", "V^{1}", "z_{i;a1} z_{i;a2} z_{j;a3} z_{j;a4}", 2),
    Statistic.declare("V6", "V_{6}", "z_{i;a1} z_{i;a2} z_{j;a3} z_{j;a4} z_{k;a5} z_{k;a6}", 2),
)
"""The order-1/n² statistics of the preactivations (MATH.md §7, issue 18): ``E[zz] = K + K¹/n +
K²/n²``, ``n Cov[z_i z_i, z_j z_j] = V + V¹/n`` and ``V6 = n² κ(z_i z_i z_j z_j z_k z_k)`` for
distinct neurons. Declared like the fifteen but not in the default :data:`REGISTRY` (whose
contents the reported tensors, estimators and generated kernels follow): :func:`second_order`
adds them for a ``with`` block, and :func:`lookup` (hence ``diagrams``, ``recursion``,
``feyntk derive``) finds them by name."""


def second_order():
    """``with second_order():`` the registry with :data:`SECOND_ORDER` declared (their
    vertices K², V¹, V6 join the insertion table); the ones already declared are kept."""
    return registered(*(s for s in SECOND_ORDER if s.name not in REGISTRY))


def lookup(name: str) -> Statistic | None:
    """A declared statistic by name: the registry first, then :data:`SECOND_ORDER`."""
    if isinstance(name, str) and name in REGISTRY:
        return REGISTRY[name]
    return next((s for s in SECOND_ORDER if s.name == name), None)


class _Names(Sequence):
    """The registry's names as a live, tuple-like sequence (follows :func:`registered`)."""

    def __getitem__(self, i):
        return tuple(REGISTRY)[i]

    def __len__(self) -> int:
        return len(REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(REGISTRY))

    def __contains__(self, name) -> bool:
        return name in REGISTRY

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names))
                               else other)

    def __hash__(self):
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


TENSOR_NAMES: Sequence[str] = _Names()
"""Names of all declared statistics, in declaration order (a live view of :data:`REGISTRY`)."""

_TOKENS: dict[tuple, int] = {}


def registry_token() -> int:
    """A small integer that identifies the registry's contents (equal contents, equal token).

    Caches of everything derived from the declarations take it as part of their key.
    """
    key = tuple(REGISTRY.values())
    return _TOKENS.setdefault(key, len(_TOKENS))


@contextlib.contextmanager
def registered(*stats: Statistic):
    """Declare ``stats`` for the duration of a ``with`` block; the registry is restored after.

    Raises:
        SpecError: a name that is already declared, or a malformed declaration.
    """
    for s in stats:
        s.check()
    names = [s.name for s in stats]
    taken = [n for n in names if n in REGISTRY] + [n for i, n in enumerate(names)
                                                    if n in names[:i]]
    if taken:
        raise SpecError(f"statistic(s) {taken} are already declared")
    saved = dict(REGISTRY)
    try:
        REGISTRY.update({s.name: s for s in stats})
        _check_registry()
        yield stats
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)


def _check_registry() -> None:
    """Checks that need all declarations at once: the vertices derive without gaps or clashes."""
    from feyntk.diagrams.vertices import insertions

    insertions()


# -- index symmetries ------------------------------------------------------------------------
def field_images(f: External) -> Iterator[External]:
    """The equal forms of one field under its kind's symmetries (order of preference)."""
    for p in FIELD_KINDS[f.kind].symmetries:
        yield External(f.kind, tuple(f.labels[m] for m in p), tuple(f.samples[m] for m in p))


def alignments(fields: Sequence[External], targets: Sequence[External]):
    """Ways to write ``fields`` as ``targets``: yields ``(perm, images, labels)`` in preference
    order, where ``images[k]`` is an equal form of ``fields[k]`` slot-aligned with
    ``targets[perm[k]]`` (same kind) and ``labels`` maps the fields' neuron labels one-to-one onto
    the targets' (samples are not compared: callers map or compare them)."""
    if len(fields) != len(targets):
        return
    for images in itertools.product(*(tuple(field_images(f)) for f in fields)):
        for perm in itertools.permutations(range(len(targets))):
            fwd: dict = {}
            bwd: dict = {}
            ok = True
            for img, k in zip(images, perm):
                tgt = targets[k]
                if img.kind != tgt.kind:
                    ok = False
                    break
                for a, b in zip(img.labels, tgt.labels):
                    if fwd.setdefault(a, b) != b or bwd.setdefault(b, a) != a:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                yield perm, images, fwd


def equivalent(a: Sequence[External], b: Sequence[External]) -> bool:
    """Whether two correlators are the same up to field order, field symmetries and neuron names."""
    return any(all(img.samples == b[k].samples for img, k in zip(images, perm))
               for perm, images, _ in alignments(a, b))


@functools.lru_cache(maxsize=256)
def _symmetry_group(corr: Correlator) -> tuple[tuple[int, ...], ...]:
    out = corr.output
    group = []
    for g in itertools.permutations(range(len(out))):
        relabel = {out[k]: out[g[k]] for k in range(len(out))}
        moved = tuple(External(f.kind, f.labels, tuple(relabel[s] for s in f.samples))
                      for f in corr.fields)
        if equivalent(corr.fields, moved):
            group.append(g)
    return tuple(group)


def symmetry_group(name: str) -> list[tuple[int, ...]]:
    """All index permutations ``g`` with ``np.transpose(T, g) == T`` (from the correlator)."""
    return sorted(get_statistic(name).symmetries)


def representatives(name: str, N: int) -> list[tuple[int, ...]]:
    """One index tuple per orbit of the symmetry group: the entries that can differ."""
    out, seen = [], set()
    group = symmetry_group(name)
    for idx in itertools.product(range(N), repeat=get_statistic(name).rank):
        if idx in seen:
            continue
        out.append(idx)
        seen.update(tuple(idx[i] for i in g) for g in group)
    return out


def get_statistic(name: str) -> Statistic:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise SpecError(
            f"unknown tensor {name!r}; known tensors: {', '.join(TENSOR_NAMES)}") from None


SECOND_ORDER_NAMES: tuple[str, ...] = tuple(s.name for s in SECOND_ORDER)
"""Names of :data:`SECOND_ORDER` (``K2``, ``V1``, ``V6``): accepted in a config's ``tensors``
next to :data:`TENSOR_NAMES` (``feyntk predict`` evaluates them with the numpy oracle,
:mod:`feyntk.numbers.second_order`), but not part of it."""


def config_tensor_names() -> tuple[str, ...]:
    """The names a config's ``tensors`` may hold: :data:`TENSOR_NAMES`, then the second-order
    ones of :data:`SECOND_ORDER_NAMES` (once each, also inside :func:`second_order`)."""
    return tuple(TENSOR_NAMES) + tuple(n for n in SECOND_ORDER_NAMES if n not in REGISTRY)


def check_tensor_names(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate a list of tensor names (:func:`config_tensor_names`), keeping MATH.md's order
    (the fifteen, then K2, V1, V6) and dropping duplicates."""
    known = config_tensor_names()
    if names is None:
        return ("K", "Theta")
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise SpecError(f"tensors must name at least one of {', '.join(known)}")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SpecError(
            f"unknown tensor name(s) {unknown}; known tensors: {', '.join(known)} "
            "(names are case-sensitive)")
    return tuple(n for n in known if n in names)
