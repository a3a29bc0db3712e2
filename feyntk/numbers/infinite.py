"""Infinite-width kernels K and Θ, layer by layer (MATH.md §4, worked examples).

    K^{(1)}   = C_b + C_W x·x/n0,         K^{(ℓ+1)} = C_b + C_W ⟨σ_a σ_b⟩_{K^{(ℓ)}}
    Θ^{(1)}   = λ_b + λ_W x·x/n0,         Θ^{(ℓ+1)} = λ_b + λ_W ⟨σ_a σ_b⟩ + C_W ⟨σ'_a σ'_b⟩ Θ^{(ℓ)}

with the hyperparameters of layer ℓ+1 and Gaussian expectations at K^{(ℓ)}. Arrays are (N, N)
indexed by sample. Each layer also carries an estimate of the accumulated integration error.
Repeated inputs are evaluated once and their rows repeated (:mod:`feyntk.numbers.repeated`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from feyntk.numbers.gaussian import pair_table
from feyntk.numbers.repeated import expand_samples, find_repeats
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
                  method: str = "auto") -> list[KernelLayer]:
    """K (and Θ if ``ntk``) for layers 1..``upto`` (default L); element ℓ-1 is layer ℓ."""
    x = check_inputs(inputs, network.n0)
    upto = network.L if upto is None else network.check_layer(upto)
    rep = find_repeats(x)
    if not rep.repeated:
        return _kernel_layers(network, x, upto, ntk, method, range(x.shape[0]))
    out = _kernel_layers(network, rep.unique, upto, ntk, method, rep.first)
    arrays = [f.name for f in fields(KernelLayer) if f.name != "layer"]
    return [replace(k, **{a: expand_samples(getattr(k, a), rep.inverse) for a in arrays})
            for k in out]


def _kernel_layers(network: Network, x: np.ndarray, upto: int, ntk: bool, method: str,
                   originals) -> list[KernelLayer]:
    """:func:`kernel_layers` on the inputs as given (``originals``: their indices in the
    caller's inputs, for error messages)."""
    act = network.activation
    if ntk and upto > 1:
        act.require_regular(1, "the NTK Θ")
    gram = x @ x.T / network.n0
    first = network.layer(1)
    K = first.C_b + first.C_W * gram
    T = first.lambda_b + first.lambda_W * gram if ntk else np.zeros_like(K)
    zero = np.zeros_like(K)
    out = [KernelLayer(1, K, T, zero, zero)]
    labels = [f"x[{int(i)}]" for i in originals]
    for l in range(2, upto + 1):
        hp = network.layer(l)
        prev = out[-1]
        ss = pair_table(act, prev.K, 0, method=method, labels=labels)
        K = hp.C_b + hp.C_W * ss.value
        K_err = hp.C_W * ss.error + hp.C_W * prev.K_error
        if ntk:
            dd = pair_table(act, prev.K, 1, method=method, labels=labels)
            T = hp.lambda_b + hp.lambda_W * ss.value + hp.C_W * dd.value * prev.Theta
            T_err = (hp.lambda_W * ss.error + hp.C_W * (dd.error * np.abs(prev.Theta)
                                                         + np.abs(dd.value) * prev.Theta_error))
        else:
            T, T_err = np.zeros_like(K), np.zeros_like(K)
        out.append(KernelLayer(l, _sym(K), _sym(T), K_err, T_err))
    return out


def _sym(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def infinite_kernels(network: Network, inputs, layer: int | None = None, *,
                     method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The infinite-width (K, Θ) at ``layer`` (default L), each (N, N)."""
    last = kernel_layers(network, inputs, layer, method=method)[-1]
    return last.K, last.Theta
