"""Numbers of the order-1/n² recursions (K², V¹, V6), the plain numpy path.

The second-order statistics of :data:`feyntk.spec.statistic.SECOND_ORDER` are derived by the
same diagram engine as the fifteen (:func:`feyntk.diagrams.diagram.diagrams`); their terms can
read *two* layer-ℓ tensors (a product of two order-1/n vertices, e.g. ``K¹·V``), which
:func:`feyntk.numbers.evaluate.evaluate_term` does not handle. :func:`evaluate_term` here is that
function for any number of tensors per term, in both forms (MATH.md §4.4), with the blob integrals
of :class:`~feyntk.numbers.evaluate.BlobCache`: ``derivative`` (each z-leg differentiates one σ
factor of its blob; for kinked σ one sample of the blob, the product differentiated as a
distribution) and ``inverse-metric`` (``⟨∂_{g1}…∂_{gk} F⟩ = ⟨F He_{g1…gk}⟩`` with the Hermite
polynomials of K⁻¹ on the blob's distinct samples; a blob can carry up to eight legs at order
1/n², :func:`~feyntk.numbers.evaluate.hermite_polynomials` builds them for any k).
:func:`evaluate` runs the recursions of a closure of statistics layer by layer from the exact
layer 1 (every tensor but K vanishes there), with the hyperparameters of layer ℓ+1 and
r = n_ℓ/n_{ℓ-1}; order-k tensors at layer ℓ are coefficients of 1/n_{ℓ-1}^k.

``feyntk predict`` evaluates ``K2``, ``V1``, ``V6`` through :func:`predict_values` (the same
stepper, last layer only, repeated inputs once, the driver's memory check before anything is
allocated); the generated numba / JAX kernels handle one tensor per term and are not used for
them (:mod:`feyntk.api`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from feyntk.diagrams.diagram import correlator, declared, diagrams
from feyntk.numbers import driver
from feyntk.numbers.evaluate import BlobCache, derivative_options, first_layer
from feyntk.numbers.gaussian import QuadratureReport
from feyntk.spec.activation import Activation
from feyntk.spec.network import Network, check_inputs
from feyntk.spec.statistic import REGISTRY, SECOND_ORDER


def _inverse_metric_options(blob, alpha: dict, cache: BlobCache) -> list:
    """Inverse-metric form of one blob: [(value thunk, dummy -> sample), ...] to be summed."""
    sigs = tuple((k, alpha[s]) for k, s in blob.sigs)
    if not blob.legs:
        return [(lambda: cache.plain(sigs), {})]
    S, arr = cache.hermite(sigs, len(blob.legs))
    return [(lambda c=c: arr[c], {g: S[i] for g, i in zip(blob.legs, c)})
            for c in itertools.product(range(len(S)), repeat=len(blob.legs))]


def evaluate_term(term, alpha: dict, state: dict, cache: BlobCache, coeff: float) -> float:
    """Σ over dummies of one diagram term (any number of tensors) at external samples ``alpha``,
    in the form of ``cache.form``."""
    means = 1.0
    for name, idx in term.means:
        means *= state[name][tuple(alpha[s] for s in idx)]
    if means == 0.0 or coeff == 0.0:
        return 0.0
    options = derivative_options if cache.form == "derivative" else _inverse_metric_options
    total = 0.0
    for combo in itertools.product(*(options(b, alpha, cache) for b in term.blobs)):
        g, val = {}, 1.0
        for value, gb in combo:
            g.update(gb)
            val *= value()
            if val == 0.0:
                break
        if val == 0.0:
            continue
        for name, idx in term.tensors:
            val *= state[name][tuple(g[s] if s in g else alpha[s] for s in idx)]
        total += val
    return float(term.weight) * coeff * means * total


def dependencies(names) -> tuple[str, ...]:
    """The statistics the recursions of ``names`` read, closed (K included)."""
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name != "K":
            todo += [t for d in diagrams(name) for t in d.tensors if t not in seen] + ["K"]
    order = list(REGISTRY) + [s.name for s in SECOND_ORDER if s.name not in REGISTRY]
    return tuple(n for n in order if n in seen)


def step(name: str, state: dict, cache: BlobCache, values: dict, N: int) -> np.ndarray:
    """Statistic ``name`` at layer ℓ+1 from the layer-ℓ ``state`` (all its dependencies)."""
    corr = correlator(name)
    out = np.zeros((N,) * len(corr.output))
    terms = [(t, float(sp.sympify(t.coeff).subs(values))) for d in diagrams(name)
             for t in d.terms]
    for idx in itertools.product(range(N), repeat=len(corr.output)):
        alpha = dict(zip(corr.output, idx))
        out[idx] = sum(evaluate_term(t, alpha, state, cache, c) for t, c in terms)
    return out


@dataclass
class SecondOrderStep:
    """These recursions behind the layer driver (:class:`feyntk.numbers.driver.LayerStep`):
    every statistic of ``closure`` by :func:`step` in ``form``; ``layers``: how many layer
    states are kept (for the memory model)."""

    closure: tuple[str, ...]
    act: Activation
    layers: int
    originals: tuple[int, ...] | None = None
    form: str = "derivative"
    report: QuadratureReport | None = None
    fine: bool = False

    def memory(self, N: int) -> tuple[int, str]:
        ranks = [len(correlator(n).output) for n in self.closure]
        holds = driver.RANK4 + ("; rank-6 tensors (V6) hold N^6 entries" if 6 in ranks else "")
        return (driver.array_bytes(ranks, N, copies=self.layers),
                f"{self.layers} layer states of {', '.join(self.closure)}; {holds}")

    def start(self, network: Network, x: np.ndarray) -> dict:
        return first_layer(network, x, self.closure)

    def step(self, state: dict, hp: driver.Hyper) -> dict:
        cache = BlobCache(self.act, state["K"], self.form, originals=self.originals,
                          report=self.report, fine=self.fine)
        return {n: step(n, state, cache, hp.symbols(), state["K"].shape[0])
                for n in self.closure}


def evaluate(network: Network, inputs, names, layer: int | None = None, *,
             form: str = "derivative") -> dict[str, np.ndarray]:
    """Statistics ``names`` (first- or second-order) at ``layer`` (default L) from the derived
    recursions in ``form`` (``derivative`` or ``inverse-metric``), through the layer driver (:func:`feyntk.numbers.driver.run`;
    the inputs as given). Every layer's state is returned under ``"layers"``:
    ``{l: {name: array}}``."""
    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    if form not in ("derivative", "inverse-metric"):
        raise ValueError(f"form must be 'derivative' or 'inverse-metric', got {form!r}")
    stepper = SecondOrderStep(dependencies(names), network.activation, layer, form=form)
    states = driver.on_distinct(
        x, stepper, lambda u: driver.run(network, u, layer, stepper, keep=True), None,
        what=f"evaluating {list(names)}", as_given=True)
    layers = dict(enumerate(states, 1))
    out = {n: layers[layer][n] for n in names}
    out["layers"] = layers
    return out


def predict_values(network: Network, x: np.ndarray, names, layer: int, *, form: str = "auto",
                   max_memory_bytes: int | None = None, report: QuadratureReport | None = None,
                   fine: bool = False, check_only: bool = False) -> dict[str, np.ndarray]:
    """Statistics ``names`` (any of the fifteen and K2, V1, V6) at ``layer`` only, as
    ``feyntk predict`` reports them: ``form`` ``"auto"`` resolved as for the first order
    (:func:`feyntk.numbers.evaluate.choose_form` on the dependency closure; the derivative form
    at layer 1), exact duplicate inputs evaluated once (:func:`feyntk.numbers.driver.on_distinct`),
    two layer states held and the memory budget checked before anything is allocated
    (:class:`~feyntk.errors.MemoryBudgetError`). ``check_only``: the form and memory checks
    alone (nothing evaluated; returns None)."""
    from feyntk.numbers.evaluate import choose_form

    names = tuple(names)
    closure = dependencies(names)
    form = (choose_form(network.activation, [n for n in closure if n != "K"], form)
            if layer > 1 else "derivative")
    stepper = SecondOrderStep(closure, network.activation, 2, form=form, report=report,
                              fine=fine)
    ranks = [len(correlator(n).output) for n in names]
    if check_only:
        def run(u):
            return None

        def expand(out, rep):
            return None
    else:
        def run(u):
            state = driver.run(network, u, layer, stepper)
            return {n: state[n] for n in names}

        def expand(out, rep):
            return rep.expand(out)
    return driver.on_distinct(x, stepper, run, expand, what=f"predicting {list(names)}",
                              output_ranks=ranks, budget=max_memory_bytes)


__all__ = ["evaluate", "predict_values", "evaluate_term", "step", "dependencies", "declared",
           "hermite"]
