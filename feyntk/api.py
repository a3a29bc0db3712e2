"""The request/response contract of ``feyntk predict`` and ``feyntk sample``, in Python.

Both take the config dict of :mod:`feyntk.spec.config` (or a :class:`~feyntk.spec.config.Request`)
and return::

    {"n": n_{layer-1}, "layer": l, "tensors": {NAME: {"value": ndarray, ...}}, ...}

with arrays in MATH.md's index order; order-1/n tensors are coefficients of 1/n with
n = n_{layer-1}. ``predict`` also takes the second-order names (MATH.md §7, same n):
``K2`` is the coefficient of 1/n² in E[z_{i;a1} z_{i;a2}] = K + K1/n + K2/n² (rank 2),
``V1`` the coefficient of 1/n in n·Cov[z_i z_i, z_j z_j] = V + V1/n (i ≠ j; i.e. of 1/n² in
the covariance itself; rank 4, V's index order), ``V6`` the coefficient of 1/n² in the joint
cumulant κ(z_{i;a1}, z_{i;a2}, z_{j;a3}, z_{j;a4}, z_{k;a5}, z_{k;a6}) of distinct neurons
i, j, k (its leading term: V6 = n² κ + O(1/n); rank 6, [a1, …, a6]).
``sample`` adds ``"se"`` (Monte Carlo standard error), ``"samples"``, ``"seed"`` and ``"notes"``
(``K`` and ``Theta`` from sampling are the full finite-width E[zz] and E[Ĥ_ii]).
"""

from __future__ import annotations

import json
import warnings
from typing import Any, Mapping

import numpy as np

from feyntk.diagrams.fields import CORRELATORS
from feyntk.errors import NotAvailableError, QuadratureWarning, SpecError
from feyntk.numbers.evaluate import evaluate
from feyntk.numbers.gaussian import QUAD_WARN, RTOL, QuadratureReport
from feyntk.spec.config import Request, parse_request
from feyntk.spec.statistic import SECOND_ORDER_NAMES


def derivable() -> tuple[str, ...]:
    """Tensors the diagram engine derives (and :func:`predict` evaluates) in this version: the
    registry's; :func:`predict` also takes the second-order
    :data:`~feyntk.spec.statistic.SECOND_ORDER_NAMES` (K2, V1, V6), which are not listed here."""
    return tuple(CORRELATORS)

def predict(config: Mapping[str, Any] | Request, *, form: str = "auto",
            backend: str = "auto", max_memory_bytes: int | None = None,
            verbose: bool = False, quadrature: str = "default") -> dict[str, Any]:
    """Theory prediction of the requested tensors from the engine's derived recursions.

    Args:
        config: config dict or :class:`Request` (keys in :mod:`feyntk.spec.config`).
        form: ``"auto"`` (derivative form when the activation is smooth enough),
            ``"derivative"`` or ``"inverse-metric"``.
        backend: ``"auto"`` (JAX on a GPU, else numba), ``"numba"``, ``"jax"`` (kernels
            generated from the diagrams, :mod:`feyntk.kernels`) or ``"numpy"`` (the plain
            reference loops of :func:`feyntk.numbers.evaluate.evaluate`). All give the same
            numbers to rounding. The second-order names ``K2``, ``V1``, ``V6`` are always
            evaluated by the numpy oracle (:func:`feyntk.numbers.second_order.predict_values`;
            under ``"auto"`` the first-order names of the same request keep their backend);
            ``"numba"`` / ``"jax"`` with a second-order name are refused
            (:class:`~feyntk.errors.NotAvailableError`): the generated kernels evaluate terms
            that read one tensor, and those recursions have terms that read two (K1·V, V·V).
        max_memory_bytes: refuse (before allocating) requests whose layer states and tables
            would not fit.
        verbose: print the wall time of every layer step to stderr.
        quadrature: ``"default"`` or ``"fine"`` (caps of the 3- and 4-sample Gauss–Hermite
            rules doubled: 8× / 16× the nodes at the last level; for kinked activations the
            caps of the polar, conical and piecewise rules, which relu's closed forms leave
            to the rows they refuse), for when the result's ``"quadrature"`` report or a
            :class:`~feyntk.errors.QuadratureWarning` says that integrals stopped unconverged.

    The result also holds ``"quadrature"``: the Gaussian integrals that reached the largest
    rule before the tolerance (``capped_integrals``), the estimated relative error of every
    tensor (``tensor_rel_error_estimates``, relative to its largest entry: the capped
    integrals' errors propagated through the recursion by re-running it with the caps halved
    and quartered, for kinked activations doubled,
    :func:`feyntk.numbers.driver.propagated_errors`; measured 2.8-51× the actual error,
    ``benchmarks/RESULTS-error-estimates.md``; second-order names are covered by the
    per-integral estimate instead), their maximum (``max_rel_error_estimate``, ``worst_tensor``),
    the largest per-integral estimate (``max_integral_rel_error_estimate``,
    ``worst``: its rule's samples and last level) and the time the estimate took
    (``estimate_seconds``). Above :data:`~feyntk.numbers.gaussian.QUAD_WARN` a
    :class:`~feyntk.errors.QuadratureWarning` is emitted.
    """
    from feyntk.kernels.engine import evaluate as evaluate_kernels
    from feyntk.symmetry.config import SYMMETRY_KEYS, predict_symmetric

    if isinstance(config, Mapping) and any(k in config for k in SYMMETRY_KEYS):
        _refuse_second_order(config, "predict of the symmetrized network (group, symmetrize)")
        return predict_symmetric(config, form=form, backend=backend,
                                 max_memory_bytes=max_memory_bytes, quadrature=quadrature)
    req = parse_request(config)
    second = tuple(t for t in req.tensors if t in SECOND_ORDER_NAMES)
    first = tuple(t for t in req.tensors if t not in second)
    missing = [t for t in first if t not in derivable()]
    if missing:
        raise NotAvailableError(
            f"predict cannot evaluate {missing} yet: the diagram engine derives "
            f"{list(derivable())}. `feyntk sample` estimates every tensor from real sampled "
            "networks.")
    if quadrature not in ("default", "fine"):
        raise SpecError(f"quadrature must be 'default' or 'fine', got {quadrature!r}")
    if second and backend in ("numba", "jax"):
        raise NotAvailableError(
            f"backend {backend!r} cannot evaluate {list(second)}: the generated {backend} "
            "kernels evaluate diagram terms that read one layer-ℓ tensor, and the order-1/n² "
            "recursions have terms that read two (K1·V, V·V). Use backend 'numpy' or 'auto' "
            "(the numpy oracle evaluates the second-order names; under 'auto' the "
            "first-order names keep the generated kernels).")
    if second:
        from feyntk.numbers.second_order import predict_values

        if backend not in ("auto", "numpy"):
            raise ValueError(f"backend must be one of ('numpy', 'numba', 'jax') or 'auto', "
                             f"got {backend!r}")
        # form and memory refusals of the second-order part before anything is evaluated
        predict_values(req.network, req.inputs, second, req.layer, form=form,
                       max_memory_bytes=max_memory_bytes, check_only=True)
    report = QuadratureReport()
    values = {}
    if first:
        values.update(evaluate_kernels(req.network, req.inputs, first, req.layer, form=form,
                                       backend=backend, max_memory_bytes=max_memory_bytes,
                                       verbose=verbose, report=report,
                                       fine=quadrature == "fine"))
    if second:
        values.update(predict_values(req.network, req.inputs, second, req.layer, form=form,
                                     max_memory_bytes=max_memory_bytes, report=report,
                                     fine=quadrature == "fine"))
    if report.estimate > QUAD_WARN:
        where = (f"of {report.worst_tensor}, propagated through the recursion"
                 if report.estimate > report.unpropagated else
                 f"per integral, {report.worst}")
        warnings.warn(QuadratureWarning(
            f"{report.capped} Gaussian integrals stopped at the largest quadrature rule before "
            f"reaching rtol = {RTOL:g}; estimated relative error up to "
            f"{report.estimate:.1e} ({where}). Slow convergence is typical for "
            "σ with poles near the real axis (tanh) at large K over 3-4 distinct inputs. "
            'Details in result["quadrature"]'
            + ("" if quadrature == "fine" else "; quadrature='fine' (--quadrature fine) "
               "doubles the caps") + "."), stacklevel=2)
    return {"n": req.n, "layer": req.layer,
            "tensors": {t: {"value": values[t]} for t in req.tensors},
            "quadrature": {**report.summary(), "setting": quadrature}}


def sample(config: Mapping[str, Any] | Request, *, samples: int | None = None,
           seed: int | None = None, neurons: int | None = None, progress: bool = False,
           max_memory_bytes: int | None = None) -> dict[str, Any]:
    """Monte Carlo estimate of the requested tensors from real sampled networks (JAX autodiff).

    Args:
        config: config dict or :class:`Request`; ``samples`` and ``seed`` override its keys.
        neurons: output neurons of layer ``l`` used per network (default: chosen by cost).
        progress: show a progress bar.
        max_memory_bytes: memory budget; a request that cannot fit is refused before allocating.

    Of the second-order names only ``V6`` has a single-width estimator
    (:mod:`feyntk.validate.six_point`, n²·κ3 of distinct neuron triples = V6 + O(1/n));
    ``K2`` and ``V1`` are refused (width-sweep coefficients, :mod:`feyntk.validate.requested`).
    """
    from feyntk.symmetry.config import SYMMETRY_KEYS, sample_symmetric
    from feyntk.validate.requested import estimate_requested

    if isinstance(config, Mapping) and any(k in config for k in SYMMETRY_KEYS):
        _refuse_second_order(config, "sample of the symmetrized network (group, symmetrize)")
        return sample_symmetric(config, samples=samples, seed=seed, neurons=neurons)
    req = parse_request(config, samples=samples, seed=seed)
    out = estimate_requested(req, neurons=neurons, progress=progress,
                             max_memory_bytes=max_memory_bytes)
    out.setdefault("seed", req.seed)
    return out


def _refuse_second_order(config: Mapping[str, Any], what: str) -> None:
    """NotAvailableError for the second-order names (K2, V1, V6) where only ``predict`` of a
    plain MLP evaluates them."""
    names = config.get("tensors") or ()
    names = [names] if isinstance(names, str) else list(names)
    second = [t for t in names if t in SECOND_ORDER_NAMES]
    if second:
        raise NotAvailableError(
            f"{what} does not report the second-order tensors {second}: only `feyntk predict` "
            "of a plain MLP evaluates them (K2, V1, V6 of MATH.md §7); the first-order names "
            f"are {', '.join(n for n in derivable() if n not in SECOND_ORDER_NAMES)}.")


TRAINING_KEYS = ("train_inputs", "targets", "eta")


def statistics(config: Mapping[str, Any] | Request, *, samples: int | None = None,
               seed: int | None = None, **options):
    """:func:`predict` (``samples`` None) or :func:`sample` as a
    :class:`~feyntk.numbers.result.Statistics`: the tensors together with the input set their
    sample axes run over (one block ``"inputs"``), the layer and n, and for sampling their
    standard errors (``.errors``). ``.cumulant(vertex, width)`` then gives expectations of
    fields with explicit neuron labels, e.g. ``cumulant("PQ", 2)`` for n·E[dĤ_{i0i1i2} z_{i3}].

    Sampled ``K`` and ``Theta`` are the full finite-width E[zz] and E[Ĥ] (see :func:`sample`),
    so ``kernel``/``mean_ntk`` of a sampled result already contain their 1/n parts.
    ``options`` go to :func:`predict` or :func:`sample`.
    """
    from feyntk.numbers.result import InputSet, Statistics

    req = parse_request(config)
    out = (predict(req, **options) if samples is None
           else sample(req, samples=samples, seed=seed, **options))
    tensors = {k: np.asarray(v["value"], dtype=float) for k, v in out["tensors"].items()}
    errors = {k: np.asarray(v["se"], dtype=float) for k, v in out["tensors"].items()
              if "se" in v}
    return Statistics(InputSet.of(inputs=req.inputs), out["layer"], out["n"], tensors, errors)


def predict_ntk_step(config: Mapping[str, Any], *, form: str = "auto") -> dict[str, Any]:
    """Predicted ensemble-mean NTK change after one full-batch GD step on the MSE loss.

    ``config`` is a predict config (its ``inputs`` are the points where the NTK is watched, its
    ``layer`` must be L) plus ``train_inputs`` (N_t lists of n0 numbers), ``targets`` (N_t lists
    of n_L numbers) and optionally ``eta`` (a number or list). Returns ``{"n", "first",
    "second", "change": {eta: array}}`` with arrays [i1, i2, δ1, δ2] such that
    E[ΔĤ] = η·first + η²·second (PDLT ch. 11; see :mod:`feyntk.numbers.training`).
    """
    from feyntk.numbers.training import predict_ntk_step as _predict

    cfg = dict(config)
    missing = [k for k in ("train_inputs", "targets") if k not in cfg]
    if missing:
        raise SpecError(f"a training-step config needs {missing} besides the predict keys")
    extra = {k: cfg.pop(k) for k in TRAINING_KEYS if k in cfg}
    req = parse_request(cfg)
    if req.layer != req.network.L:
        raise SpecError("the training step acts on the network output: layer must be L")
    step = _predict(req.network, req.inputs, extra["train_inputs"], extra["targets"], form=form)
    etas = extra.get("eta", [])
    etas = [etas] if isinstance(etas, (int, float)) else list(etas)
    return {"n": step.n, "first": step.first, "second": step.second,
            "change": {str(e): step.change(float(e)) for e in etas}}


def train(config: Mapping[str, Any], *, form: str = "auto", backend: str = "auto",
          max_memory_bytes: int | None = None) -> dict[str, Any]:
    """Trained-ensemble theory: infinite-width mean and covariance and the 1/n mean coefficient.

    See :mod:`feyntk.training.ensemble` for the config keys and the result (MATH.md §7).
    """
    from feyntk.training.ensemble import train as _train

    return _train(config, form=form, backend=backend, max_memory_bytes=max_memory_bytes)


def train_sample(config: Mapping[str, Any], *, samples: int, seed: int = 0,
                 progress: bool = False, max_memory_bytes: int | None = None) -> dict[str, Any]:
    """Train ``samples`` real networks (JAX) with the config's schedule; same keys as
    :func:`train` for ``mean`` and ``cov``, each with ``"value"`` and ``"se"``; with
    ``group`` and ``augment: "full"`` the networks train on the orbit, with ``symmetrize: true``
    real symmetrized networks f_G train on the original set (feyntk.symmetry.config)."""
    from feyntk.symmetry.config import train_sample_config, train_sample_options
    from feyntk.training.ensemble import parse_training
    from feyntk.training.sample import train_sample_network

    req, xa, y, schedule = parse_training(train_sample_config(config))
    out = train_sample_network(req.network, req.inputs, xa, y, schedule, samples=samples,
                               seed=seed, progress=progress, max_memory_bytes=max_memory_bytes,
                               **train_sample_options(config))
    return {"n": out["n"], "layer": req.network.L,
            "mean": {"value": out["mean"], "se": out["mean_se"]},
            "cov": {"value": out["cov"], "se": out["cov_se"]},
            "plain_mean": {"value": out["plain_mean"], "se": out["plain_mean_se"]},
            "samples": out["samples"], "seed": out["seed"], "schedule": schedule.to_json()}


def to_jsonable(result: Mapping[str, Any]) -> dict[str, Any]:
    """Convert numpy arrays in a predict/sample result to nested lists (JSON contract)."""

    def conv(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, (np.floating, np.integer)):
            return x.item()
        if isinstance(x, Mapping):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        return x

    return conv(dict(result))


def dumps(result: Mapping[str, Any]) -> str:
    return json.dumps(to_jsonable(result), indent=1)
