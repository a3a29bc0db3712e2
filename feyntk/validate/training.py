"""Monte Carlo of one real gradient-descent step: the measured mean change of the NTK.

Each sampled network takes one full-batch GD step on ``L = ½ Σ (z − y)²`` with learning rate
``η λ_μ`` (MATH.md §1 learning-rate tensor), from initialisation, for η and −η. The O(η) and
O(η²) parts are separated exactly per network by
``a = (ΔĤ(η) − ΔĤ(−η))/2η`` and ``b = (ΔĤ(η) + ΔĤ(−η))/2η²`` (each up to O(η²) corrections), and
averaged over networks with standard errors; the full change at each η is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.spec.network import Network, check_inputs
from feyntk.validate.sample import FieldSpec, forward, learning_rates, network_key, sample_parameters

jax.config.update("jax_enable_x64", True)


@dataclass(frozen=True)
class MeasuredStep:
    """Monte Carlo means and standard errors, arrays (n_L, n_L, N_eval, N_eval).

    Attributes:
        first, first_se: the O(η) coefficient of E[ΔĤ].
        second, second_se: the O(η²) coefficient.
        etas: learning rates of the full steps; ``change``/``change_se`` their E[ΔĤ(η)].
    """

    first: np.ndarray
    first_se: np.ndarray
    second: np.ndarray
    second_se: np.ndarray
    etas: tuple[float, ...]
    change: np.ndarray
    change_se: np.ndarray
    samples: int


def _step_fn(spec: FieldSpec, xe, xt, y, etas):
    lam = learning_rates(spec)

    def ntk(theta):
        J = jax.jacrev(lambda t: forward(spec, t, xe))(theta)  # (n_L, N_e, P)
        return jnp.einsum("iap,jbp,p->ijab", J, J, lam)

    def loss(theta):
        return 0.5 * jnp.sum((forward(spec, theta, xt) - y.T) ** 2)

    def one(key):
        theta = sample_parameters(spec, key)
        h0 = ntk(theta)
        g = jax.grad(loss)(theta)
        deltas = jnp.stack([ntk(theta - eta * lam * g) - h0 for eta in etas])
        return deltas

    return jax.jit(jax.vmap(one))


def measure_ntk_step(network: Network, eval_inputs, train_inputs, targets, *, samples: int,
                     eta: float = 0.05, etas: Sequence[float] = (0.1, 0.2, 0.4), seed: int = 0,
                     chunk: int = 64) -> MeasuredStep:
    """Sample networks, take one GD step each, and average the NTK change."""
    xe = jnp.asarray(check_inputs(eval_inputs, network.n0))
    xt = jnp.asarray(check_inputs(train_inputs, network.n0))
    y = jnp.asarray(np.asarray(targets, dtype=float).reshape(xt.shape[0], network.widths[-1]))
    spec = FieldSpec(network, network.widths[-1], ("z",))
    all_etas = (eta, -eta) + tuple(etas)
    fn = _step_fn(spec, xe, xt, y, all_etas)
    acc = None
    count = 0
    for start in range(0, samples, chunk):
        idx = jnp.arange(start, min(start + chunk, samples))
        keys = jax.vmap(lambda i: network_key(seed, i))(idx)
        d = np.asarray(fn(keys))  # (B, E, n_L, n_L, N, N)
        a = (d[:, 0] - d[:, 1]) / (2 * eta)
        b = (d[:, 0] + d[:, 1]) / (2 * eta**2)
        stack = np.concatenate([a[:, None], b[:, None], d[:, 2:]], axis=1)
        s1, s2 = stack.sum(0), (stack**2).sum(0)
        acc = (s1, s2) if acc is None else (acc[0] + s1, acc[1] + s2)
        count += stack.shape[0]
    mean = acc[0] / count
    var = (acc[1] / count - mean**2) * count / (count - 1)
    se = np.sqrt(np.maximum(var, 0.0) / count)
    return MeasuredStep(mean[0], se[0], mean[1], se[1], tuple(etas), mean[2:], se[2:], count)
