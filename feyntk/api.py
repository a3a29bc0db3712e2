"""The request/response contract of ``feyntk predict`` and ``feyntk sample``, in Python.

Both take the config dict of :mod:`feyntk.spec.config` (or a :class:`~feyntk.spec.config.Request`)
and return::

    {"n": n_{layer-1}, "layer": l, "tensors": {NAME: {"value": ndarray, ...}}, ...}

with arrays in MATH.md's index order; order-1/n tensors are coefficients of 1/n with
n = n_{layer-1}. ``predict`` adds an ``"error"`` array (estimated numerical-integration error);
``sample`` adds ``"se"`` (Monte Carlo standard error), ``"samples"``, ``"seed"`` and ``"notes"``
(``K`` and ``Theta`` from sampling are the full finite-width E[zz] and E[Ĥ_ii]).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from feyntk.errors import NotAvailableError
from feyntk.numbers.infinite import kernel_layers
from feyntk.spec.config import Request, parse_request

PREDICTABLE = ("K", "Theta")
"""Tensors that :func:`predict` evaluates in this version."""


def predict(config: Mapping[str, Any] | Request, *, method: str = "auto") -> dict[str, Any]:
    """Theory prediction of the requested tensors (infinite-width recursions).

    Args:
        config: config dict or :class:`Request` (keys in :mod:`feyntk.spec.config`).
        method: Gaussian integrals by ``"auto"`` (closed forms where known), ``"closed"`` or
            ``"quadrature"``.
    """
    req = parse_request(config)
    missing = [t for t in req.tensors if t not in PREDICTABLE]
    if missing:
        raise NotAvailableError(
            f"predict cannot evaluate {missing} yet: this version serves {list(PREDICTABLE)}. "
            "The order-1/n tensors come from the diagram engine (planned); meanwhile "
            "`feyntk sample` estimates every tensor from real sampled networks.")
    ntk = "Theta" in req.tensors
    last = kernel_layers(req.network, req.inputs, req.layer, ntk=ntk, method=method)[-1]
    arrays = {"K": (last.K, last.K_error), "Theta": (last.Theta, last.Theta_error)}
    return {"n": req.n, "layer": req.layer,
            "tensors": {t: {"value": arrays[t][0], "error": arrays[t][1]} for t in req.tensors}}


def sample(config: Mapping[str, Any] | Request, *, samples: int | None = None,
           seed: int | None = None, neurons: int | None = None, progress: bool = False,
           max_memory_bytes: int | None = None) -> dict[str, Any]:
    """Monte Carlo estimate of the requested tensors from real sampled networks (JAX autodiff).

    Args:
        config: config dict or :class:`Request`; ``samples`` and ``seed`` override its keys.
        neurons: output neurons of layer ``l`` used per network (default: chosen by cost).
        progress: show a progress bar.
        max_memory_bytes: memory budget; a request that cannot fit is refused before allocating.
    """
    from feyntk.validate.estimators import estimate

    req = parse_request(config, samples=samples, seed=seed)
    out = estimate(req, neurons=neurons, progress=progress, max_memory_bytes=max_memory_bytes)
    out.setdefault("seed", req.seed)
    return out


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
