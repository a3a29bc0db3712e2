"""Monte Carlo estimate of the six-point vertex V6 (MATH.md §7) by distinct neuron triples.

    V6_{a1..a6} = n² κ(z_{i;a1} z_{i;a2}, z_{j;a3} z_{j;a4}, z_{k;a5} z_{k;a6}),   i, j, k distinct,

n = n_{layer-1}; it equals ``n² κ3`` of the sampled layer up to O(1/n) (the sampler's V6 is
V6 + O(1/n), like every n-scaled cumulant; fit widths with :mod:`feyntk.validate.compare`).

Why a module of its own: :mod:`feyntk.validate.estimators` derives ``E[a] − E[x]E[y]`` estimators
over at most two distinct neurons; a third cumulant of three neurons has three product terms
and a triple product of expectations.

Estimation (invariants):
    * Per network, with ``X_i = z_i ⊗ z_i`` (N×N) for the M sampled neurons, the means over
      ordered distinct triples ``A = ⟨X_i⊗X_j⊗X_k⟩``, pairs ``B = ⟨X_i⊗X_j⟩`` and neurons
      ``C = ⟨X_i⟩`` come from power sums (p1 = ΣX, p2 = ΣX⊗X, p3 = ΣX⊗X⊗X):
      ``Σ_{distinct} = p1³ − p2·p1 (three placements) + 2 p3``, ``Σ_{i≠j} = p1² − p2``.
    * Across networks, ``κ = E[A] − Σ_3 E[B]E[C] + 2 E[C]E[C]E[C]`` with every product of
      expectations a U-statistic over distinct networks (pairs for E[B]E[C], triples for E[C]³),
      so there is no 1/S bias (the naive product is biased by O(1/(S·M)), larger than V6/n²).
    * Standard errors: a block jackknife (network s in block s mod ``blocks``), streaming per-block
      sums of A, B, C, B⊗C, C⊗C, C⊗C⊗C; memory does not grow with S.
    * Value and se are multiplied by n². Index order [a1, …, a6] as ``predict`` stores V6.

Measured (tanh, widths [2, n, n, n], C_W 1.5, C_b 0.1, x = (1, 0.3); V6 = 0.0779): the se is
about 10/√S at n = 8 and grows roughly like √n (M = n neurons per network, n² scaling): at n = 8,
4·10⁵ networks give ±0.016 (20 % of V6); see tests/test_second_order.py and
tests/test_second_order_mc.py for the runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import SpecError
from feyntk.spec.config import Request, check_samples, parse_request
from feyntk.validate.sample import plan_sampling, sample_fields

jax.config.update("jax_enable_x64", True)

NAME = "V6"


def triple_averages(z, xp=jnp) -> dict:
    """One network's means over distinct neurons of products of ``X_i = z_i ⊗ z_i``.

    Args:
        z: (M, N) preactivations of M ≥ 3 neurons at N inputs.

    Returns:
        ``{"A": (N,)*6 mean over ordered distinct triples of X_i⊗X_j⊗X_k, "B": (N,)*4 over
        ordered distinct pairs of X_i⊗X_j, "C": (N, N) mean of X_i}``.
    """
    M = z.shape[0]
    p1 = xp.einsum("ia,ib->ab", z, z)
    p2 = xp.einsum("ia,ib,ic,id->abcd", z, z, z, z)
    p3 = xp.einsum("ia,ib,ic,id,ie,if->abcdef", z, z, z, z, z, z)
    p11 = xp.einsum("ab,cd->abcd", p1, p1)
    t12_3 = xp.einsum("abcd,ef->abcdef", p2, p1)
    t13_2 = xp.einsum("abef,cd->abcdef", p2, p1)
    t23_1 = xp.einsum("ab,cdef->abcdef", p1, p2)
    p111 = xp.einsum("abcd,ef->abcdef", p11, p1)
    A = (p111 - t12_3 - t13_2 - t23_1 + 2 * p3) / (M * (M - 1) * (M - 2))
    B = (p11 - p2) / (M * (M - 1))
    return {"A": A, "B": B, "C": p1 / M}


@dataclass(frozen=True)
class TripleAverages:
    """Hashable per-network reducer for :func:`~feyntk.validate.sample.sample_fields`."""

    def __call__(self, fields: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        return triple_averages(fields["z"])


_KEYS = ("n", "A", "B", "C", "BC", "CC", "CCC")


class SixPointSums:
    """Per-block sums of the per-network A, B, C and the products the U-statistics need."""

    def __init__(self, blocks: int = 40):
        if blocks < 2:
            raise SpecError(f"blocks must be >= 2 for a jackknife, got {blocks}")
        self.blocks = int(blocks)
        self.sums: dict[str, np.ndarray] | None = None
        self.count = 0

    def update(self, A, B, C) -> None:
        """Add networks ``count, count+1, …`` (rows of A (S,N⁶), B (S,N⁴), C (S,N²))."""
        A, B, C = (np.asarray(t, dtype=np.float64) for t in (A, B, C))
        m = len(A)
        onehot = np.zeros((self.blocks, m))
        onehot[(self.count + np.arange(m)) % self.blocks, np.arange(m)] = 1.0
        rows = {"n": np.ones((m,)), "A": A, "B": B, "C": C,
                "BC": np.einsum("sabcd,sef->sabcdef", B, C),
                "CC": np.einsum("sab,scd->sabcd", C, C),
                "CCC": np.einsum("sab,scd,sef->sabcdef", C, C, C)}
        add = {k: np.tensordot(onehot, v, axes=(1, 0)) for k, v in rows.items()}
        self.sums = add if self.sums is None else {k: self.sums[k] + add[k] for k in _KEYS}
        self.count += m

    @staticmethod
    def kappa(s: Mapping[str, np.ndarray]) -> np.ndarray:
        """κ3 from total sums (unbiased U-statistics over distinct networks)."""
        S = float(s["n"])
        if S < 3:
            raise SpecError(f"{S:.0f} network(s): the triple U-statistic needs at least 3")
        EA = s["A"] / S
        c1 = s["C"]
        bc = (np.einsum("abcd,ef->abcdef", s["B"], c1) - s["BC"]) / (S * (S - 1))
        c3 = (np.einsum("ab,cd,ef->abcdef", c1, c1, c1)
              - np.einsum("abcd,ef->abcdef", s["CC"], c1)
              - np.einsum("abef,cd->abcdef", s["CC"], c1)
              - np.einsum("ab,cdef->abcdef", c1, s["CC"])
              + 2 * s["CCC"]) / (S * (S - 1) * (S - 2))
        three = (bc + np.einsum("abefcd->abcdef", bc)    # E[X1X2]E[X3] + E[X1X3]E[X2]
                 + np.einsum("cdefab->abcdef", bc))  # + E[X2X3]E[X1]
        return EA - three + 2 * c3

    def result(self, n: int) -> dict[str, np.ndarray]:
        """``{"value": n²κ3, "se": n²·(block-jackknife se)}``, shape (N,)*6."""
        if self.sums is None:
            raise SpecError("no networks were added")
        total = {k: v.sum(0) for k, v in self.sums.items()}
        value = self.kappa(total)
        jk = np.stack([self.kappa({k: total[k] - self.sums[k][b] for k in _KEYS})
                       for b in range(self.blocks)])
        B = self.blocks
        se = np.sqrt((B - 1) / B * ((jk - jk.mean(0)) ** 2).sum(0))
        return {"value": n * n * value, "se": n * n * se}


def v6_from_z(z: np.ndarray, n: int, *, blocks: int = 40) -> dict[str, np.ndarray]:
    """V6 estimate from given preactivations ``z`` (S, M, N) of S networks (M ≥ 3 neurons).

    Returns ``{"value", "se"}`` exactly as :func:`estimate_v6` computes them.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3 or z.shape[1] < 3:
        raise SpecError(f"z must be (S, M >= 3, N), got shape {z.shape}")
    avg = jax.device_get(jax.jit(jax.vmap(TripleAverages()))({"z": jnp.asarray(z)}))
    acc = SixPointSums(blocks)
    acc.update(avg["A"], avg["B"], avg["C"])
    return acc.result(n)


def estimate_v6(request, *, neurons: int | None = None, chunk: int | None = None,
                max_memory_bytes: int | None = None, blocks: int = 40,
                progress: bool = False) -> dict:
    """Monte Carlo estimate of V6 at ``request.layer`` from ``request.samples`` real networks.

    Args:
        request: a :class:`~feyntk.spec.config.Request` or config dict (its ``tensors`` are
            ignored here); networks drawn from ``seed`` exactly as by ``feyntk.sample``.
        neurons: M ≥ 3 sampled neurons of the layer (default all n_ℓ).
        chunk, max_memory_bytes, progress: as for :func:`~feyntk.validate.estimators.estimate`.
        blocks: jackknife blocks.

    Returns:
        ``{"n", "layer", "samples", "neurons", "tensors": {"V6": {"value", "se"}}, "notes"}``;
        value and se of shape (N,)*6, the coefficient of 1/n² (n = n_{layer-1}).

    Raises:
        SpecError: samples < 3, or a layer narrower than 3 neurons.
    """
    request = request if isinstance(request, Request) else parse_request(request)
    samples = check_samples(request.samples)
    plan = plan_sampling(request.network, request.inputs, request.layer, ("z",), neurons=neurons,
                         chunk=chunk, max_memory_bytes=max_memory_bytes, min_neurons=3)
    n = request.network.expansion_width(request.layer)
    acc = SixPointSums(blocks)
    for _, avg in sample_fields(plan, samples, request.seed, reduce=TripleAverages(),
                                progress=progress):
        acc.update(avg["A"], avg["B"], avg["C"])
    note = (f"n^2 kappa(z_i z_i, z_j z_j, z_k z_k) over ordered distinct triples of neurons "
            f"(= V6 + O(1/n)); {samples} networks, M = {plan.neurons} neurons of layer "
            f"{request.layer}; products of expectations by U-statistics over distinct networks, "
            f"se by a {blocks}-block jackknife")
    return {"n": n, "layer": request.layer, "samples": samples, "neurons": plan.neurons,
            "tensors": {NAME: acc.result(n)}, "notes": {NAME: note}}
