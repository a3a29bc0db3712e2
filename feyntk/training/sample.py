"""Monte Carlo of trained finite-width MLP ensembles (MATH.md §1, §7).

Real networks are drawn from their initialisation (MATH.md §1) and trained on
``L = ½ Σ_{α∈A} Σ_j (z_{j;α} − y_{j;α})²`` at the output layer, with the learning-rate tensor λ
(λ_W/n_{ℓ−1} for weights, λ_b for biases):

* gradient descent, ``θ ← θ − η λ ⊙ ∇_θ L``: exactly T steps, or (T = ∞) blocks of
  :data:`BLOCK` steps until every network's training residual ``max|z_A − y|`` is below
  ``max(RTOL·max|y|, ATOL)``;
* gradient flow, ``dθ/dt = −λ ⊙ ∇_θ L``: classical RK4 in parameter space with the fixed step
  ``h = t/⌈t/h₀⌉``, ``h₀ = FLOW_STEP/λ_max(Θ_AA)`` (Θ the infinite-width NTK); t = ∞ runs blocks of
  RK4 steps of size h₀ until converged as above. RK4's global error is O(h⁴): for a frozen NTK
  the decay factor of the mode λ is off by at most ≈ (hλ)⁴/(120 e) ≈ 2e-8 at hλ = 0.05, for every
  t; at t = ∞ a linear-in-parameters model reaches the exact interpolant, while a nonlinear
  network's end point (which depends on the path) carries an O(h⁴) error.

A converged network stops at the first block boundary where its own residual is below the
tolerance, so every number depends only on (seed, network index), never on the chunking.

Estimator (MATH.md §7). With f_0, f_T the outputs at initialisation and after training and
``P = Θ_eA Θ_AA⁻¹ (I − g(Θ_AA))`` the infinite-width propagator, each network gives
``g[i, δ] = f_T[i, δ] − f_0[i, δ] + Σ_α P[δ, α] f_0[i, α]``. Since E[f_0] = 0 at every width,
E[g] = E[f_T] exactly, while the O(1) fluctuations of f_T cancel (those of g are O(1/√n)).

Index order: per-network arrays are neuron first, ``[i, δ]``; the returned means are
``[δ, j]``, shape (N_e, n_L), like the targets.

Other networks made of the MLP's parameters (:class:`OutputMap`, e.g. the symmetrized network
f_G of :mod:`feyntk.symmetry.sample`) train by the same code: the same draws θ_0 (same seeds), the
same loss and update ``θ ← θ − η λ ⊙ ∇_θ L`` with z replaced by the map's outputs, and the same
estimator with the map's own infinite-width NTK in P. When that NTK couples output neurons (an
output action), P acts on (input, neuron) pairs, ``g[i, δ] = f_T − f_0 + Σ_{α,j} P[(δ,i), (α,j)]
f_0[j, α]``; E[f_0] = 0 still holds whenever the map is linear in the last layer's (W_L, b_L).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import FeyntkError, MemoryBudgetError, SpecError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.network import Network, check_inputs
from feyntk.training.ensemble import check_targets
from feyntk.training.infinite import propagator, spectrum
from feyntk.training.schedule import Schedule
from feyntk.validate.sample import (DEFAULT_MAX_MEMORY_BYTES, FieldSpec, forward,
                                    learning_rates, network_key, sample_parameters,
                                    size_chunk)

jax.config.update("jax_enable_x64", True)

CPU_CHUNK_BYTES = 64 * 1024 ** 2
"""On CPU, default chunks are sized for this much memory (well under 256 MB): chunks that stay
in cache train faster (measured ~1.3x against 256 MB chunks on a 2-core CPU)."""
FLOW_STEP = 0.05
"""RK4 step of gradient flow in units of 1/λ_max(Θ_AA)."""
BLOCK = 256
"""Steps between convergence checks when training to T = ∞ / t = ∞."""
FIXED_BLOCK = 4096
"""Steps per device call for a finite schedule (the sequence of steps is the same)."""
MAX_STEPS = 200_000
"""Cap on GD (or RK4) steps when training to convergence."""
RTOL, ATOL = 1e-12, 1e-13
"""Converged when max|z_A − y| < max(RTOL·max|y|, ATOL)."""
BLOWUP = 1e8
"""A residual this many times max(1, max|y|) larger counts as diverged."""
_SAFETY = 1.5


def mlp_outputs(spec: FieldSpec, theta, x):
    """The MLP's outputs (n_L, N): the default :attr:`OutputMap.apply`."""
    return forward(spec, theta, x)


@dataclass(frozen=True, eq=False)
class OutputMap:
    """A network whose parameters are the MLP's θ, trained in place of the MLP.

    Attributes:
        apply: ``apply(spec, θ, x, *aux) -> (n_L, N)`` outputs on the inputs x (N, n0); a
            module-level function (it is a static argument of the jitted steps).
        aux: arrays passed to ``apply`` after x (traced, e.g. the group's matrices).
        ntk: ``ntk(X) -> Θ``, the map's infinite-width NTK on the rows X: (N, N) when its output
            neurons are independent with one kernel, or (N·n_L, N·n_L) with row ``a·n_L + i``
            when it couples them.
        points: forward-pass points per input (memory estimate; |G| for f_G).
        name: what is trained, for messages.
    """

    apply: Callable
    aux: tuple
    ntk: Callable
    points: int = 1
    name: str = "networks"


def _velocity(spec: FieldSpec, xa, yT, apply=mlp_outputs, aux=()):
    """θ ↦ −λ ⊙ ∇_θ L for one network (yT: targets as (n_L, N_A))."""
    lam = learning_rates(spec)
    grad = jax.grad(lambda t: 0.5 * jnp.sum((apply(spec, t, xa, *aux) - yT) ** 2))
    return lambda theta: -lam * grad(theta)


def _step(spec: FieldSpec, method: str, xa, yT, dt, apply=mlp_outputs, aux=()):
    v = _velocity(spec, xa, yT, apply, aux)
    if method == "gd":
        return lambda th: th + dt * v(th)

    def rk4(th):
        k1 = v(th)
        k2 = v(th + 0.5 * dt * k1)
        k3 = v(th + 0.5 * dt * k2)
        k4 = v(th + dt * k3)
        return th + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return rk4


@functools.partial(jax.jit, static_argnames=("spec",))
def _initialise(keys, spec: FieldSpec):
    return jax.vmap(lambda k: sample_parameters(spec, k))(keys)


@functools.partial(jax.jit, static_argnames=("spec", "method", "apply"))
def _advance(thetas, done, xa, yT, dt, nsteps, spec: FieldSpec, method: str, aux=(),
             apply=mlp_outputs):
    """``nsteps`` steps of every network not ``done``; returns (θ, max training residual)."""
    step = jax.vmap(_step(spec, method, xa, yT, dt, apply, aux))
    new = jax.lax.fori_loop(0, nsteps, lambda _, th: step(th), thetas)
    new = jnp.where(done[:, None], thetas, new)
    res = jax.vmap(lambda t: jnp.max(jnp.abs(apply(spec, t, xa, *aux) - yT)))(new)
    return new, res


@functools.partial(jax.jit, static_argnames=("spec", "apply"))
def _outputs(thetas, x, spec: FieldSpec, aux=(), apply=mlp_outputs):
    return jax.vmap(lambda t: apply(spec, t, x, *aux))(thetas)


def bytes_per_network(spec: FieldSpec, n_eval: int, n_train: int, method: str,
                      points: int = 1) -> int:
    """Conservative device memory of one trained network (float64): θ_0, θ, the loop carry and
    gradient (RK4: four stages and temporaries), the backprop workspace on the training inputs
    and the outputs on all inputs (``points`` forward-pass points per input), times a safety
    factor."""
    acts = sum(spec.widths_used[1:])
    words = (6 if method == "gd" else 14) * spec.n_parameters
    words += points * (6 * n_train * acts + 3 * (n_eval + n_train) * acts)
    return int(8 * _SAFETY * words)


def _chunk_size(need: int, chunk, max_memory_bytes, samples: int) -> int:
    budget = DEFAULT_MAX_MEMORY_BYTES if max_memory_bytes is None else max_memory_bytes
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget <= 0:
        raise SpecError(f"max_memory_bytes must be a positive integer, got {max_memory_bytes!r}")
    if need > budget:
        raise MemoryBudgetError(
            f"one trained network needs about {need / 2**20:.1f} MiB but max_memory_bytes is "
            f"{budget / 2**20:.1f} MiB: reduce the widths or inputs, or raise max_memory_bytes")
    return int(min(size_chunk(need, chunk, budget, CPU_CHUNK_BYTES), samples))


def _diverged(schedule: Schedule, n: int) -> FeyntkError:
    return FeyntkError(
        f"training diverged ({schedule.describe()}): some networks' training residuals became "
        f"non-finite or exceeded {BLOWUP:g}·max(1, max|y|). At width n = {n} the empirical NTK fluctuates around "
        "Θ, so eta is too close to the stability edge 2/λ_max(Θ_AA) for this width; use a "
        "smaller eta (eta·λ_max <= 1 is the regime the 1/n theory is validated in) or wider "
        "layers.")


def train_sample_network(network: Network, eval_inputs, train_inputs, targets,
                         schedule: Schedule, *, samples: int, seed: int = 0,
                         chunk: int | None = None, progress: bool = False,
                         max_memory_bytes: int | None = None,
                         output_map: OutputMap | None = None, keep: bool = False) -> dict:
    """Train ``samples`` real networks from random initialisations and average their outputs.

    Args:
        network: the MLP (MATH.md §1); all n_L output neurons are trained and measured.
        eval_inputs: (N_e, n0) evaluation inputs; train_inputs: (N_A, n0) training inputs.
        targets: (N_A, n_L) targets y[α, j] (a length-N_A vector when n_L = 1).
        schedule: gradient descent (T steps or T = ∞) or gradient flow (t, or t = ∞).
        samples: S >= 2 networks; network s is drawn from ``network_key(seed, s)``.
        chunk: networks trained together (vmapped); default the most that fit the budget (on
            CPU, :data:`CPU_CHUNK_BYTES`). Results do not depend on it.
        progress: show a tqdm bar of networks trained.
        max_memory_bytes: device budget of one chunk (default 2 GiB); requests that cannot fit
            are refused before anything is allocated.
        output_map: train this network of the MLP's parameters instead of the MLP itself
            (:class:`OutputMap`; default None: the MLP). Its NTK enters P (module docstring).
        keep: also return every network's trained outputs f_T as ``outputs`` and its estimator
            g as ``estimates``, each (S, N_e, n_L) (e.g. to pair two kinds of networks trained
            from the same seeds).

    Returns:
        dict of numpy arrays: ``mean``/``mean_se`` (N_e, n_L), the average of the variance-reduced
        estimator g (module docstring) and its standard error std/√S; ``plain_mean``/
        ``plain_mean_se`` the same for f_T itself; ``cov``/``cov_se`` (N_e, N_e): covariance of
        f_T over the ensemble for one output neuron, each neuron centred by its own mean over
        networks, centred products pooled over the n_L neurons, normalised by S − 1. Its error
        treats the per-network pooled products ``c_s = S/(S−1) · mean_i d_{s,i} d_{s,i}ᵀ`` (whose
        average is ``cov``) as independent: ``cov_se = std_s(c_s)/√S`` (ignores the O(1/S)
        correlation through the estimated means). Also ``samples``, ``seed``, ``n`` (the width
        n_{L−1} of the 1/n expansion), ``steps`` (most steps one network took) and
        ``max_residual`` (largest final max|z_A − y|).

    Raises:
        SpecError: bad inputs, targets, samples, chunk, or an unstable eta (η >= 2/λ_max(Θ_AA)).
        DegenerateKernelError: singular Θ_AA (repeated training inputs).
        MemoryBudgetError: a chunk (or one network) exceeds ``max_memory_bytes``.
        FeyntkError: networks diverged at this width (η too close to the stability edge).

    Host memory holds f_T and g of every network: 16·S·n_L·N_e bytes.
    """
    import tqdm

    if not isinstance(schedule, Schedule):
        raise SpecError(f"schedule must be a feyntk.training.schedule.Schedule, got {schedule!r}")
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 2:
        raise SpecError(f"samples must be an integer >= 2 (standard errors need two networks), "
                        f"got {samples!r}")
    S, n_out = int(samples), network.widths[-1]
    xe, xa = check_inputs(eval_inputs, network.n0), check_inputs(train_inputs, network.n0, "train_inputs")
    y = check_targets(targets, xa.shape[0], n_out)
    Ne, Na = xe.shape[0], xa.shape[0]
    if output_map is None:
        theta = infinite_kernels(network, np.concatenate([xe, xa]))[1]
        apply, aux, points, what = mlp_outputs, (), 1, "networks"
    else:
        theta = np.asarray(output_map.ntk(np.concatenate([xe, xa])), dtype=float)
        apply, points, what = output_map.apply, int(output_map.points), output_map.name
        aux = tuple(jnp.asarray(v) for v in output_map.aux)
    paired = theta.shape[0] != Ne + Na       # the NTK couples output neurons: P on (δ, i) pairs
    if paired and theta.shape != ((Ne + Na) * n_out,) * 2:
        raise SpecError(f"output_map.ntk must return an (N, N) or (N·n_L, N·n_L) array for "
                        f"N = {Ne + Na} inputs and n_L = {n_out}, got shape {theta.shape}")
    e, a = np.arange(Ne), Ne + np.arange(Na)
    if paired:
        e, a = (np.arange(n_out)[None, :] + n_out * r[:, None] for r in (e, a))
        e, a = e.ravel(), a.ravel()
    spec_AA = spectrum(theta[np.ix_(a, a)], schedule)
    P = propagator(theta, e, a, schedule, spec_AA)
    fs = FieldSpec(network, n_out, ("z",))
    method = "gd" if schedule.kind == "steps" else "rk4"
    C = _chunk_size(bytes_per_network(fs, Ne, Na, method, points), chunk, max_memory_bytes, S)
    C = -(-S // -(-S // C))                                   # equal chunks: least padding
    n = network.expansion_width(network.L)

    if method == "gd":
        dt, fixed = schedule.eta, schedule.steps
    else:
        h0 = FLOW_STEP / spec_AA.lam[-1]
        fixed = None if schedule.converged else int(math.ceil(schedule.time / h0))
        dt = h0 if not fixed else schedule.time / fixed
    tol = max(RTOL * float(np.abs(y).max()), ATOL)
    scale = BLOWUP * max(1.0, float(np.abs(y).max()))
    X, XA, yT = jnp.asarray(np.concatenate([xe, xa])), jnp.asarray(xa), jnp.asarray(y.T)

    gs, fTs, steps_max, res_max = [], [], 0, 0.0
    with tqdm.tqdm(total=S, unit="net", disable=not progress, desc=f"training {what}") as bar:
        for start in range(0, S, C):
            got = min(C, S - start)   # the last chunk is padded to C (one compile), then trimmed
            keys = jax.vmap(lambda i: network_key(seed, i))(jnp.arange(start, start + C,
                                                                       dtype=jnp.uint32))
            th0 = _initialise(keys, spec=fs)
            real = jnp.arange(C) < got
            th, done, steps = th0, ~real, 0
            while True:       # blocks of steps: progress, early divergence, per-network stops
                nb = BLOCK if fixed is None else min(FIXED_BLOCK, fixed - steps)
                th, res = _advance(th, done, XA, yT, dt, nb, spec=fs, method=method, aux=aux,
                                   apply=apply)
                steps += nb
                r = np.asarray(res)[:got]
                if not np.all(np.isfinite(r)) or r.max() > scale:
                    raise _diverged(schedule, n)
                bar.set_postfix(residual=f"{r.max():.2g}", steps=steps)
                if fixed is not None:
                    if steps >= fixed:
                        break
                    continue
                if np.all(r < tol):
                    break
                if steps >= MAX_STEPS:
                    warnings.warn(
                        f"{int(np.sum(r >= tol))} of {got} networks had not converged after "
                        f"{steps} steps ({schedule.describe()}): max training residual "
                        f"{r.max():.3g} > tolerance {tol:.2g}. The results are those at the "
                        "cap. A residual that stalls means networks that cannot fit the targets "
                        "(e.g. dead relu units at small width); a slowly decaying one needs a "
                        "larger eta (below the stability edge) or better-separated training "
                        "inputs (smaller condition number of Θ_AA).", RuntimeWarning, stacklevel=2)
                    break
                done = jnp.asarray(np.concatenate([r < tol, np.ones(C - got, bool)]))
            f0 = np.asarray(_outputs(th0, X, spec=fs, aux=aux, apply=apply))[:got]
            fT = np.asarray(_outputs(th, X, spec=fs, aux=aux, apply=apply))[:got, :, :Ne]
            if not np.all(np.isfinite(fT)):             # (fT: the same program as f0)
                raise _diverged(schedule, n)
            if paired:                                  # rows (δ, i) of P, columns (α, j)
                Pf = f0[:, :, Ne:].transpose(0, 2, 1).reshape(got, -1) @ P.T
                Pf = Pf.reshape(got, Ne, n_out).transpose(0, 2, 1)
            else:
                Pf = f0[:, :, Ne:] @ P.T
            gs.append(fT - f0[:, :, :Ne] + Pf)
            fTs.append(fT)
            steps_max, res_max = max(steps_max, steps), max(res_max, float(r.max()))
            bar.update(got)

    g, f = np.concatenate(gs), np.concatenate(fTs)            # (S, n_L, N_e), [s, i, δ]
    root = math.sqrt(S)
    d = f - f.mean(0)
    c1, c2 = np.zeros((Ne, Ne)), np.zeros((Ne, Ne))
    step = max(1, 2 ** 22 // (Ne * Ne))
    for s in range(0, S, step):                               # c_s in batches: bounded memory
        c = np.einsum("sid,sie->sde", d[s:s + step], d[s:s + step]) * (S / ((S - 1) * n_out))
        c1 += c.sum(0)
        c2 += (c ** 2).sum(0)
    cov = c1 / S
    cov_se = np.sqrt(np.maximum(c2 - S * cov ** 2, 0.0) / (S - 1)) / root
    out = {"mean": g.mean(0).T, "mean_se": g.std(0, ddof=1).T / root,
           "cov": 0.5 * (cov + cov.T), "cov_se": cov_se, "samples": S, "seed": seed, "n": n,
           "plain_mean": f.mean(0).T, "plain_mean_se": f.std(0, ddof=1).T / root,
           "steps": steps_max, "max_residual": res_max}
    if keep:
        out["outputs"], out["estimates"] = f.transpose(0, 2, 1), g.transpose(0, 2, 1)
    return out
