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

import numpy as np
import sympy as sp

from feyntk.diagrams.diagram import correlator, declared, diagrams
from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b
from feyntk.numbers.evaluate import BlobCache
from feyntk.spec.network import Network, check_inputs
from feyntk.spec.statistic import REGISTRY, SECOND_ORDER


def _options(blob, alpha: dict, cache: BlobCache) -> list:
    """Derivative form of one blob: [(value thunk, dummy -> sample), ...] to be summed."""
    sigs = [(k, alpha[s]) for k, s in blob.sigs]
    opts = []
    if not cache.act.is_smooth:
        S = sorted({s for _, s in sigs})
        for pick in itertools.product(S, repeat=len(blob.legs)):
            groups = cache.groups(tuple(sigs), {s: pick.count(s) for s in set(pick)})
            opts.append((lambda gr=groups: cache.dist(gr), dict(zip(blob.legs, pick))))
        return opts
    for pick in itertools.product(range(len(sigs)), repeat=len(blob.legs)):
        ks = [k for k, _ in sigs]
        for m in pick:
            ks[m] += 1
        key = tuple(zip(ks, [s for _, s in sigs]))
        opts.append((lambda key=key: cache.plain(key),
                     {leg: sigs[m][1] for leg, m in zip(blob.legs, pick)}))
    return opts


def evaluate_term(term, alpha: dict, state: dict, cache: BlobCache, coeff: float) -> float:
    """Σ over dummies of one diagram term (any number of tensors) at external samples ``alpha``.

    Derivative form only (``cache.form`` is not consulted)."""
    means = 1.0
    for name, idx in term.means:
        means *= state[name][tuple(alpha[s] for s in idx)]
    if means == 0.0 or coeff == 0.0:
        return 0.0
    total = 0.0
    for combo in itertools.product(*(_options(b, alpha, cache) for b in term.blobs)):
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


def evaluate(network: Network, inputs, names, layer: int | None = None) -> dict[str, np.ndarray]:
    """Statistics ``names`` (first- or second-order) at ``layer`` (default L) from the derived
    recursions, derivative form. Every layer's state is returned under ``"layers"``:
    ``{l: {name: array}}``."""
    x = check_inputs(inputs, network.n0)
    layer = network.L if layer is None else network.check_layer(layer)
    closure = dependencies(names)
    N = x.shape[0]
    first = network.layer(1)
    K1 = first.C_b + first.C_W * (x @ x.T) / network.n0
    state = {n: K1 if n == "K" else np.zeros((N,) * len(correlator(n).output))
             for n in closure}
    layers = {1: state}
    for l in range(2, layer + 1):
        hp = network.layer(l)
        values = {C_W: hp.C_W, C_b: hp.C_b, lam_W: hp.lambda_W, lam_b: hp.lambda_b,
                  RATIO: network.widths[l - 1] / network.widths[l - 2]}
        cache = BlobCache(network.activation, state["K"], "derivative")
        state = {n: step(n, state, cache, values, N) for n in closure}
        layers[l] = state
    out = {n: layers[layer][n] for n in names}
    out["layers"] = layers
    return out


__all__ = ["evaluate", "evaluate_term", "step", "dependencies", "declared"]
