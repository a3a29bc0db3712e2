"""Fields of sampled networks by automatic differentiation (MATH.md §1–2).

Ground truth for every comparison: real networks are drawn as in MATH.md §1 and the random tensors
of MATH.md §2 are computed from their definitions by JAX autodiff, never from layer maps.

For one network the parameters of layers 1..ℓ are flattened into one vector θ (layer by layer,
``W`` row-major then ``b``) and ``z(θ)`` is the layer-ℓ preactivation of the first M neurons on
the N inputs. Outputs are flattened as ``o = i·N + α``. With ``J = ∂z/∂θ`` (O×P, O = M·N) and
``V = λ ⊙ J`` (λ the learning-rate vector of MATH.md §1):

    H[o1,o2]          = J_o1 · V_o2
    dH[o0,o1,o2]      = D²z_o0[V_o1, V_o2]                       (nested jvp, symmetric in o1,o2)
    ddI[o0,o1,o2,o3]  = D³z_o0[V_o1, V_o2, V_o3]                 (nested jvp, symmetric in o1..o3)
    ddII[o1,o2,o3,o4] = Σ_μ λ_μ HV[o3,o1]_μ HV[o4,o2]_μ     HV[d,o] = (∂²z_o) V_d  (jvp of jacrev)

which are exactly the sums of MATH.md §2. Returned arrays put neuron indices first, then sample
indices, each group in MATH.md order: ``z[i,a]``, ``H[i1,i2,a1,a2]``, ``dH[i0,i1,i2,a0,a1,a2]``,
``ddI[i0..i3,a0..a3]``, ``ddII[i1..i4,a1..a4]``.

Invariants (reproducibility):
    * Network ``s`` of seed ``k`` draws all its parameters from ``fold_in(PRNGKey(k), s)``;
      the last layer is drawn at its full width n_ℓ and its first M rows kept. Hence the numbers
      do not depend on the chunk size or on M (the first M neurons are always the same).
    * Neurons of layer ℓ are exchangeable, so using only the first M of them is unbiased; it
      saves cost because derivative fields grow like M²..M⁴.

Common mistakes:
    * Kinked activations (relu) have σ'' = δ: autodiff returns the almost-everywhere value 0 and
      misses the delta, so dH/ddI/ddII of such networks are refused (ActivationError).
    * At layer 1 no σ is applied: dH = ddI = ddII = 0 exactly and any activation is accepted.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import MemoryBudgetError, SpecError
from feyntk.spec.network import Network, check_inputs
from feyntk.spec.statistic import FIELD_KINDS

jax.config.update("jax_enable_x64", True)

FIELDS: tuple[str, ...] = tuple(FIELD_KINDS)
"""The random tensors the sampler can produce, in MATH.md order (:data:`FIELD_KINDS`); each has
a branch in :func:`network_fields` that computes it from its definition."""

DEFAULT_MAX_MEMORY_BYTES = 2 * 1024 ** 3
"""Default budget for one chunk of networks (2 GiB)."""

MAX_CHUNK = 4096
"""Largest number of networks evaluated together by default."""

CPU_CHUNK_BYTES = 32 * 1024 ** 2
"""On CPU, default chunks are sized for this much memory: small chunks stay in cache (measured
up to 3x faster for H on a 2-core CPU), while accelerators want the largest chunk that fits."""

_SIGMA_ORDER = {k: v.sigma_order for k, v in FIELD_KINDS.items()}
_DEFAULT_NEURONS = {"z": None, "H": 16, "dH": 4, "ddI": 2, "ddII": 3}
assert set(_DEFAULT_NEURONS) == set(FIELDS), "a default neuron count for every field kind"
_SAFETY = 1.25


@dataclass(frozen=True)
class FieldSpec:
    """What one network's computation needs; hashable, so it can be a static jit argument.

    Attributes:
        network: the network truncated at the layer of interest (statistics at layer ℓ use
            layers 1..ℓ only).
        neurons: M, the number of layer-ℓ neurons kept (the first M).
        fields: requested fields, a subset of :data:`FIELDS` in that order.
        batch: how many direction combinations of dH/ddI are evaluated together (vmapped);
            ``None`` for all at once. Smaller batches trade speed for memory.
    """

    network: Network
    neurons: int
    fields: tuple[str, ...]
    batch: int | None = None

    @property
    def widths_used(self) -> tuple[int, ...]:
        """Widths with the last one replaced by M."""
        return self.network.widths[:-1] + (self.neurons,)

    @property
    def n_parameters(self) -> int:
        """P, the length of θ."""
        w = self.widths_used
        return sum(w[l] * (w[l - 1] + 1) for l in range(1, len(w)))


@dataclass(frozen=True, eq=False)
class SamplingPlan:
    """A checked, sized sampling job (plan first, then :func:`sample_fields` executes it).

    Attributes:
        spec: the per-network computation.
        inputs: (N, n0) float64 inputs.
        chunk: networks evaluated together (vmapped).
        bytes_per_network: conservative estimate of the memory one network needs.
        max_memory_bytes: the budget the chunk was sized for.
    """

    spec: FieldSpec
    inputs: np.ndarray = field(repr=False)
    chunk: int
    bytes_per_network: int
    max_memory_bytes: int

    @property
    def network(self) -> Network:
        return self.spec.network

    @property
    def layer(self) -> int:
        return self.spec.network.L

    @property
    def neurons(self) -> int:
        return self.spec.neurons

    @property
    def fields(self) -> tuple[str, ...]:
        return self.spec.fields

    @property
    def N(self) -> int:
        return self.inputs.shape[0]


# -- parameters -------------------------------------------------------------------------------
def _layout(spec: FieldSpec) -> list[tuple[int, int, int]]:
    """Per layer: (offset of W in θ, rows, cols); b follows W."""
    w, out, off = spec.widths_used, [], 0
    for l in range(1, len(w)):
        out.append((off, w[l], w[l - 1]))
        off += w[l] * (w[l - 1] + 1)
    return out


def learning_rates(spec: FieldSpec) -> jnp.ndarray:
    """λ as a (P,) vector aligned with θ: λ_W/n_{ℓ-1} for weights, λ_b for biases (MATH.md §1)."""
    net, parts = spec.network, []
    for l, (_, rows, cols) in enumerate(_layout(spec), start=1):
        parts.append(jnp.full(rows * cols, net.lambda_W[l - 1] / cols))
        parts.append(jnp.full(rows, net.lambda_b[l - 1]))
    return jnp.concatenate(parts)


def network_key(seed: int, index) -> jax.Array:
    """Key of network ``index`` for ``seed``: ``fold_in(PRNGKey(seed), index)``."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def sample_parameters(spec: FieldSpec, key: jax.Array) -> jnp.ndarray:
    """Draw θ of one network (MATH.md §1): W ~ N(0, C_W/n_{ℓ-1}), b ~ N(0, C_b).

    One standard-normal vector is drawn per network for the whole truncated network at full
    width (one PRNG call keeps compilation fast), laid out layer by layer as W (row-major) then b;
    the last layer's first M rows and biases are kept, so neuron i is the same whatever M is.
    """
    net, parts, off = spec.network, [], 0
    w = net.widths
    xi = jax.random.normal(key, (sum(w[l] * (w[l - 1] + 1) for l in range(1, net.L + 1)),),
                           jnp.float64)
    for l in range(1, net.L + 1):
        fan_in, width = w[l - 1], w[l]
        rows = spec.neurons if l == net.L else width
        W = xi[off: off + width * fan_in].reshape(width, fan_in)[:rows]
        b = xi[off + width * fan_in: off + width * (fan_in + 1)][:rows]
        off += width * (fan_in + 1)
        parts += [(math.sqrt(net.C_W[l - 1] / fan_in) * W).ravel(), math.sqrt(net.C_b[l - 1]) * b]
    return jnp.concatenate(parts)


def forward(spec: FieldSpec, theta: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Preactivations z^{(ℓ)}_{i;α} of the first M neurons, shape (M, N), from θ and x (N, n0)."""
    sigma = spec.network.activation.jax(0)
    h = jnp.asarray(x).T
    layout = _layout(spec)
    for l, (off, rows, cols) in enumerate(layout, start=1):
        W = theta[off: off + rows * cols].reshape(rows, cols)
        b = theta[off + rows * cols: off + rows * cols + rows]
        z = W @ h + b[:, None]
        h = sigma(z) if l < len(layout) else z
    return z


# -- fields of one network --------------------------------------------------------------------
def _combinations(O: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted k-tuples of 0..O-1 (with repeats) and, for every k-tuple, its row in that list."""
    combos = np.array(list(itertools.combinations_with_replacement(range(O), k)), dtype=np.int32)
    index = np.zeros((O,) * k, dtype=np.int32)
    for row, c in enumerate(combos):
        for perm in set(itertools.permutations(c)):
            index[perm] = row
    return combos, index


def _directional(f: Callable, theta, directions: Sequence[jnp.ndarray]) -> jnp.ndarray:
    """D^k f(θ)[d1, ..., dk] by nested forward-mode jvp."""
    g = f
    for d in directions:
        g = functools.partial(lambda inner, v, t: jax.jvp(inner, (t,), (v,))[1], g, d)
    return g(theta)


def _symmetric_derivative(f, theta, V, k: int, batch: int | None) -> jnp.ndarray:
    """T[o0, o1..ok] = D^k f_o0[V_o1, ..., V_ok] using the symmetry in (o1..ok).

    Combinations are vmapped ``batch`` at a time (all at once if ``batch`` is None).
    """
    O = V.shape[0]
    combos, index = _combinations(O, k)
    one = lambda c: _directional(f, theta, [V[c[m]] for m in range(k)])  # noqa: E731
    if batch is None or batch >= len(combos):
        vals = jax.vmap(one)(jnp.asarray(combos))              # (n_combos, O)
    else:
        vals = jax.lax.map(one, jnp.asarray(combos), batch_size=batch)
    return vals.T[:, jnp.asarray(index)]                       # (O, O, ..., O)


def _unflatten(t: jnp.ndarray, M: int, N: int) -> jnp.ndarray:
    """(O,)*k with o = i·N + α  ->  (M,)*k + (N,)*k."""
    k = t.ndim
    t = t.reshape((M, N) * k)
    return t.transpose(tuple(range(0, 2 * k, 2)) + tuple(range(1, 2 * k, 2)))


def network_fields(spec: FieldSpec, theta: jnp.ndarray, x: jnp.ndarray) -> dict[str, jnp.ndarray]:
    """The requested fields of one network (module docstring gives definitions and shapes).

    Args:
        spec: the computation (truncated network, M, fields).
        theta: (P,) parameters from :func:`sample_parameters`.
        x: (N, n0) inputs.

    Returns:
        dict with the keys of ``spec.fields``; neuron indices first, then sample indices.
    """
    f = lambda t: forward(spec, t, x).reshape(-1)             # noqa: E731  (O,)
    return fields_of_outputs(spec, theta, f, x.shape[0])


def fields_of_outputs(spec: FieldSpec, theta: jnp.ndarray, f, N: int) -> dict[str, jnp.ndarray]:
    """The requested fields of any output map ``f(θ) → (M·N,)`` (output o = i·N + a), e.g. a
    network's or a symmetrized network's: z, Ĥ = J λ Jᵀ, dĤ, ddÎ, ddÎÎ by JAX autodiff."""
    M = spec.neurons
    out = {}
    if "z" in spec.fields:
        out["z"] = f(theta).reshape(M, N)
    if set(spec.fields) - {"z"}:
        lam = learning_rates(spec)
        J = jax.jacrev(f)(theta)                               # (O, P)
        V = J * lam
        if "H" in spec.fields:
            out["H"] = _unflatten(J @ V.T, M, N)
        if "dH" in spec.fields:
            out["dH"] = _unflatten(_symmetric_derivative(f, theta, V, 2, spec.batch), M, N)
        if "ddI" in spec.fields:
            out["ddI"] = _unflatten(_symmetric_derivative(f, theta, V, 3, spec.batch), M, N)
        if "ddII" in spec.fields:
            jac = jax.jacrev(f)
            HV = jax.vmap(lambda v: jax.jvp(jac, (theta,), (v,))[1])(V)   # HV[d, o, μ]
            dd = jnp.einsum("cap,p,dbp->abcd", HV, lam, HV)
            out["ddII"] = _unflatten(dd, M, N)
    return out


# -- planning ---------------------------------------------------------------------------------
def bytes_per_network(spec: FieldSpec, N: int) -> int:
    """Conservative estimate of the device memory one network's fields need (float64).

    Counts the parameter draw, activations, J and V with the reverse-mode workspace, the vmapped
    tangents of the nested jvps (several P-vectors per symmetric combination of directions), HV
    and the full output tensors, times a safety factor. The coefficients were checked against
    XLA's ``memory_analysis`` of the compiled chunk on CPU (the estimate is 1.2-3x above it).
    """
    w = spec.network.widths
    M, P = spec.neurons, spec.n_parameters
    O = M * N
    p_full = sum(w[l] * (w[l - 1] + 1) for l in range(1, len(w)))
    act = N * (2 * sum(w[1:-1]) + M)                          # z and σ(z) per hidden layer
    words = 5 * p_full + 4 * act + O
    derivs = set(spec.fields) - {"z"}
    if derivs:
        words += 3 * O * P + O * act + O * O
    if "dH" in derivs:
        t2 = O * (O + 1) // 2
        words += _batched(t2, spec.batch) * (7 * P + 4 * act) + t2 * O + O ** 3
    if "ddI" in derivs:
        t3 = O * (O + 1) * (O + 2) // 6
        words += _batched(t3, spec.batch) * (10 * P + 8 * act) + t3 * O + O ** 4
    if "ddII" in derivs:
        words += 3 * O * O * P + O * O * act + 2 * O ** 4
    return int(8 * _SAFETY * words)


def _batched(n_combos: int, batch: int | None) -> int:
    return n_combos if batch is None else min(n_combos, batch)


def _combination_count(spec: FieldSpec, N: int) -> int:
    """Largest number of direction combinations (dH: pairs, ddI: triples) of one network."""
    O = spec.neurons * N
    return max([O * (O + 1) // 2] * ("dH" in spec.fields) +
               [O * (O + 1) * (O + 2) // 6] * ("ddI" in spec.fields) + [1])


def _sized_spec(net: Network, M: int, fields, N: int, budget: int) -> tuple[FieldSpec, int]:
    """The spec for M neurons with the largest combination batch that fits (or the smallest)."""
    spec = FieldSpec(net, M, fields)
    need = bytes_per_network(spec, N)
    batch = _combination_count(spec, N)
    while need > budget and batch > 1:
        batch = max(1, batch // 2)
        spec = FieldSpec(net, M, fields, batch)
        need = bytes_per_network(spec, N)
    return spec, need


def _check_neurons(neurons, width: int, minimum: int) -> int:
    if isinstance(neurons, bool) or not isinstance(neurons, (int, np.integer)):
        raise SpecError(f"neurons must be an integer, got {neurons!r}")
    if not minimum <= neurons <= width:
        raise SpecError(
            f"neurons = {neurons}: it must be between {minimum} and the layer width {width}")
    return int(neurons)


def _default_neurons(fields: tuple[str, ...], width: int, minimum: int) -> list[int]:
    """Candidate M, largest first: all neurons for z only, fewer for derivative fields."""
    caps = [_DEFAULT_NEURONS[f] for f in fields if _DEFAULT_NEURONS[f] is not None]
    top = min([width] + caps)
    return list(range(top, min(minimum, top) - 1, -1))


def plan_sampling(network: Network, inputs, layer: int, fields: Sequence[str], *,
                  neurons: int | None = None, chunk: int | None = None,
                  max_memory_bytes: int | None = None, min_neurons: int = 1) -> SamplingPlan:
    """Check a sampling job and size it to the memory budget, before anything is allocated.

    Args:
        network: the full network; it is truncated at ``layer``.
        inputs: (N, n0) inputs.
        layer: ℓ, the layer whose fields are sampled.
        fields: subset of :data:`FIELDS`.
        neurons: M; default all n_ℓ for z only, else the smallest of n_ℓ and 16 (H), 4 (dH),
            2 (ddI, the costliest: (M·N)³/6 third derivatives), 3 (ddII); lowered, not below
            ``min_neurons``, until one network fits the budget.
        chunk: networks per vmapped batch; default the most that fit the budget (≤ 4096; on
            CPU the most that fit :data:`CPU_CHUNK_BYTES`).
        max_memory_bytes: budget for one chunk; default 2 GiB.
        min_neurons: 2 when distinct-neuron statistics are wanted.

    Raises:
        SpecError: bad fields, layer, neurons or chunk; ``n_ℓ < min_neurons``.
        ActivationError: σ not smooth enough for the requested fields (e.g. relu and dH).
        MemoryBudgetError: one network alone exceeds the budget.
    """
    x = check_inputs(inputs, network.n0)
    layer = network.check_layer(layer)
    unknown = [f for f in fields if f not in FIELDS]
    if unknown or not fields:
        raise SpecError(f"fields must be a non-empty subset of {FIELDS}, got {list(fields)}")
    fields = tuple(f for f in FIELDS if f in fields)
    net = network.truncate(layer)
    width = net.widths[-1]
    if width < min_neurons:
        raise SpecError(
            f"layer {layer} has width n_{layer} = {width}, but distinct-neuron statistics need "
            f"two different neurons i != j of that layer: use a width >= {min_neurons}")
    if layer >= 2:
        for f in fields:
            if _SIGMA_ORDER[f]:
                net.activation.require_regular(_SIGMA_ORDER[f], f"Monte Carlo sampling of {f}")
    budget = DEFAULT_MAX_MEMORY_BYTES if max_memory_bytes is None else int(max_memory_bytes)
    if budget <= 0:
        raise SpecError(f"max_memory_bytes must be positive, got {max_memory_bytes!r}")
    N = x.shape[0]
    candidates = ([_check_neurons(neurons, width, min_neurons)] if neurons is not None
                  else _default_neurons(fields, width, min_neurons))
    for M in candidates:
        spec, need = _sized_spec(net, M, fields, N, budget)
        if need <= budget:
            break
    else:
        raise MemoryBudgetError(
            f"one network needs about {need / 2**20:.1f} MiB for fields {list(fields)} "
            f"(N = {N} inputs, M = {M} neurons, widths {list(net.widths)}, P = {spec.n_parameters} "
            f"parameters) but max_memory_bytes is {budget / 2**20:.1f} MiB. Reduce the number of "
            "inputs N, the neurons M, the widths, or request fewer/lower-order tensors "
            "(ddI/ddII cost ~(M·N)^3, dH ~(M·N)^2), or raise max_memory_bytes.")
    return SamplingPlan(spec, x, size_chunk(need, chunk, budget), need, budget)


def size_chunk(need: int, chunk, budget: int, cpu_bytes: int = CPU_CHUNK_BYTES) -> int:
    """Networks per chunk: ``chunk`` if given (checked against the budget), else the most that
    fit ``budget`` (on CPU at most ``cpu_bytes``, and at most :data:`MAX_CHUNK`)."""
    if chunk is None:
        target = min(budget, cpu_bytes) if jax.default_backend() == "cpu" else budget
        return int(max(1, min(MAX_CHUNK, target // need)))
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise SpecError(f"chunk must be a positive integer, got {chunk!r}")
    if chunk * need > budget:
        raise MemoryBudgetError(
            f"chunk = {chunk} networks need about {chunk * need / 2**20:.1f} MiB, over "
            f"max_memory_bytes = {budget / 2**20:.1f} MiB; use chunk <= {budget // need}")
    return int(chunk)


# -- execution --------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("spec", "reduce"))
def _chunk_fields(key, indices, x, spec: FieldSpec, reduce):
    def one(index):
        theta = sample_parameters(spec, jax.random.fold_in(key, index))
        out = network_fields(spec, theta, x)
        return out if reduce is None else reduce(out)
    return jax.vmap(one)(indices)


def sample_fields(plan: SamplingPlan, samples: int, seed: int = 0, *,
                  reduce: Callable | None = None,
                  progress: bool = False) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Evaluate ``samples`` networks chunk by chunk on the default JAX device.

    Args:
        plan: from :func:`plan_sampling`.
        samples: number of networks S.
        seed: networks are ``fold_in(PRNGKey(seed), s)`` for s = 0..S-1.
        reduce: optional hashable JAX function mapping one network's fields to a dict of small
            arrays (e.g. per-network averages); applied on the device before transfer.
        progress: show a tqdm bar of networks done / total.

    Yields:
        ``(start, arrays)``: arrays are numpy with a leading axis over networks start..start+B-1.
    """
    import tqdm

    S, C = int(samples), min(plan.chunk, int(samples))
    key = jax.random.PRNGKey(seed)
    x = jnp.asarray(plan.inputs)
    starts = list(range(0, S, C))

    def launch(start):  # fixed shape C: the last chunk is padded, then trimmed
        return _chunk_fields(key, jnp.arange(start, start + C, dtype=jnp.uint32), x,
                             spec=plan.spec, reduce=reduce)

    with tqdm.tqdm(total=S, unit="net", disable=not progress, desc="sampling networks") as bar:
        pending = launch(starts[0]) if starts else None
        for n, start in enumerate(starts):
            nxt = launch(starts[n + 1]) if n + 1 < len(starts) else None  # overlap with transfer
            got = min(C, S - start)
            arrays = {k: np.asarray(v)[:got] for k, v in jax.device_get(pending).items()}
            bar.update(got)
            yield start, arrays
            pending = nxt


def sample(network: Network, inputs, layer: int, fields: Sequence[str], samples: int,
           seed: int = 0, **plan_options) -> dict[str, np.ndarray]:
    """All fields of ``samples`` networks at once, each with a leading network axis.

    Convenience for small jobs; ``plan_options`` go to :func:`plan_sampling`.
    """
    plan = plan_sampling(network, inputs, layer, fields, **plan_options)
    parts = [a for _, a in sample_fields(plan, samples, seed)]
    return {k: np.concatenate([p[k] for p in parts]) for k in plan.fields}
