"""``feyntk sample`` of any requested tensor names: the first-order estimators
(:mod:`.estimators`) and the six-point vertex V6 (:mod:`.six_point`), merged into one result.

K² and V¹ are coefficients of 1/n² in E[zz] and of 1/n in n·Cov: one width cannot estimate them
(their Monte Carlo is a width sweep, :func:`feyntk.validate.compare.second_order_sweep`), so
they are refused with that pointer. V6 = n²·κ(z_i z_i, z_j z_j, z_k z_k) + O(1/n) is estimated
directly at the requested width from distinct neuron triples (needs ≥ 3 samples and neurons).
"""

from __future__ import annotations

import dataclasses

from feyntk.errors import NotAvailableError
from feyntk.spec.config import Request
from feyntk.spec.statistic import SECOND_ORDER_NAMES

SWEEP_ONLY = tuple(t for t in SECOND_ORDER_NAMES if t != "V6")
"""Second-order names with no single-width estimator."""


def estimate_requested(request: Request, *, neurons: int | None = None, progress: bool = False,
                       max_memory_bytes: int | None = None) -> dict:
    """Monte Carlo of ``request.tensors`` in the sample contract (in the request's order).

    First-order names share one pass over the networks; V6, when requested, takes a second pass
    over the same networks (same ``seed``) with at least 3 neurons of the layer. ``neurons`` and
    ``max_memory_bytes`` apply to both passes; the result's ``neurons`` is the first pass's (V6's
    count is stated in its note).

    Raises:
        NotAvailableError: K2 or V1 requested (width-sweep coefficients; the message says how).
    """
    from feyntk.validate.estimators import estimate
    from feyntk.validate.six_point import NAME, estimate_v6

    sweep_only = [t for t in request.tensors if t in SWEEP_ONLY]
    if sweep_only:
        raise NotAvailableError(
            f"sample does not estimate {sweep_only} at one width: K2 is the 1/n² coefficient of "
            "E[zz] and V1 the 1/n coefficient of n·Cov, which only a sweep over widths resolves "
            "(feyntk.validate.compare.second_order_sweep fits them); `feyntk predict` evaluates "
            "them, and `sample` estimates the second-order V6 directly.")
    first = tuple(t for t in request.tensors if t != NAME)
    parts = []
    if first:
        parts.append(estimate(dataclasses.replace(request, tensors=first), neurons=neurons,
                              progress=progress, max_memory_bytes=max_memory_bytes))
    if NAME in request.tensors:
        parts.append(estimate_v6(request, neurons=neurons, progress=progress,
                                 max_memory_bytes=max_memory_bytes))
    out = {**parts[-1], **parts[0]}
    tensors = {k: v for p in parts for k, v in p["tensors"].items()}
    notes = {k: v for p in parts for k, v in p["notes"].items()}
    out["tensors"] = {t: tensors[t] for t in request.tensors}
    out["notes"] = {t: notes[t] for t in request.tensors}
    return out
