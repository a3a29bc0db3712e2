"""Monte Carlo of real symmetrized networks f_G (ground truth for :mod:`.tensors`, MATH.md §5, §7).

A real f_G is built in JAX: for every sampled MLP θ (drawn exactly as
:func:`feyntk.validate.sample.sample_parameters` draws it), ``f_G(θ; x) = |G|⁻¹ Σ_g f(θ; ρ(g)x)``
is one JAX function of θ, and its fields z, Ĥ, dĤ, ddÎ, ddÎÎ are its derivatives by autodiff
(the same jacrev / nested-jvp constructions as :func:`feyntk.validate.sample.network_fields`,
applied to f_G). The tensors are read off with the project's estimators
(:mod:`feyntk.validate.estimators`: distinct-neuron correlators, U-statistics, delta-method
standard errors). Invariant groups only (output neurons of f_G are then exchangeable and
independent at leading order, as the estimators assume).

:func:`symmetrized_output_map`: f_G as an :class:`~feyntk.training.sample.OutputMap`, so that
:func:`~feyntk.training.sample.train_sample_network` trains real symmetrized networks (any
output action) with f_G's own infinite-width NTK Θ_G in its estimator.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import GroupError
from feyntk.spec.network import Network, check_inputs
from feyntk.symmetry.groups import Group
from feyntk.symmetry.kernels import check_group, orbit_kernels, symmetrized_kernels
from feyntk.validate.estimators import ESTIMATORS, _result, _update, averages_for, fields_needed
from feyntk.validate.sample import (fields_of_outputs, forward, plan_sampling,
                                    sample_parameters)

jax.config.update("jax_enable_x64", True)


def symmetrized_outputs(spec, theta, x, mats, routs):
    """f_G(θ; x) = |G|⁻¹ Σ_g ρ_out(g)ᵀ f(θ; ρ(g)x), (n_L, N), for x (N, n0).

    mats: (|G|, n0, n0) the input action; routs: (|G|, n_L, n_L) the output action.
    """
    orbit = jnp.einsum("gij,aj->gai", mats, x)
    outs = jax.vmap(lambda xs: forward(spec, theta, xs))(orbit)             # (|G|, n_L, N)
    return jnp.einsum("gji,gjn->in", routs, outs) / mats.shape[0]


def symmetrized_output_map(network: Network, group: Group):
    """f_G for :func:`feyntk.training.sample.train_sample_network` (its ``output_map``).

    The NTK is Θ_G of :mod:`.kernels`: the scalar θ_G (N, N) for an invariant group (output
    neurons independent), the flattened (N·n_L, N·n_L) matrix-valued Θ_G for an output action.
    """
    from feyntk.training.sample import OutputMap

    check_group(network, group)
    nL = network.widths[-1]

    def ntk(X):
        sk = symmetrized_kernels(orbit_kernels(network, group, X))
        return sk.scalar("Theta") if group.invariant else sk.flat("Theta")

    return OutputMap(symmetrized_outputs, (group.matrices, group.output_matrices(nL)), ntk,
                     points=group.order, name=f"symmetrized networks ({group.name})")


def symmetrized_fields(spec, theta, x, mats):
    """Fields of f_G for one network: like ``network_fields`` with f replaced by the orbit mean.

    x: (N, n0) base inputs; mats: (|G|, n0, n0) the input action.
    """
    N = x.shape[0]
    orbit = jnp.einsum("gij,aj->gai", mats, x)

    def f(t):  # (M·N,) o = i·N + a: the orbit mean of the MLP's outputs
        return jax.vmap(lambda xs: forward(spec, t, xs))(orbit).mean(0).reshape(-1)

    return fields_of_outputs(spec, theta, f, N)


@functools.partial(jax.jit, static_argnames=("spec", "reduce"))
def _chunk(key, indices, x, mats, spec, reduce):
    def one(index):
        theta = sample_parameters(spec, jax.random.fold_in(key, index))
        return reduce(symmetrized_fields(spec, theta, x, mats))
    return jax.vmap(one)(indices)


def sample_symmetrized(network: Network, group: Group, inputs, tensors, samples: int,
                       seed: int = 0, *, layer: int | None = None, neurons: int | None = None,
                       chunk: int | None = None) -> dict:
    """Monte Carlo estimates of f_G's ``tensors`` at ``layer`` (default L) on the base inputs.

    Returns ``{"n", "layer", "samples", "neurons", "tensors": {NAME: {"value", "se"}}}`` in the
    layout of :func:`feyntk.validate.estimators.estimate` (K, Θ: the full finite-width E[zz],
    E[Ĥ_ii]; K¹, Θ¹ subtract the infinite-width K_G, Θ_G; others are n × cumulant).
    Network s uses ``fold_in(PRNGKey(seed), s)``, as the MLP sampler.
    """
    check_group(network, group)
    if not group.invariant:
        raise GroupError("sample_symmetrized covers invariant groups (no output_action): an "
                         "output action mixes f_G's output neurons, which the distinct-neuron "
                         "estimators assume independent")
    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    chosen = {name: ESTIMATORS[name] for name in tensors}
    pairs = any(e.pairs for e in chosen.values())
    plan = plan_sampling(network, x, layer, fields_needed(chosen.values()), neurons=neurons,
                         min_neurons=2 if pairs else 1)
    # the forward pass runs on the |G|·N orbit points: |G| times fewer networks per chunk
    C = int(chunk or max(1, plan.chunk // group.order))
    C = min(C, int(samples))
    reduce = averages_for(chosen.values())
    key = jax.random.PRNGKey(seed)
    xj, mats = jnp.asarray(x), jnp.asarray(group.matrices)
    moments: dict = {}
    for start in range(0, int(samples), C):
        got = min(C, int(samples) - start)
        avg = _chunk(key, jnp.arange(start, start + C, dtype=jnp.uint32), xj, mats,
                     spec=plan.spec, reduce=reduce)
        avg = {k: np.asarray(v)[:got] for k, v in jax.device_get(avg).items()}
        moments = _update(moments, chosen, avg)
    offsets = {}
    if any(e.offset for e in chosen.values()):
        sk = symmetrized_kernels(orbit_kernels(network.truncate(layer), group, x))
        offsets = {"K": sk.scalar("K"), "Theta": sk.scalar("Theta")}
    n = network.expansion_width(layer)
    return {"n": n, "layer": layer, "samples": int(samples), "neurons": plan.neurons,
            "tensors": {name: _result(e, moments[(e.a, e.product)], n, offsets)
                        for name, e in chosen.items()}}
