"""Infinite-width kernels K and Θ, layer by layer (MATH.md §4, worked examples).

    K^{(1)}   = C_b + C_W x·x/n0,         K^{(ℓ+1)} = C_b + C_W ⟨σ_a σ_b⟩_{K^{(ℓ)}}
    Θ^{(1)}   = λ_b + λ_W x·x/n0,         Θ^{(ℓ+1)} = λ_b + λ_W ⟨σ_a σ_b⟩ + C_W ⟨σ'_a σ'_b⟩ Θ^{(ℓ)}

with the hyperparameters of layer ℓ+1 and Gaussian expectations at K^{(ℓ)}. Arrays are (N, N)
indexed by sample. Each layer also carries an estimate of the accumulated integration error.
Repeated inputs are evaluated once and their rows repeated (:mod:`feyntk.numbers.repeated`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from feyntk.numbers import driver
from feyntk.numbers.gaussian import pair_table
from feyntk.numbers.repeated import expand_samples
from feyntk.spec.activation import Activation
from feyntk.spec.network import Network, check_inputs


@dataclass(frozen=True)
class KernelLayer:
    """Infinite-width kernels of one layer.

    Attributes:
        layer: ℓ (1-based).
        K, Theta: (N, N) kernels, sample-indexed.
        K_error, Theta_error: (N, N) estimates of the accumulated quadrature error.
    """

    layer: int
    K: np.ndarray
    Theta: np.ndarray
    K_error: np.ndarray
    Theta_error: np.ndarray


def kernel_layers(network: Network, inputs, upto: int | None = None, *, ntk: bool = True,
                  method: str = "auto", max_memory_bytes: int | None = None) -> list[KernelLayer]:
    """K (and Θ if ``ntk``) for layers 1..``upto`` (default L); element ℓ-1 is layer ℓ.

    Runs through the layer driver (:func:`feyntk.numbers.driver.run`): repeated inputs are
    evaluated once, and requests whose layers would not fit in ``max_memory_bytes`` (default
    :data:`~feyntk.numbers.driver.MEMORY_BUDGET`) are refused before allocating.
    """
    x = check_inputs(inputs, network.n0)
    upto = network.L if upto is None else network.check_layer(upto)
    stepper = InfiniteStep(network.activation, ntk, method, upto)
    return driver.on_distinct(
        x, stepper, lambda u: driver.run(network, u, upto, stepper, keep=True), _expand,
        what=f"computing the infinite-width kernels up to layer {upto}",
        output_ranks=(2,) * (4 * upto), budget=max_memory_bytes)


def _expand(layers: list[KernelLayer], rep) -> list[KernelLayer]:
    arrays = [f.name for f in fields(KernelLayer) if f.name != "layer"]
    return [replace(k, **{a: expand_samples(getattr(k, a), rep.inverse) for a in arrays})
            for k in layers]


@dataclass
class InfiniteStep:
    """The infinite-width K, Θ behind :class:`feyntk.numbers.driver.LayerStep`; states are
    :class:`KernelLayer`. ``ntk``: Θ too (else zeros); ``upto``: layers kept (for the memory
    model)."""

    act: Activation
    ntk: bool
    method: str
    upto: int
    originals: tuple[int, ...] | None = None
    labels: list[str] = field(default_factory=list)

    def memory(self, N: int) -> tuple[int, str]:
        return (driver.array_bytes((2,) * 4, N, copies=self.upto),
                f"K, Θ and their error estimates at {self.upto} layers")

    def start(self, network: Network, x: np.ndarray) -> KernelLayer:
        if self.ntk and self.upto > 1:
            self.act.require_regular(1, "the NTK Θ")
        self.labels = [f"x[{i}]" for i in (range(x.shape[0]) if self.originals is None
                                          else self.originals)]
        K, T = driver.first_kernels(network, x)
        zero = np.zeros_like(K)
        return KernelLayer(1, K, T if self.ntk else zero, zero, zero)

    def step(self, prev: KernelLayer, hp: driver.Hyper) -> KernelLayer:
        act, method, labels = self.act, self.method, self.labels
        ss = pair_table(act, prev.K, 0, method=method, labels=labels)
        K = hp.C_b + hp.C_W * ss.value
        K_err = hp.C_W * ss.error + hp.C_W * prev.K_error
        if self.ntk:
            dd = pair_table(act, prev.K, 1, method=method, labels=labels)
            T = hp.lambda_b + hp.lambda_W * ss.value + hp.C_W * dd.value * prev.Theta
            T_err = (hp.lambda_W * ss.error + hp.C_W * (dd.error * np.abs(prev.Theta)
                                                         + np.abs(dd.value) * prev.Theta_error))
        else:
            T, T_err = np.zeros_like(K), np.zeros_like(K)
        return KernelLayer(hp.index, _sym(K), _sym(T), K_err, T_err)


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def infinite_kernels(network: Network, inputs, layer: int | None = None, *,
                     method: str = "auto",
                     max_memory_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The infinite-width (K, Θ) at ``layer`` (default L), each (N, N)."""
    last = kernel_layers(network, inputs, layer, method=method,
                         max_memory_bytes=max_memory_bytes)[-1]
    return last.K, last.Theta
