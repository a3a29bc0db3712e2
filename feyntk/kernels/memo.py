"""Per-level integrals of one evaluation, kept for the error estimate's re-runs.

The quadrature error estimate (:func:`feyntk.numbers.driver.propagated_errors`) runs the
recursion twice more with the 3- and 4-sample caps halved and quartered. K comes from 1- and
2-sample integrals, which the caps do not touch, so every layer of a re-run sees the same K and
asks for integrals of the same subsets at levels the first run has already computed (each
request follows the same refinement path, only stopped earlier). :class:`LevelMemo` keeps the
kernel outputs of every (table kind, K, level) row by row, so the re-runs cost their
contractions only; the values are those of the first run, bit for bit.

Memory is bounded by ``limit`` bytes: past it, results are computed again instead of kept.

Common mistakes:
    * The key must hold everything the kernel output depends on besides the level: the
      d-kernel's requests and half-grid flag, K and the subsets (:func:`key_of`). One memo
      belongs to one generated unit (one activation), as a :class:`KernelStep` and its copies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

MEMO_BYTES = 1 << 28
"""Default bound of a memo (256 MiB; tanh, all fifteen tensors, N = 16, depth 10 keeps 2 MiB)."""


def key_of(d: int, reqs, half: bool, K: np.ndarray, subsets: np.ndarray) -> tuple:
    """The memo key of one ``integrals`` call (a digest of K and the subsets)."""
    h = hashlib.blake2b(digest_size=16)
    for a in (K, subsets):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return d, tuple(reqs), bool(half), h.digest()


@dataclass
class LevelMemo:
    """Kernel outputs by (key, rank, level), row by row (rows: the call's subsets)."""

    limit: int = MEMO_BYTES
    store: dict = field(default_factory=dict)
    nbytes: int = 0

    def run(self, key: tuple, m: int, rows: np.ndarray, C: int, nout: int, compute):
        """``compute(rows, m)`` (an array (len(rows), nout)) with the rows already computed
        at level m taken from the memo and the others computed and kept (within the bound)."""
        entry = self.store.get((key, m))
        if entry is None:
            size = C * (8 * nout + 1)
            if self.nbytes + size > self.limit:
                return compute(rows, m)
            entry = self.store[(key, m)] = (np.zeros(C, bool), np.empty((C, nout)))
            self.nbytes += size
        have, vals = entry
        miss = rows[~have[rows]]
        if len(miss):
            vals[miss] = compute(miss, m)
            have[miss] = True
        return vals[rows]
