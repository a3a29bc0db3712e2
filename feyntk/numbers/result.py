"""Statistics that know their inputs and axes, and expectations with explicit neuron labels.

:class:`Statistics` holds the tensors of one layer evaluated on an ordered set of inputs split
into named blocks (e.g. ``"eval"`` and ``"train"``), so that consumers (training, symmetry) select
inputs by name instead of slicing concatenated index lists. Its :meth:`Statistics.cumulant`
expands a declared vertex of :func:`feyntk.diagrams.vertices.insertions` into a dense array over
*explicit* neuron labels ``0..width-1`` by summing the vertex's declared Kronecker-δ terms — the
single place where the neuron structure of MATH.md §3 lives, e.g.

    n·E[dĤ_{i0i1i2;s0s1s2} z_{i3;g0}] = δ_{i0i3}δ_{i1i2} P_{s0s1s2g0} + δ_{i0i1}δ_{i2i3} Q_{s0s1s2g0}
                                       + δ_{i0i2}δ_{i1i3} Q_{s0s2s1g0}

is ``stats.cumulant("PQ", width)`` with axes ``(i0, i1, i2, i3, s0, s1, s2, g0)``: the neuron
slots of the legs in leg order, then their samples in the same order. Values are coefficients
of 1/n (n = n_{ℓ-1}); the O(1) means are :meth:`Statistics.mean_ntk` and
:meth:`Statistics.kernel`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from collections.abc import Mapping

import numpy as np

from feyntk.diagrams.vertices import Insertion, insertions, leg_refs
from feyntk.errors import SpecError
from feyntk.spec.statistic import get_statistic


class _Vertices(Mapping):
    """The vertices by name (a live view of :func:`feyntk.diagrams.vertices.insertions`)."""

    def __getitem__(self, name: str) -> Insertion:
        return {v.name: v for v in insertions()}[name]

    def __iter__(self):
        return iter([v.name for v in insertions()])

    def __len__(self) -> int:
        return len(insertions())


VERTICES: Mapping[str, Insertion] = _Vertices()


@dataclass(frozen=True)
class InputSet:
    """Ordered inputs (N, n0) split into named contiguous blocks, e.g. ``{"eval": 2, "train": 3}``."""

    inputs: np.ndarray = field(repr=False)
    blocks: tuple[tuple[str, int], ...]

    def __post_init__(self):
        if sum(n for _, n in self.blocks) != self.inputs.shape[0]:
            raise SpecError("input blocks do not add up to the number of inputs")

    @classmethod
    def of(cls, **named) -> "InputSet":
        arrays = [np.asarray(v, dtype=float) for v in named.values()]
        return cls(np.concatenate(arrays), tuple((k, len(a)) for k, a in zip(named, arrays)))

    def index(self, name: str) -> np.ndarray:
        """Positions of block ``name`` in the concatenated inputs."""
        start = 0
        for key, count in self.blocks:
            if key == name:
                return np.arange(start, start + count)
            start += count
        raise SpecError(f"no input block {name!r}; blocks: {[k for k, _ in self.blocks]}")

    @property
    def N(self) -> int:
        return self.inputs.shape[0]


@dataclass(frozen=True)
class Statistics:
    """Tensors of layer ``layer`` on ``inputs`` (arrays in MATH.md index order, read-only).

    Attributes:
        inputs: the input set the sample axes run over.
        layer: ℓ; ``n`` = n_{ℓ-1} is the expansion width.
        tensors: name → array with one axis per sample index (all axes of length N).
    """

    inputs: InputSet
    layer: int
    n: int
    tensors: Mapping[str, np.ndarray]
    errors: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Standard errors of Monte Carlo estimates, same keys and shapes (empty for theory)."""

    def __post_init__(self):
        for name, value in self.errors.items():
            if name not in self.tensors or np.shape(value) != np.shape(self.tensors[name]):
                raise SpecError(f"standard error of {name} does not match its tensor")
        for name, value in self.tensors.items():
            stat = get_statistic(name)
            if value.shape != (self.inputs.N,) * stat.rank:
                raise SpecError(f"{name} has shape {value.shape}, expected "
                                f"{(self.inputs.N,) * stat.rank}")
            value.setflags(write=False)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.tensors[name]
        except KeyError:
            raise SpecError(f"{name} was not evaluated; available: {list(self.tensors)}") from None

    def axes(self, name: str) -> tuple[str, ...]:
        """Sample-axis labels of a stored tensor (``a1, a2, ...`` in MATH.md's subscript order)."""
        return tuple(f"a{k}" for k in range(get_statistic(name).rank))

    def block(self, name: str) -> np.ndarray:
        return self.inputs.index(name)

    def kernel(self, width: int, name: str = "K") -> np.ndarray:
        """``δ_{ij} name_{ab}`` as [i, j, a, b] (the O(1) E[z z] or E[Ĥ])."""
        return np.einsum("ij,ab->ijab", np.eye(width), self[name])

    def mean_ntk(self, width: int) -> np.ndarray:
        """Leading-order E[Ĥ_{ij;ab}] = δ_{ij} Θ_{ab}, [i, j, a, b]."""
        return self.kernel(width, "Theta")

    def cumulant(self, vertex: str, width: int, on=None) -> np.ndarray:
        """n × the connected cumulant of a declared vertex with explicit neuron labels.

        Args:
            vertex: a name of :data:`VERTICES` (``"K1"``, ``"V"``, ``"Theta1"``, ``"AB"``,
                ``"DF"``, ``"PQ"``, ``"R"``, ``"STU"``).
            width: number of neurons each label runs over (e.g. n_L outputs).
            on: optional input block names, one per sample axis of the result (e.g.
                ``("eval", "eval", "train", "train")`` for ``"R"``): each sample axis then runs
                over that block only. Default: every axis over all N inputs.

        Returns:
            array with axes (neuron slots of the legs in leg order, then the legs' samples in
            the same order), each neuron axis of length ``width`` and each sample axis of
            length N (or of its block's length).
        """
        try:
            v = VERTICES[vertex]
        except KeyError:
            raise SpecError(f"unknown vertex {vertex!r}; known: {list(VERTICES)}") from None
        slots, samples = _leg_refs(v)
        if on is None:
            rows = {s: slice(None) for s in samples}
            lengths = [self.inputs.N] * len(samples)
        else:
            if len(on) != len(samples):
                raise SpecError(f"vertex {vertex} has {len(samples)} sample axes; got "
                                f"{len(on)} input blocks {tuple(on)}")
            rows = {s: self.block(b) for s, b in zip(samples, on)}
            lengths = [len(rows[s]) for s in samples]
        shape = (width,) * len(slots) + tuple(lengths)
        out = np.zeros(shape)
        letters = iter(string.ascii_letters)
        sample_letter = {s: next(letters) for s in samples}
        target = "".join(sample_letter[s] for s in samples)
        for term in v.terms:
            delta = _delta_tensor(slots, term.pairs, width)
            src = "".join(sample_letter[s] for s in term.index)
            tensor = self[term.tensor]
            if on is not None:  # each source axis over the block of the sample it carries
                tensor = tensor[np.ix_(*(rows[s] for s in term.index))]
            values = np.einsum(f"{src}->{target}", tensor)
            out += np.multiply.outer(delta, values)
        return out


def _leg_refs(v: Insertion) -> tuple[list[str], list[str]]:
    """Neuron refs and sample refs of a vertex's legs, in leg order (see vertices.py)."""
    return leg_refs(v.legs)


def _delta_tensor(slots: list[str], pairs, width: int) -> np.ndarray:
    """Π δ over ``pairs`` of neuron refs, as a dense array over ``slots``."""
    # union-find the slots into groups that must carry the same label
    parent = {s: s for s in slots}

    def root(s):
        while parent[s] != s:
            s = parent[s]
        return s

    for a, b in pairs:
        parent[root(a)] = root(b)
    groups = sorted({root(s) for s in slots})
    grid = np.indices((width,) * len(groups)).reshape(len(groups), -1)
    out = np.zeros((width,) * len(slots))
    labels = tuple(grid[groups.index(root(s))] for s in slots)
    out[labels] = 1.0
    return out


def evaluate_statistics(network, inputs: InputSet, names, layer: int | None = None, *,
                        form: str = "auto", backend: str = "auto",
                        max_memory_bytes: int | None = None) -> Statistics:
    """Evaluate ``names`` at ``layer`` (default L) on ``inputs`` with the fastest backend."""
    from feyntk.kernels.engine import evaluate

    layer = network.L if layer is None else network.check_layer(layer)
    values = evaluate(network, inputs.inputs, tuple(names), layer, form=form, backend=backend,
                      max_memory_bytes=max_memory_bytes)
    return Statistics(inputs, layer, network.expansion_width(layer),
                      {k: np.array(values[k], dtype=float) for k in names})
