"""Monte Carlo estimates of the fifteen order-1/n statistics, with standard errors (MATH.md §3, §5).

Each tensor is read off its defining correlator, declared once in :mod:`feyntk.spec.statistic`
(``i ≠ j`` two neurons of layer ℓ, ``n = n_{ℓ-1}``); :func:`estimator_for` derives the estimator
from the declaration (the neuron pattern of each per-network average, the product terms of the
cumulant that survive, the stored index order). For the fifteen statistics of MATH.md §3:

    K      = E[z_{i;a1} z_{i;a2}]                      Theta  = E[H_{ii;a1a2}]
    K1     = n (E[z_{i;a1} z_{i;a2}] − K∞)             Theta1 = n (E[H_{ii;a1a2}] − Θ∞)
    V      = n (E[z_{i;a1}z_{i;a2}z_{j;a3}z_{j;a4}] − E[z_{i;a1}z_{i;a2}] E[z_{j;a3}z_{j;a4}])
    A      = n Cov[H_{ii;a1a2}, H_{jj;a3a4}]           D = n Cov[H_{ii;a1a2}, z_{j;a3} z_{j;a4}]
    B[a1,a3,a2,a4] = n E[H_{ij;a1a2} H_{ij;a3a4}]
    F[a1,a3,a2,a4] = n E[H_{ij;a1a2} z_{i;a3} z_{j;a4}]
    P = n E[dH_{ijj;a0a1a2} z_{i;a3}]                  Q = n E[dH_{iij;a0a1a2} z_{j;a3}]
    R = n E[ddI_{iijj;a0..a3}]    S, T, U = n E[ddII_{iijj}], n E[ddII_{ijij}], n E[ddII_{ijji}]

B and F are covariances in MATH.md; the product terms vanish identically (E[H_ij] = 0 and
E[z_i z_j] = 0 for i ≠ j by the sign flip of neuron i's incoming weights and bias) and are left
out, which only removes noise. :func:`offdiagonal_ntk_mean` checks E[H_ij] = 0.

Estimation (invariants):
    * Per network s, every product is averaged over all neurons (K, Theta) or over all ordered
      pairs i ≠ j of the M sampled neurons: ``a_s``; only these small (N², N⁴) averages leave the
      device.
    * ``E[a]`` is the mean over networks. A product of expectations ``E[x] E[y]`` is the
      cross-network U-statistic ``Σ_{s≠t} x_s y_t / (S(S−1)) = x̄ ȳ − Cov(x, y)/S``, unbiased
      (the naive x̄ ȳ is biased by Cov(x, y)/S, which is O(1/M) — larger than the O(1/n) signal).
    * Standard errors are the delta method on per-network averages: the influence of network s
      is ``φ_s = a_s − x_s E[y] − E[x] y_s``, and ``se = sqrt(Var(φ)/S)``; for order-1 tensors
      value and se are multiplied by n.
    * Moments are accumulated chunk by chunk with a shift (network 0's averages), so memory does
      not grow with S and sums stay well conditioned.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import SpecError
from feyntk.spec.config import Request, check_samples, parse_request
from feyntk.spec.statistic import REGISTRY, External, Statistic, equivalent
from feyntk.validate.sample import FIELDS, plan_sampling, sample_fields

jax.config.update("jax_enable_x64", True)

# -- per-network averages ---------------------------------------------------------------------
_AVERAGE_RE = re.compile(r"(\w+?)\[([i-p]+)\]")


def average_name(fields: Sequence[External]) -> str:
    """Canonical name of the per-network average of a product of fields: ``"H[ij]z[i]z[j]"``.

    Neurons are renamed i, j, ... in order of appearance; the average's sample axes are the
    fields' sample slots in order. The name alone defines the computation (:func:`network_average`).
    """
    rename: dict[str, str] = {}
    for f in fields:
        for x in f.labels:
            rename.setdefault(x, "ijklmnop"[len(rename)])
    return "".join(f"{f.kind}[{''.join(rename[x] for x in f.labels)}]" for f in fields)


def _parse_average(name: str) -> list[tuple[str, str]]:
    parts = _AVERAGE_RE.findall(name)
    if not parts or "".join(f"{k}[{n}]" for k, n in parts) != name:
        raise SpecError(f"not a per-network average: {name!r} (write fields like 'H[ij]z[i]')")
    return parts


def network_average(name: str, f: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    """One network's average of the product ``name`` over its M sampled neurons.

    One neuron label: the mean over neurons i; two: the mean over ordered pairs i ≠ j (distinct
    labels are distinct neurons, MATH.md §3). Shape (N,)*(number of sample slots).
    """
    parts = _parse_average(name)
    letters = "".join(dict.fromkeys(x for _, labels in parts for x in labels))
    samples = iter("abcdefghqrstuvwxyz")
    subs = [labels + "".join(next(samples) for _ in labels) for _, labels in parts]
    out = "".join(sub[len(labels):] for sub, (_, labels) in zip(subs, parts))
    ops = [f[kind] for kind, _ in parts]
    M = ops[0].shape[0]
    if len(letters) == 1:
        return jnp.einsum(",".join(subs) + "->" + out, *ops) / M
    if len(letters) == 2:
        mask = (1.0 - jnp.eye(M)) / (M * (M - 1))
        return jnp.einsum(",".join([letters] + subs) + "->" + out, mask, *ops)
    raise NotImplementedError(f"{name}: averages over more than two distinct neurons")


def _kinds(name: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(k for k, _ in _parse_average(name)))


@dataclass(frozen=True)
class NetworkAverages:
    """Hashable per-network reducer: fields of one network -> dict of averages (jit-friendly)."""

    names: tuple[str, ...]

    def __call__(self, fields: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        return {n: network_average(n, fields) for n in self.names}


# -- the statistics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimator:
    """How one statistic is read off per-network averages.

    ``value = scale · (E[a] − E[x] E[y]) − scale · offset``, scale = n for order-1 tensors, then
    transposed by ``perm`` into MATH.md's stored order.
    """

    a: str
    product: tuple[str, str] | None = None
    order: int = 1
    offset: str | None = None
    perm: tuple[int, ...] | None = None
    note: str = ""

    @property
    def pairs(self) -> bool:
        """Whether two distinct neurons are needed."""
        return len({x for _, labels in _parse_average(self.a) for x in labels}) > 1

    @property
    def averages(self) -> tuple[str, ...]:
        return (self.a,) + (self.product or ())


def _even(fields: Sequence[External]) -> bool:
    """Whether every neuron occurs an even number of times (else E[Π fields] = 0 exactly)."""
    counts: dict[str, int] = {}
    for f in fields:
        for x in f.labels:
            counts[x] = counts.get(x, 0) + 1
    return all(c % 2 == 0 for c in counts.values())


def _set_partitions(items: list) -> list[list[list]]:
    if not items:
        return [[]]
    first, rest = items[0], items[1:]
    out = []
    for part in _set_partitions(rest):
        out.append([[first]] + part)
        for k in range(len(part)):
            out.append(part[:k] + [[first] + part[k]] + part[k + 1:])
    return out


def _text(fields) -> str:
    return " ".join(f.text() for f in fields)


@functools.lru_cache(maxsize=256)
def estimator_for(stat: Statistic) -> Estimator:
    """The Monte Carlo estimator of a declared statistic, derived from its correlator.

    The correlator is the joint cumulant of its fields, ``Σ_π (−1)^{|π|−1}(|π|−1)! Π_B E[B]`` over
    set partitions π; blocks in which some neuron occurs an odd number of times vanish exactly
    (the sign flip of that neuron's incoming weights and bias) and are left out, which only
    removes noise. What remains must be ``E[all]`` or ``E[all] − E[x]E[y]`` (the product by the
    U-statistic). An order-1 statistic with the correlator of an order-0 one (K¹, Θ¹) is
    ``n (E[...] − its infinite-width value)``.
    """
    corr = stat.correlator
    fields = list(corr.fields)
    rest = [p for p in _set_partitions(list(range(len(fields))))
            if len(p) > 1 and all(_even([fields[k] for k in block]) for block in p)]
    if any(len(p) > 2 for p in rest) or len(rest) > 1:
        raise NotImplementedError(
            f"{stat.name}: the Monte Carlo estimator supports E[a] − E[x]E[y]; the cumulant of "
            f"{_text(fields)} has the product terms {rest}")
    product, blocks = None, [list(range(len(fields)))]
    if rest:
        blocks = [sorted(b) for b in sorted(rest[0], key=min)]
        product = tuple(average_name([fields[k] for k in b]) for b in blocks)
    ordered = [fields[k] for b in blocks for k in b]
    natural = tuple(s for f in ordered for s in f.samples)
    perm = tuple(natural.index(s) for s in corr.output)
    offset = None
    if corr.order == 1:
        offset = next((s.name for s in REGISTRY.values()
                       if s.order == 0 and equivalent(s.correlator.fields, corr.fields)), None)
    stored = f"{stat.name}[{','.join(corr.output)}] = " if corr.output != natural else ""
    scale = "n " if corr.order else ""
    if offset is not None:
        note = (f"n (E[{_text(fields)}] - {offset}_inf) = {stat.name} + O(1/n), {offset}_inf "
                "from feyntk.numbers.infinite.infinite_kernels (its error not in se)")
    elif corr.order == 0:
        first = next((s.name for s in REGISTRY.values()
                      if s.order == 1 and equivalent(s.correlator.fields, corr.fields)), None)
        tail = f"{first}/n + ..." if first else "O(1/n)"
        note = f"E[{_text(fields)}] at finite width (= {stat.name} + {tail})"
    elif product is not None:
        x, y = ([fields[k] for k in b] for b in blocks)
        note = (f"{stored}{scale}(E[{_text(ordered)}] - E[{_text(x)}]E[{_text(y)}]), product "
                "by U-statistic")
    else:
        note = f"{stored}{scale}E[{_text(fields)}]"
    dropped = len(_set_partitions(list(range(len(fields))))) - 1 - len(rest)
    if dropped and corr.order and offset is None:
        note += " (terms odd in a neuron vanish exactly and are left out)"
    return Estimator(average_name(ordered), product, corr.order, offset,
                     None if perm == tuple(range(len(perm))) else perm, note)


class _Estimators(Mapping):
    """The estimator of every declared statistic (a live view of the registry)."""

    def __getitem__(self, name: str) -> Estimator:
        if name not in REGISTRY:
            raise KeyError(name)
        return estimator_for(REGISTRY[name])

    def __iter__(self):
        return iter(tuple(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


ESTIMATORS: Mapping[str, Estimator] = _Estimators()
"""One entry per tensor of :data:`feyntk.spec.statistic.TENSOR_NAMES`, derived from its
declaration by :func:`estimator_for`."""

_DIAGNOSTICS = {"offdiagonal_ntk_mean": Estimator(
    "H[ij]", order=0, note="E[H_{ij;a1a2}], i != j: exactly 0 by symmetry (a sanity check)")}


def fields_needed(estimators) -> tuple[str, ...]:
    """Fields (subset of FIELDS, in order) that the given estimators need."""
    need = {f for e in estimators for a in e.averages for f in _kinds(a)}
    return tuple(f for f in FIELDS if f in need)


# -- streaming moments ------------------------------------------------------------------------
class Moments(NamedTuple):
    """Shifted sums of a stacked per-network quantity u_s of shape (k, *shape).

    Attributes:
        count: networks seen.
        shift: u of the first network (keeps the sums well conditioned).
        s1: Σ_s (u_s − shift), shape (k, *shape).
        s2: Σ_s (u_s − shift)_k (u_s − shift)_l, shape (k, k, *shape) (elementwise in *shape).
    """

    count: int
    shift: np.ndarray
    s1: np.ndarray
    s2: np.ndarray


def update_moments(m: Moments | None, batch: np.ndarray) -> Moments:
    """Add a batch (B, k, *shape) of per-network quantities."""
    batch = np.asarray(batch, dtype=np.float64)
    if m is None:
        z = np.zeros(batch.shape[1:])
        m = Moments(0, batch[0].copy(), z, np.zeros(batch.shape[1:2] + batch.shape[1:]))
    d = batch - m.shift
    return Moments(m.count + len(batch), m.shift, m.s1 + d.sum(0),
                   m.s2 + np.einsum("bk...,bl...->kl...", d, d))


def mean_and_cov(m: Moments) -> tuple[np.ndarray, np.ndarray]:
    """Mean (k, *shape) and unbiased covariance (k, k, *shape) over networks."""
    S = m.count
    d = m.s1 / S
    cov = (m.s2 - S * d[:, None] * d[None, :]) / (S - 1)
    return m.shift + d, cov


def _stack(est: Estimator, avg: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-network (B, k, *shape): a, and x ⊗ 1, 1 ⊗ y broadcast to a's shape."""
    a = avg[est.a]
    if est.product is None:
        return a[:, None]
    x, y = (avg[k] for k in est.product)
    B, sx, sy = a.shape[0], x.shape[1:], y.shape[1:]
    xb = np.broadcast_to(x.reshape((B,) + sx + (1,) * len(sy)), a.shape)
    yb = np.broadcast_to(y.reshape((B,) + (1,) * len(sx) + sy), a.shape)
    return np.stack([a, xb, yb], axis=1)


def finalize(m: Moments, product: bool) -> tuple[np.ndarray, np.ndarray]:
    """(value, se) of E[a] − E[x]E[y] (or of E[a]) from the moments of :func:`_stack` rows.

    The product is the U-statistic x̄ȳ − Cov(x, y)/S; se is the delta method with influence
    φ = a − x E[y] − E[x] y.
    """
    S = m.count
    if S < 2:
        raise SpecError(f"{S} network(s): at least 2 are needed for a standard error")
    mean, cov = mean_and_cov(m)
    if not product:
        return mean[0], np.sqrt(np.maximum(cov[0, 0], 0.0) / S)
    mx, my = mean[1], mean[2]
    value = mean[0] - (mx * my - cov[1, 2] / S)
    c = np.stack([np.ones_like(mx), -my, -mx])
    var = np.einsum("k...,kl...,l...->...", c, cov, c)
    return value, np.sqrt(np.maximum(var, 0.0) / S)


# -- driver -----------------------------------------------------------------------------------
def _as_request(request) -> Request:
    return request if isinstance(request, Request) else parse_request(request)


def _update(moments: Mapping, estimators: Mapping[str, Estimator], avg) -> dict:
    """Add one batch of per-network averages to the moments of every distinct estimator."""
    unique = {(e.a, e.product): e for e in estimators.values()}
    return {key: update_moments(moments.get(key), _stack(e, avg)) for key, e in unique.items()}


def averages_for(estimators: Iterable[Estimator]) -> NetworkAverages:
    """The per-network reducer computing every average the given estimators need."""
    return NetworkAverages(tuple(sorted({a for e in estimators for a in e.averages})))


def _accumulate(request: Request, estimators: Mapping[str, Estimator], *, neurons, chunk,
                max_memory_bytes, progress):
    """Sample the request's networks and return (plan, {name: Moments}) for the estimators."""
    samples = check_samples(request.samples)
    pairs = any(e.pairs for e in estimators.values())
    plan = plan_sampling(request.network, request.inputs, request.layer,
                         fields_needed(estimators.values()), neurons=neurons, chunk=chunk,
                         max_memory_bytes=max_memory_bytes, min_neurons=2 if pairs else 1)
    moments: dict = {}
    for _, avg in sample_fields(plan, samples, request.seed, reduce=averages_for(estimators.values()),
                                progress=progress):
        moments = _update(moments, estimators, avg)
    return plan, {name: moments[(e.a, e.product)] for name, e in estimators.items()}


def _result(est: Estimator, m: Moments, n: int, offsets: Mapping[str, np.ndarray]) -> dict:
    value, se = finalize(m, est.product is not None)
    if est.offset is not None:
        value = value - offsets[est.offset]
    if est.order == 1:
        value, se = n * value, n * se
    if est.perm is not None:
        value, se = value.transpose(est.perm), se.transpose(est.perm)
    return {"value": value, "se": se}


def _offsets(request: Request, names) -> dict[str, np.ndarray]:
    if not any(ESTIMATORS[name].offset for name in names if name in ESTIMATORS):
        return {}
    from feyntk.numbers.infinite import infinite_kernels

    K, Theta = infinite_kernels(request.network, request.inputs, request.layer)
    return {"K": np.asarray(K), "Theta": np.asarray(Theta)}


def estimate(request, *, neurons: int | None = None, chunk: int | None = None,
             max_memory_bytes: int | None = None, progress: bool = False) -> dict:
    """Monte Carlo estimates of ``request.tensors`` at ``request.layer`` (MATH.md §3).

    Args:
        request: a :class:`~feyntk.spec.config.Request` or a config dict; ``samples`` networks
            (>= 2) drawn from ``seed``.
        neurons: M sampled neurons of the layer (see :func:`~feyntk.validate.sample.plan_sampling`).
        chunk: networks per device batch (default: as many as fit ``max_memory_bytes``).
        max_memory_bytes: device memory budget per chunk (default 2 GiB).
        progress: show a progress bar.

    Returns:
        ``{"n", "layer", "samples", "neurons", "tensors": {NAME: {"value", "se"}}, "notes",
        "diagnostics"}``; values are numpy arrays in MATH.md's stored index order, order-1
        tensors are coefficients of 1/n with n = n_{layer-1}. ``diagnostics`` holds
        ``offdiagonal_ntk_mean`` whenever H was sampled with pairs.

    Raises:
        SpecError: samples < 2, or a distinct-neuron tensor at a layer of width 1.
        MemoryBudgetError: one network does not fit the budget.
        ActivationError: σ too rough for the requested fields (e.g. relu with P..U).
    """
    request = _as_request(request)
    chosen = {name: ESTIMATORS[name] for name in request.tensors}
    n = request.network.expansion_width(request.layer)
    with_diag = any(e.pairs for e in chosen.values()) and "H" in fields_needed(chosen.values())
    if with_diag:
        chosen.update(_DIAGNOSTICS)
    offsets = _offsets(request, request.tensors)
    plan, moments = _accumulate(request, chosen, neurons=neurons, chunk=chunk,
                                max_memory_bytes=max_memory_bytes, progress=progress)
    tensors = {name: _result(chosen[name], moments[name], n, offsets) for name in request.tensors}
    common = (f"; {request.samples} networks, M = {plan.neurons} neurons of layer "
              f"{request.layer}, se by the delta method on per-network averages")
    return {
        "n": n, "layer": request.layer, "samples": request.samples, "neurons": plan.neurons,
        "tensors": tensors,
        "notes": {name: chosen[name].note + common for name in request.tensors},
        "diagnostics": {name: _result(e, moments[name], n, offsets)
                        for name, e in _DIAGNOSTICS.items() if with_diag},
    }


def estimate_from_fields(fields: Mapping[str, np.ndarray], tensors: Sequence[str], n: int, *,
                         offsets: Mapping[str, np.ndarray] | None = None) -> dict:
    """Apply the estimators to given fields of S networks (synthetic data, stored samples).

    Args:
        fields: arrays with a leading network axis and the layout of
            :func:`~feyntk.validate.sample.network_fields` (e.g. ``z`` (S, M, N)).
        tensors: names from :data:`ESTIMATORS` or ``"offdiagonal_ntk_mean"``.
        n: the expansion width that order-1 tensors are scaled by.
        offsets: ``{"K": K_inf, "Theta": Theta_inf}``, needed for K1 and Theta1.

    Returns:
        ``{NAME: {"value", "se"}}`` exactly as :func:`estimate` computes them.
    """
    chosen = {name: _lookup(name) for name in tensors}
    missing = {e.offset for e in chosen.values() if e.offset} - set(offsets or {})
    if missing:
        raise SpecError(f"offsets {sorted(missing)} (infinite-width kernels) are needed for "
                        f"{[k for k, e in chosen.items() if e.offset]}")
    fields = {k: jnp.asarray(v) for k, v in fields.items()}
    avg = jax.device_get(jax.jit(jax.vmap(averages_for(chosen.values())))(fields))
    moments = _update({}, chosen, {k: np.asarray(v) for k, v in avg.items()})
    return {name: _result(e, moments[(e.a, e.product)], n, offsets or {})
            for name, e in chosen.items()}


def _lookup(name: str) -> Estimator:
    try:
        return {**ESTIMATORS, **_DIAGNOSTICS}[name]
    except KeyError:
        raise SpecError(f"unknown tensor {name!r}; known: {', '.join(ESTIMATORS)}, "
                        f"{', '.join(_DIAGNOSTICS)}") from None


def offdiagonal_ntk_mean(request, **options) -> dict[str, np.ndarray]:
    """Estimate E[H_{ij;a1a2}] for i ≠ j (exactly zero): ``{"value", "se"}``, shape (N, N).

    ``options`` are those of :func:`estimate`.
    """
    request = _as_request(request)
    _, moments = _accumulate(request, _DIAGNOSTICS, **{
        "neurons": None, "chunk": None, "max_memory_bytes": None, "progress": False, **options})
    name = "offdiagonal_ntk_mean"
    return _result(_DIAGNOSTICS[name], moments[name], 1, {})
