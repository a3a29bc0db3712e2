"""Monte Carlo estimates of the fifteen order-1/n statistics, with standard errors (MATH.md §3, §5).

Each tensor is read off the distinct-neuron correlator of MATH.md §3 (``i ≠ j`` two neurons of
layer ℓ, ``n = n_{ℓ-1}``):

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

from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from feyntk.errors import SpecError
from feyntk.spec.config import Request, check_samples, parse_request
from feyntk.validate.sample import FIELDS, plan_sampling, sample_fields

jax.config.update("jax_enable_x64", True)

_STORED = (0, 2, 1, 3)   # natural (a1,a2,a3,a4) -> stored (a1,a3,a2,a4) for B and F


# -- per-network averages ---------------------------------------------------------------------
def _pair_mean(f: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """mean over ordered pairs i ≠ j of f_i ⊗ g_j; f: (M, *s), g: (M, *t) -> (*s, *t)."""
    M = f.shape[0]
    sf, sg = f.sum(0), g.sum(0)
    total = jnp.tensordot(sf, sg, axes=0)
    same = jnp.tensordot(f, g, axes=([0], [0]))
    return (total - same) / (M * (M - 1))


def _offdiag(t: jnp.ndarray) -> jnp.ndarray:
    """t[i, j, ...] with the i = j entries zeroed, divided by the number M(M−1) of pairs i ≠ j."""
    M = t.shape[0]
    mask = (1.0 - jnp.eye(M)).reshape((M, M) + (1,) * (t.ndim - 2))
    return t * mask / (M * (M - 1))


def _zz(f):
    return jnp.einsum("ia,ib->iab", f["z"], f["z"])


def _hd(f):
    return jnp.einsum("iiab->iab", f["H"])


def _pair_sum(diag: str, field: str):
    """mean over i ≠ j of a field's neuron pattern (``diag`` like "iijj"), shape (N,)*rank."""
    def average(f):
        t = f[field]
        k = t.ndim // 2
        samples = "abcdef"[:k]
        return _offdiag(jnp.einsum(f"{diag}{samples}->ij{samples}", t)).sum((0, 1))
    return average


_AVERAGES = {
    # name: (fields, per-network average over neurons or ordered distinct pairs), MATH.md order
    "zz": (("z",), lambda f: _zz(f).mean(0)),
    "Hd": (("H",), lambda f: _hd(f).mean(0)),
    "Ho": (("H",), _pair_sum("ij", "H")),
    "zz_zz": (("z",), lambda f: _pair_mean(_zz(f), _zz(f))),
    "Hd_Hd": (("H",), lambda f: _pair_mean(_hd(f), _hd(f))),
    "Hd_zz": (("H", "z"), lambda f: _pair_mean(_hd(f), _zz(f))),
    "Ho_Ho": (("H",), lambda f: jnp.einsum("ijab,ijcd->abcd", _offdiag(f["H"]), f["H"])),
    "Ho_zz": (("H", "z"), lambda f: jnp.einsum("ijab,ic,jd->abcd", _offdiag(f["H"]),
                                               f["z"], f["z"])),
    "dH_P": (("dH", "z"), lambda f: jnp.einsum(
        "ijabc,id->abcd", _offdiag(jnp.einsum("ijjabc->ijabc", f["dH"])), f["z"])),
    "dH_Q": (("dH", "z"), lambda f: jnp.einsum(
        "ijabc,jd->abcd", _offdiag(jnp.einsum("iijabc->ijabc", f["dH"])), f["z"])),
    "ddI_R": (("ddI",), _pair_sum("iijj", "ddI")),
    "ddII_S": (("ddII",), _pair_sum("iijj", "ddII")),
    "ddII_T": (("ddII",), _pair_sum("ijij", "ddII")),
    "ddII_U": (("ddII",), _pair_sum("ijji", "ddII")),
}


@dataclass(frozen=True)
class NetworkAverages:
    """Hashable per-network reducer: fields of one network -> dict of averages (jit-friendly)."""

    names: tuple[str, ...]

    def __call__(self, fields: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
        return {n: _AVERAGES[n][1](fields) for n in self.names}


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
        return self.a not in ("zz", "Hd")

    @property
    def averages(self) -> tuple[str, ...]:
        return (self.a,) + (self.product or ())


ESTIMATORS: dict[str, Estimator] = {
    "K": Estimator("zz", order=0, note="E[z_{i;a1} z_{i;a2}] at finite width (= K + K1/n + ...)"),
    "K1": Estimator("zz", offset="K", note="n (E[z_{i;a1} z_{i;a2}] - K_inf) = K1 + O(1/n), "
                    "K_inf from feyntk.numbers.infinite.infinite_kernels (its error not in se)"),
    "V": Estimator("zz_zz", ("zz", "zz"),
                   note="n (E[z_i z_i z_j z_j] - E[zz]E[zz]), product by U-statistic"),
    "Theta": Estimator("Hd", order=0, note="E[H_{ii;a1a2}] at finite width (= Theta + Theta1/n + "
                       "...)"),
    "Theta1": Estimator("Hd", offset="Theta", note="n (E[H_{ii;a1a2}] - Theta_inf) = Theta1 + "
                        "O(1/n), Theta_inf from feyntk.numbers.infinite.infinite_kernels"),
    "A": Estimator("Hd_Hd", ("Hd", "Hd"),
                   note="n (E[H_ii H_jj] - E[H_ii]E[H_jj]), product by U-statistic"),
    "B": Estimator("Ho_Ho", perm=_STORED,
                   note="B[a1,a3,a2,a4] = n E[H_{ij;a1a2} H_{ij;a3a4}] (E[H_ij] = 0 exactly)"),
    "D": Estimator("Hd_zz", ("Hd", "zz"),
                   note="n (E[H_ii z_j z_j] - E[H_ii]E[z_j z_j]), product by U-statistic"),
    "F": Estimator("Ho_zz", perm=_STORED, note="F[a1,a3,a2,a4] = n E[H_{ij;a1a2} z_{i;a3} "
                   "z_{j;a4}] (E[H_ij] E[z_i z_j] = 0 exactly)"),
    "P": Estimator("dH_P", note="n E[dH_{ijj;a0a1a2} z_{i;a3}]"),
    "Q": Estimator("dH_Q", note="n E[dH_{iij;a0a1a2} z_{j;a3}]"),
    "R": Estimator("ddI_R", note="n E[ddI_{iijj;a0a1a2a3}]"),
    "S": Estimator("ddII_S", note="n E[ddII_{iijj;a1a2a3a4}]"),
    "T": Estimator("ddII_T", note="n E[ddII_{ijij;a1a2a3a4}]"),
    "U": Estimator("ddII_U", note="n E[ddII_{ijji;a1a2a3a4}]"),
}
"""One entry per tensor of :data:`feyntk.spec.statistic.TENSOR_NAMES`."""

_DIAGNOSTICS = {"offdiagonal_ntk_mean": Estimator(
    "Ho", order=0, note="E[H_{ij;a1a2}], i != j: exactly 0 by symmetry (a sanity check)")}


def fields_needed(estimators) -> tuple[str, ...]:
    """Fields (subset of FIELDS, in order) that the given estimators need."""
    need = {f for e in estimators for a in e.averages for f in _AVERAGES[a][0]}
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
