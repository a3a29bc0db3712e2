"""The ``train`` contract: trained-ensemble predictions at infinite width and at O(1/n).

Config (JSON object / dict): the predict keys of :mod:`feyntk.spec.config` (``inputs`` are the
evaluation points, N_e × n0; ``layer``, if given, must be L) plus ``train_inputs`` (N_A × n0),
``targets`` (N_A × n_L) and exactly one of ``"steps": T`` (integer ≥ 0 or ``"inf"``) with
``"eta": η`` (> 0) for gradient descent, or ``"time": t`` (≥ 0 or ``"inf"``) for gradient flow.
Loss ``½ Σ_{α∈A} Σ_j (z_{j;α} − y_{j;α})²``, updates ``θ_μ ← θ_μ − η λ_μ ∂L/∂θ_μ`` or
``dθ_μ/dt = −λ_μ ∂L/∂θ_μ`` (MATH.md §7).

Result::

    {"n": n_{L−1}, "layer": L,
     "mean":  {"value": (N_e, n_L)},   # infinite-width ensemble mean μ
     "mean1": {"value": (N_e, n_L)},   # coefficient of 1/n: E[z_T] = μ + mean1/n + O(1/n²)
     "cov":   {"value": (N_e, N_e)},   # infinite-width covariance of one output neuron
     "mean1_parts": {"theta1" | "ntk_fluctuations" | "dntk" | "ddntk": (N_e, n_L)},
     "schedule": {...}}
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from feyntk.errors import MemoryBudgetError, NotAvailableError, SpecError
from feyntk.numbers.result import InputSet, evaluate_statistics
from feyntk.spec.config import EXAMPLE_CONFIG, HYPERPARAMETERS, parse_request
from feyntk.spec.network import check_inputs
from feyntk.training.converged import converged_correction
from feyntk.training.dynamics import mean_correction
from feyntk.training.infinite import infinite_ensemble, spectrum
from feyntk.training.schedule import SCHEDULE_KEYS, Schedule, parse_schedule

TRAIN_KEYS = ("train_inputs", "targets", *SCHEDULE_KEYS)
NEEDS = ("K", "Theta", "Theta1", "A", "B", "P", "Q", "R", "S", "T", "U")
"""Statistics of layer L that the O(1/n) mean uses (D, F, V, K¹ cancel by parity)."""

EXAMPLE_TRAIN_CONFIG: dict[str, Any] = {
    "widths": [2, 64, 64, 1],
    # the shipped predict example's activation and hyperparameters
    **{k: EXAMPLE_CONFIG[k] for k in ("activation", *HYPERPARAMETERS)},
    "inputs": [[0.8, -0.2], [-0.3, 0.7]],
    "train_inputs": [[1.0, 0.3], [-0.4, 0.9], [0.5, -1.0]],
    "targets": [[0.5], [-0.3], [0.2]],
    "steps": 20,
    "eta": 0.2,
}


def parse_training(config: Mapping[str, Any]):
    """Split a training config into (Request, train inputs, targets (N_A, n_L), Schedule)."""
    if not isinstance(config, Mapping):
        raise SpecError(f"config must be a dict/JSON object, got {type(config).__name__}")
    missing = [k for k in ("train_inputs", "targets") if k not in config]
    if missing:
        raise SpecError(f"a training config needs {missing} besides the predict keys; "
                        "`feyntk example --train` prints a complete one")
    schedule = parse_schedule(config)
    rest = {k: v for k, v in config.items() if k not in TRAIN_KEYS}
    req = parse_request(rest)
    if req.layer != req.network.L:
        raise SpecError(f"training acts on the network output: layer must be L = "
                        f"{req.network.L} (got {req.layer}); drop 'layer' or set it to L")
    xa = check_inputs(config["train_inputs"], req.network.n0, "train_inputs")
    y = check_targets(config["targets"], xa.shape[0], req.network.widths[-1])
    return req, xa, y, schedule


def check_targets(targets, N_A: int, n_L: int) -> np.ndarray:
    try:
        y = np.asarray(targets, dtype=float)
    except (TypeError, ValueError):
        raise SpecError("targets must be N_A lists of n_L numbers") from None
    if y.ndim == 1 and n_L == 1 and y.shape[0] == N_A:
        y = y[:, None]
    if y.shape != (N_A, n_L):
        raise SpecError(f"targets must have shape (N_A, n_L) = ({N_A}, {n_L}): one list of "
                        f"n_L = {n_L} numbers per training input; got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        bad = np.argwhere(~np.isfinite(y))[0]
        raise SpecError(f"targets must be finite (no NaN or inf); targets[{bad[0]}][{bad[1]}] "
                        f"= {y[tuple(bad)]}")
    return y


def train(config: Mapping[str, Any], *, form: str = "auto", backend: str = "auto",
          max_memory_bytes: int | None = None) -> dict[str, Any]:
    """Theory of the trained ensemble (module docstring): μ, Σ and the 1/n mean coefficient.

    With the keys ``group``, ``augment``, ``symmetrize``: :mod:`feyntk.symmetry.config`."""
    from feyntk.symmetry.config import SYMMETRY_KEYS, train_symmetric

    if isinstance(config, Mapping) and any(k in config for k in SYMMETRY_KEYS):
        return train_symmetric(config, form=form, backend=backend,
                               max_memory_bytes=max_memory_bytes)
    req, xa, y, schedule = parse_training(config)
    net, w = req.network, req.network.widths[-1]
    inputs = InputSet.of(eval=req.inputs, train=xa)
    check_training_memory(w, inputs.N, len(xa), max_memory_bytes)
    check_activation(net)
    stats = evaluate_statistics(net, inputs, NEEDS, net.L, form=form, backend=backend,
                                max_memory_bytes=max_memory_bytes)
    E, A = stats.block("eval"), stats.block("train")
    spec = spectrum(stats["Theta"][np.ix_(A, A)], schedule)
    mean, cov = infinite_ensemble(stats["K"], stats["Theta"], E, A, y, schedule)
    corr = correction(stats, schedule, y, spec.lam[-1], w)
    parts = {k: getattr(corr, k).T for k in ("theta1", "ntk_fluctuations", "dntk", "ddntk")}
    return {"n": stats.n, "layer": net.L, "mean": {"value": mean},
            "mean1": {"value": corr.total.T}, "cov": {"value": cov},
            "mean1_parts": parts, "schedule": schedule.to_json()}


def check_activation(net) -> None:
    """Refuse kinked activations whose ddNTK the 1/n mean would need but that do not define it.

    Under the distributional definition relu's ddNTK correlators contain δ(z)² (and δ'·H³) at one
    sample and diverge; trained relu networks indeed have an O(n^{-1/2}) correction, not O(1/n)
    (measured in ``tests/test_training_relu.py``).
    """
    act = net.activation
    if net.L > 1 and act.regular_order < 3:
        raise NotAvailableError(
            f"the 1/n trained-ensemble mean is not defined for {act.name!r}: it needs the "
            f"ddNTKs (R, S, T, U), which contain products of delta functions at one sample for "
            "this kinked activation and diverge (softplus_β's grow with β). Real trained relu "
            "networks agree: their finite-width correction after T ≥ 2 steps scales like "
            "n^(-1/2), not 1/n (tests/test_training_relu.py). Use a smooth activation (gelu, "
            "softplus_β), or {\"name\": \"relu\", \"derivatives\": \"pointwise\"} for the "
            "σ'' = 0 value (its mean and cov are relu's exact infinite-width result; its mean1 "
            "is what a network without kink crossings would do, which trained relu networks "
            "do not follow either).")


TRAIN_MEMORY_BUDGET = 2 * 1024 ** 3
"""Default budget of the O(1/n) mean's arrays (2 GiB)."""


def check_training_memory(width: int, N: int, N_A: int, max_memory_bytes: int | None) -> None:
    """Refuse, before allocating, requests whose explicit-label arrays would not fit.

    The step map carries (ddÎ, ddÎÎ) of n_L⁴N⁴ entries and is differentiated along
    n_L²·N·N_A directions at once, each carrying (z, Ĥ, dĤ) of ~n_L³N³ entries.
    """
    budget = TRAIN_MEMORY_BUDGET if max_memory_bytes is None else max_memory_bytes
    need = 8 * (4 * width**4 * N**4 + 3 * width**2 * N * N_A * (width**3 * N**3 + width**2 * N**2))
    if need > budget:
        raise MemoryBudgetError(
            f"the 1/n trained mean for n_L = {width} outputs and N = {N} inputs ({N_A} training) "
            f"needs about {need / 2**30:.1f} GiB of arrays over explicit output labels, over "
            f"the budget of {budget / 2**30:.1f} GiB: use fewer inputs or outputs, or raise "
            "max_memory_bytes")


def correction(stats, schedule: Schedule, y: np.ndarray, lam_max: float, width: int):
    """n (E[z] − μ) by the closed form when converged, else by the iterated step map."""
    if stats.layer == 1 or schedule.kind == "steps" and schedule.steps == 0 or \
            schedule.kind == "flow" and schedule.time == 0:
        zero = np.zeros((width, len(stats.block("eval"))))
        from feyntk.training.dynamics import MeanCorrection
        return MeanCorrection(zero, zero, zero, zero, zero)
    if schedule.converged:
        return converged_correction(stats, schedule, y, width)
    return mean_correction(stats, schedule, y, lam_max, width)
