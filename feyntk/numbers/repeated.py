"""Repeated inputs: exact duplicates are evaluated once and their rows repeated.

Two identical inputs give identical preactivations in every network, so every statistic the
engine derives (:func:`feyntk.api.derivable`) satisfies ``T(x)[a1..ap] = T(u)[inv[a1]..inv[ap]]``
with ``u`` the distinct rows of ``x`` and ``inv`` the position in ``u`` of every input: all axes
of the derived tensors are sample axes (MATH.md index order; neuron labels are summed out). The
evaluation entry points (:func:`feyntk.numbers.evaluate.evaluate`,
:func:`feyntk.kernels.engine.evaluate`, :func:`feyntk.numbers.infinite.kernel_layers`) call
:func:`find_repeats` on their inputs, evaluate on the distinct ones and :meth:`Repeats.expand`
the results. This is exact (no integral is taken at a singular K that the duplicates would
create), so duplicates work in every form and backend, also where a coinciding pair would
otherwise be refused (relu's δ-terms, the inverse-metric form's K⁻¹). Inputs that are merely
collinear (x and 2x) are distinct rows and keep their own treatment.

The layer driver does this for all of them (:func:`feyntk.numbers.driver.on_distinct`).
Downstream of the entry everything sees distinct inputs: memory is counted for them (plus the
expanded results), and refusals name the *original* index of each distinct input (its first
occurrence), see :attr:`Repeats.first` and :func:`relabelled`.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from feyntk.errors import FeyntkError


@dataclass(frozen=True)
class Repeats:
    """Distinct rows of an (N, n0) input array.

    Attributes:
        unique: (M, n0) distinct rows, in order of first occurrence (``unique = x`` when no
            row repeats).
        inverse: (N,) position in ``unique`` of every input: ``x = unique[inverse]``.
        first: (M,) index in ``x`` of the first occurrence of every distinct row.
    """

    unique: np.ndarray
    inverse: np.ndarray
    first: np.ndarray

    @property
    def repeated(self) -> bool:
        """Whether some input occurs more than once."""
        return len(self.first) < len(self.inverse)

    @property
    def N(self) -> int:
        return len(self.inverse)

    @property
    def M(self) -> int:
        return len(self.first)

    def labels(self) -> list[str]:
        """Names of the distinct inputs for error messages: ``x[i]``, i its original index."""
        return [f"x[{int(i)}]" for i in self.first]

    def expand(self, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every tensor over the distinct inputs → the same tensor over all N inputs."""
        return {k: expand_samples(v, self.inverse) for k, v in tensors.items()}


def find_repeats(x: np.ndarray) -> Repeats:
    """The distinct rows of ``x`` (exact equality; 0.0 and -0.0 are equal) and the inverse index.

    Rows that differ in any bit of any entry other than the sign of a zero are distinct, however
    close or collinear they are.
    """
    x = np.asarray(x)
    seen: dict[tuple, int] = {}
    inverse = np.empty(x.shape[0], dtype=np.int64)
    first: list[int] = []
    for i, row in enumerate(x.tolist()):
        key = tuple(row)
        j = seen.get(key)
        if j is None:
            j = seen[key] = len(first)
            first.append(i)
        inverse[i] = j
    first_ = np.asarray(first, dtype=np.int64)
    return Repeats(x[first_], inverse, first_)


def expand_samples(a: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """``a[inverse[i1], ..., inverse[ip]]`` over all axes (each must be a sample axis of length M).

    Raises ``ValueError`` for an array with an axis of another length (it cannot be a tensor
    whose axes are all sample axes).
    """
    a = np.asarray(a)
    M = int(inverse.max()) + 1 if len(inverse) else 0
    if any(s != M for s in a.shape):
        raise ValueError(f"expand_samples: array of shape {a.shape} does not have only sample "
                         f"axes of length M = {M}")
    if a.ndim == 0:
        return a.copy()
    return a[np.ix_(*([inverse] * a.ndim))]


_LABEL = re.compile(r"x\[(\d+)\]")
_SAMPLES = re.compile(r"samples \[([\d, ]*)\]")


def relabel(message: str, first: np.ndarray) -> str:
    """Rewrite the sample names of a message about distinct inputs to their original indices.

    Knows the two forms the integral layer uses: ``x[j]`` and ``samples [j, k, ...]``.
    """
    def one(j: str) -> str:
        return str(int(first[int(j)]))

    out = _LABEL.sub(lambda m: f"x[{one(m.group(1))}]", message)
    return _SAMPLES.sub(lambda m: "samples [" + ", ".join(
        one(j) for j in m.group(1).split(",") if j.strip()) + "]", out)


@contextlib.contextmanager
def relabelled(first: np.ndarray | None):
    """Re-raise feyntk errors raised inside with their sample names mapped by :func:`relabel`.

    For code that only knows the distinct inputs' positions (``first`` None: nothing changes).
    """
    if first is None:
        yield
        return
    try:
        yield
    except FeyntkError as exc:
        raise type(exc)(relabel(str(exc), first)) from None
