"""The layer driver: one loop over layers, one hyperparameter mapping, one memory model.

Every layer-by-layer evaluation in feyntk runs through :func:`run`:

* the 1/n statistics with the numpy oracle (:class:`feyntk.numbers.evaluate.OracleStep`) or the
  generated numba / JAX kernels (:class:`feyntk.kernels.engine.KernelStep`), entry
  :func:`evaluate`; the backend is chosen by :func:`choose_backend` (``"auto"``: JAX on a GPU,
  else numba, else numpy);
* the infinite-width K and Θ with error estimates (:class:`feyntk.numbers.infinite.InfiniteStep`,
  entry :func:`feyntk.numbers.infinite.kernel_layers`).

A backend is a :class:`LayerStep`: it says how many bytes it needs for N inputs, builds the
layer-1 state and maps the state of layer ℓ to layer ℓ+1 given the :class:`Hyper` of that map
(the hyperparameters of layer ℓ+1 and r = n_ℓ/n_{ℓ-1}). The driver owns what the backends share:
exact duplicate inputs are evaluated once and their rows repeated
(:mod:`feyntk.numbers.repeated`), the memory budget is checked once, before anything is
allocated (states, tables and the expanded results), and the loop runs ℓ = 1 … layer-1.

With a quadrature report, :func:`evaluate_as_given` also estimates every tensor's quadrature
error by re-running the recursion with coarser caps (:func:`propagated_errors`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b
from feyntk.errors import MemoryBudgetError
from feyntk.numbers.repeated import Repeats, find_repeats
from feyntk.spec.network import Layer, Network, check_inputs

BACKENDS = ("numpy", "numba", "jax")

MEMORY_BUDGET = 4 * 2**30
"""Default bytes an evaluation may hold (layer states, tables, expanded results)."""


# -- backends -----------------------------------------------------------------------------------
def available_backends() -> tuple[str, ...]:
    """Backends that can run here (numpy always)."""
    out = ["numpy"]
    for mod in ("numba", "jax"):
        try:
            __import__(mod)
            out.append(mod)
        except ImportError:  # pragma: no cover
            pass
    return tuple(out)


def has_gpu() -> bool:
    try:
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    except Exception:  # pragma: no cover - no jax or no devices
        return False


def choose_backend(backend: str = "auto") -> str:
    """``auto``: JAX when a GPU is present, else numba, else numpy."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or 'auto', got {backend!r}")
        if backend not in available_backends():
            raise ValueError(f"backend {backend!r} is not installed here")
        return backend
    avail = available_backends()
    if "jax" in avail and has_gpu():
        return "jax"
    return "numba" if "numba" in avail else "numpy"


# -- hyperparameters ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Hyper(Layer):
    """Hyperparameters of the layer map into layer ``index``: those of the layer (C_W, C_b, λ_W,
    λ_b, :class:`~feyntk.spec.network.Layer`) and r = n_{index-1}/n_{index-2} (``ratio``; 1.0
    at layer 1, which has no map)."""

    ratio: float = 1.0

    def symbols(self) -> dict:
        """The values of the diagram coefficients' symbols (:mod:`feyntk.diagrams.fields`)."""
        return {C_W: self.C_W, C_b: self.C_b, lam_W: self.lambda_W, lam_b: self.lambda_b,
                RATIO: self.ratio}


def hyper(network: Network, layer: int) -> Hyper:
    """The :class:`Hyper` of ``layer`` (1-based)."""
    ratio = 1.0 if layer == 1 else network.widths[layer - 1] / network.widths[layer - 2]
    return Hyper(**dataclasses.asdict(network.layer(layer)), ratio=ratio)


def first_kernels(network: Network, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Layer-1 K = C_b + C_W x·x/n0 and Θ = λ_b + λ_W x·x/n0 (exact at every width)."""
    gram = x @ x.T / network.n0
    hp = hyper(network, 1)
    return hp.C_b + hp.C_W * gram, hp.lambda_b + hp.lambda_W * gram


# -- memory -------------------------------------------------------------------------------------
def array_bytes(ranks: Sequence[int], N: int, copies: int = 1) -> int:
    """Bytes of ``copies`` float64 arrays per rank in ``ranks``, every axis of length N."""
    return 8 * copies * sum(N ** r for r in ranks)


def check_memory(need: int, budget: int | None, what: str, holds: str) -> None:
    """Refuse, before allocating, an evaluation that needs more than ``budget`` bytes.

    ``what`` names the request (``"predicting ['A'] for N = 40 inputs"``), ``holds`` what the
    bytes are for (mentioning rank-4 tensors where they are what grows fastest).
    """
    budget = MEMORY_BUDGET if budget is None else budget
    if need > budget:
        fewer = " request fewer rank-4 tensors," if "rank-4" in holds else ""
        raise MemoryBudgetError(
            f"{what} needs {need / 2**30:.2f} GiB ({holds}), more than the budget of "
            f"{budget / 2**30:.2f} GiB. Use fewer inputs,{fewer} or raise max_memory_bytes.")


RANK4 = "rank-4 tensors hold N^4 entries"


# -- the interface ------------------------------------------------------------------------------
class LayerStep(Protocol):
    """One backend's evaluation of one request (its statistics, form and activation).

    ``originals`` (set by the driver before use): the caller's index of every sample, for error
    messages (None: the samples are the caller's inputs).
    """

    originals: tuple[int, ...] | None

    def memory(self, N: int) -> tuple[int, str]:
        """(bytes needed for N samples, what they hold) for the memory check."""

    def start(self, network: Network, x: np.ndarray):
        """The layer-1 state on inputs ``x``."""

    def step(self, state, hp: Hyper):
        """The state of layer ``hp.index`` from that of layer ``hp.index - 1``."""


def run(network: Network, x: np.ndarray, layer: int, stepper: LayerStep, *,
        keep: bool = False):
    """Apply ``stepper`` from layer 1 to ``layer``: the last state, or all of them if ``keep``."""
    state = stepper.start(network, x)
    states = [state]
    for l in range(2, layer + 1):
        state = stepper.step(state, hyper(network, l))
        if keep:
            states.append(state)
    return states if keep else state


def on_distinct(x: np.ndarray, stepper: LayerStep, evaluate: Callable[[np.ndarray], object],
                expand: Callable[[object, Repeats], object], *, what: str,
                output_ranks: Sequence[int] = (), budget: int | None = None,
                as_given: bool = False, held: int = 0):
    """Run ``evaluate`` on the distinct rows of ``x`` and ``expand`` its result to all inputs.

    The memory check (``stepper.memory`` for the distinct inputs, plus the expanded results
    of ``output_ranks`` over all N when inputs repeat) comes first; ``what`` describes the request
    for its message. ``as_given``: evaluate ``x`` itself, duplicates included. ``held``: copies
    of the results (``output_ranks`` over the distinct inputs) held beside the stepper's states,
    as the error estimate's coarser passes do (:func:`propagated_errors`).
    """
    rep = None if as_given else find_repeats(x)
    if rep is not None and rep.repeated:
        check_memory(array_bytes(output_ranks, rep.N), budget,
                     f"{what} for N = {rep.N} inputs ({rep.M} distinct)",
                     "the results expanded to all N inputs"
                     + (f"; {RANK4}" if 4 in output_ranks else ""))
        stepper.originals = tuple(rep.first.tolist())
        x = rep.unique
    else:
        rep = None
    need, holds = stepper.memory(x.shape[0])
    if held:
        need += array_bytes(output_ranks, x.shape[0], copies=held)
        holds += f"; {held} copies of the results for the error estimate"
    distinct = "" if stepper.originals is None else " distinct"
    check_memory(need, budget, f"{what} for N = {x.shape[0]}{distinct} inputs", holds)
    memo = getattr(stepper, "memo", None)
    if memo is not None:  # the kept integrals (kernels.memo) live within what the budget leaves
        memo.limit = max(0, min(memo.limit, (MEMORY_BUDGET if budget is None else budget) - need))
    out = evaluate(x)
    return out if rep is None else expand(out, rep)


def make_step(backend: str, closure, form: str, act, *, report=None, fine: bool = False,
              verbose: bool = False, log=None) -> LayerStep:
    """The :class:`LayerStep` of ``backend`` (numpy: the oracle; numba, jax: generated kernels)."""
    if backend == "numpy":
        from feyntk.numbers.evaluate import OracleStep

        return OracleStep(tuple(closure), form, act, report=report, fine=fine)
    from feyntk.kernels.engine import KernelStep

    return KernelStep(tuple(closure), form, act, backend, report=report, fine=fine,
                      verbose=verbose, log=log)


@functools.lru_cache(maxsize=256)
def _ranks(names: tuple[str, ...]) -> tuple[int, ...]:
    from feyntk.diagrams.diagram import correlator

    return tuple(len(correlator(n).output) for n in names)


def prepare(network: Network, inputs, names, layer: int | None, form: str):
    """(inputs, layer, closure, form) of a request, checked; ``form`` resolved
    (:func:`feyntk.numbers.evaluate.choose_form`; the derivative form at layer 1)."""
    from feyntk.numbers.evaluate import choose_form, dependencies

    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    closure = dependencies(names)
    act = network.activation
    form = choose_form(act, [n for n in closure if n != "K"], form) if layer > 1 else "derivative"
    return x, layer, closure, form


def evaluate(network: Network, inputs, names, layer: int | None = None, *, form: str = "auto",
             backend: str = "auto", max_memory_bytes: int | None = None,
             verbose: bool = False, log=None, report=None,
             fine: bool = False) -> dict[str, np.ndarray]:
    """Evaluate statistics ``names`` at ``layer`` (default L) by the derived recursions.

    Args:
        network, inputs: the network and its (N, n0) inputs.
        names: statistics to return (their dependency closure is computed).
        form: ``"derivative"``, ``"inverse-metric"`` or ``"auto"`` (derivative when the
            activation is smooth enough).
        backend: ``"numba"``, ``"jax"`` (generated kernels), ``"numpy"`` (the oracle) or
            ``"auto"`` (:func:`choose_backend`).
        max_memory_bytes: refuse (before allocating) requests whose states, tables and
            results would not fit (default :data:`MEMORY_BUDGET`).
        verbose: print the wall time of every layer step of the generated kernels (to ``log``,
            default stderr).
        report: a :class:`~feyntk.numbers.gaussian.QuadratureReport` to record integrals that
            stopped at the largest rule unconverged.
        fine: larger quadrature caps for 3- and 4-sample integrals (see
            :func:`feyntk.numbers.gaussian.tensor_levels`).

    Repeated inputs are evaluated once and their rows repeated (:mod:`feyntk.numbers.repeated`);
    the memory check counts the distinct inputs (and the expanded results).
    """
    backend = choose_backend(backend)
    x, layer, closure, form = prepare(network, inputs, names, layer, form)
    return evaluate_as_given(network, x, names, layer, closure, form, backend, max_memory_bytes,
                             verbose=verbose, log=log, report=report, fine=fine, dedup=True)


def evaluate_as_given(network: Network, x: np.ndarray, names, layer: int, closure, form: str,
                      backend: str, max_memory_bytes: int | None = None, *, verbose=False,
                      log=None, report=None, fine: bool = False,
                      originals: tuple[int, ...] | None = None,
                      dedup: bool = False) -> dict[str, np.ndarray]:
    """:func:`evaluate` with ``layer``, ``closure`` and ``form`` resolved (:func:`prepare`), on
    the inputs as given unless ``dedup`` (``originals``: their indices in the caller's inputs,
    for messages)."""
    names = tuple(names)
    from feyntk.numbers.gaussian.report import QuadratureReport

    local = None if report is None else QuadratureReport()  # this evaluation's integrals
    stepper = make_step(backend, closure, form, network.activation, report=local, fine=fine,
                        verbose=verbose, log=log)
    stepper.originals = originals

    def values(u):
        out = _select(run(network, u, layer, stepper), names)
        if report is not None:
            t = time.perf_counter()
            errors = propagated_errors(network, u, layer, stepper, local, out, fine)
            report.record(local, errors, time.perf_counter() - t)
        return out

    return on_distinct(x, stepper, values, lambda out, rep: rep.expand(out),
                       what=f"predicting {list(names)}", output_ranks=_ranks(names),
                       budget=max_memory_bytes, as_given=not dedup,
                       held=0 if report is None else 2)


# -- quadrature error of the tensors ------------------------------------------------------------
COARSER = (1, 2)
"""The error estimate's re-runs for a smooth activation: the 3- and 4-sample Gauss–Hermite caps
halved once and twice."""
FINER = 1
"""The error estimate's re-run for a kinked activation: the caps of the polar, conical and
piecewise rules doubled once."""


def propagated_errors(network: Network, x: np.ndarray, layer: int, stepper: LayerStep,
                      integrals, values: dict[str, np.ndarray],
                      fine: bool | int = False) -> dict[str, float]:
    """Relative quadrature error estimate of every tensor in ``values``.

    ``values`` was evaluated by ``stepper`` (caps ``fine``), its capped integrals recorded in
    ``integrals`` (a :class:`~feyntk.numbers.gaussian.QuadratureReport`). The recursion is run
    again by copies of ``stepper`` (the same generated kernels) with other caps: an integral
    that stopped at its cap m now stops at the new cap, every other integral is unchanged
    (converged, or on a rule without that cap), so the differences of the results are the
    capped integrals' errors propagated through the recursion, with their signs and
    cancellations, later layers damping earlier errors.

    * Smooth activations (Gauss–Hermite tensor rules, error falling like exp(−c√m)): twice,
      with the 3- and 4-sample caps halved and quartered
      (:func:`~feyntk.numbers.gaussian.tensor_levels` at ``fine − 1``, ``fine − 2``);
      :func:`~feyntk.numbers.gaussian.tensor_error` extrapolates the two differences to the
      error of ``values`` (2.8-51× the measured error; tanh, N = 4, 8, depth 3, 10).
    * Kinked activations (polar, conical and piecewise rules, error falling geometrically):
      once, with those caps doubled (:func:`~feyntk.numbers.gaussian.kinked_levels` at
      ``fine + 1``); :func:`~feyntk.numbers.gaussian.refined_error`: 3× the difference. The
      coarser re-runs were 0.02-20× the measured error here (relu on the conical rule, depth
      10). The refined re-run costs more than the evaluation (4× on the 4-d conical rule), but
      only where kinked integrals reach their caps: with relu's closed forms, the rows they
      refuse (:mod:`feyntk.numbers.gaussian.relu`).

    (``benchmarks/RESULTS-error-estimates.md``; the per-integral estimate overstates a deep
    network's tensors' errors by 10³-10⁴.) Capped integrals whose rule the re-run leaves
    unchanged (the smooth 2-d polar rule and rank ≤ 2 Gauss–Hermite rules: their labels recur
    in the re-run's report) add their per-integral estimate to every tensor. Without capped
    integrals every estimate is 0 and nothing is re-run. (Giving every tensor the per-integral
    maximum instead of re-running, as an earlier version did below 1e-10, reported 6e-11 where
    the tensors were exact to 1e-14: tanh, N = 4, fine.)

    Cost (smooth): two more evaluations, cheaper than the first (the capped integrals' last
    levels are the expensive part; tanh, all fifteen tensors, N = 8, depth 10: +0.5 s on 2 s).
    """
    from feyntk.numbers.gaussian.report import QuadratureReport, refined_error, tensor_error

    if integrals.capped == 0:
        return {n: 0.0 for n in values}
    smooth = network.activation.is_smooth
    again, reports = [], []
    for k in (COARSER if smooth else (-FINER,)):
        rep = QuadratureReport()
        quiet = {"verbose": False} if hasattr(stepper, "verbose") else {}
        step = dataclasses.replace(stepper, report=rep, fine=int(fine) - k, **quiet)
        again.append(_select(run(network, x, layer, step), values))
        reports.append(rep)
    unchanged = max((rel for label, rel in integrals.labels.items()
                     if label in reports[0].labels), default=0.0)
    if smooth:
        return {n: tensor_error(values[n], again[0][n], again[1][n]) + unchanged for n in values}
    return {n: refined_error(values[n], again[0][n]) + unchanged for n in values}


def _select(state: dict, names) -> dict[str, np.ndarray]:
    return {n: state[n] for n in names}
