"""Numbers of the order-1/n² recursions (K², V¹, V6), the plain numpy path.

The second-order statistics of :data:`feyntk.spec.statistic.SECOND_ORDER` are derived by the
same diagram engine as the fifteen (:func:`feyntk.diagrams.diagram.diagrams`); their terms can
read *two* layer-ℓ tensors (a product of two order-1/n vertices, e.g. ``K¹·V``), which
:func:`feyntk.numbers.evaluate.evaluate_term` does not handle. :func:`evaluate_term` here is that
function for any number of tensors per term, in the derivative form (each z-leg differentiates
one σ factor of its blob; for kinked σ one sample of the blob, the product differentiated as a
distribution), with the blob integrals of :class:`~feyntk.numbers.evaluate.BlobCache`.
:func:`evaluate` runs the recursions of a closure of statistics layer by layer from the exact
layer 1 (every tensor but K vanishes there), with the hyperparameters of layer ℓ+1 and
r = n_ℓ/n_{ℓ-1}; order-k tensors at layer ℓ are coefficients of 1/n_{ℓ-1}^k.

Not yet wired into ``feyntk predict`` (generated kernels and the layer driver handle one tensor
per term): see issue 18, item 3.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp

from feyntk.diagrams.diagram import correlator, declared, diagrams
from feyntk.numbers import driver
from feyntk.numbers.evaluate import BlobCache, derivative_options, first_layer
from feyntk.spec.activation import Activation
from feyntk.spec.network import Network, check_inputs
from feyntk.spec.statistic import REGISTRY, SECOND_ORDER


def evaluate_term(term, alpha: dict, state: dict, cache: BlobCache, coeff: float) -> float:
    """Σ over dummies of one diagram term (any number of tensors) at external samples ``alpha``.

    Derivative form only (``cache.form`` is not consulted)."""
    means = 1.0
    for name, idx in term.means:
        means *= state[name][tuple(alpha[s] for s in idx)]
    if means == 0.0 or coeff == 0.0:
        return 0.0
    total = 0.0
    for combo in itertools.product(*(derivative_options(b, alpha, cache)
                                      for b in term.blobs)):
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
    every statistic of ``closure`` by :func:`step`, derivative form; ``layers``: how many layer
    states are kept (for the memory model)."""

    closure: tuple[str, ...]
    act: Activation
    layers: int
    originals: tuple[int, ...] | None = None

    def memory(self, N: int) -> tuple[int, str]:
        ranks = [len(correlator(n).output) for n in self.closure]
        return (driver.array_bytes(ranks, N, copies=self.layers),
                f"{self.layers} layer states of {', '.join(self.closure)}; {driver.RANK4}")

    def start(self, network: Network, x: np.ndarray) -> dict:
        return first_layer(network, x, self.closure)

    def step(self, state: dict, hp: driver.Hyper) -> dict:
        cache = BlobCache(self.act, state["K"], "derivative", originals=self.originals)
        return {n: step(n, state, cache, hp.symbols(), state["K"].shape[0])
                for n in self.closure}


def evaluate(network: Network, inputs, names, layer: int | None = None) -> dict[str, np.ndarray]:
    """Statistics ``names`` (first- or second-order) at ``layer`` (default L) from the derived
    recursions, derivative form, through the layer driver (:func:`feyntk.numbers.driver.run`;
    the inputs as given). Every layer's state is returned under ``"layers"``:
    ``{l: {name: array}}``."""
    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    stepper = SecondOrderStep(dependencies(names), network.activation, layer)
    states = driver.on_distinct(
        x, stepper, lambda u: driver.run(network, u, layer, stepper, keep=True), None,
        what=f"evaluating {list(names)}", as_given=True)
    layers = dict(enumerate(states, 1))
    out = {n: layers[layer][n] for n in names}
    out["layers"] = layers
    return out


__all__ = ["evaluate", "evaluate_term", "step", "dependencies", "declared"]
