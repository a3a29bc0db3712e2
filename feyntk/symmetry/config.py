"""The symmetry keys of the train / train-sample config (issue 16 item 1, MATH.md §7).

Keys, on top of :mod:`feyntk.training.ensemble`'s:

* ``"group"``: a group spec (:func:`feyntk.symmetry.groups.parse_group`; n0 = widths[0],
  n_L = widths[-1]; ``"output_action"`` inside it for equivariance);
* ``"augment"``: ``"full"`` (train the MLP on the whole orbit {(ρ(g)x_α, ρ_out(g)y_α)}) or
  ``"none"`` (default);
* ``"symmetrize"``: ``true`` (train the symmetrized network f_G on the original set) or
  ``false`` (default).

Exactly one of ``augment: "full"`` and ``symmetrize: true`` must accompany a group (a group alone
would change nothing; both at once is f_G on its own orbit, which equals f_G at |G| times the
learning rate: use that instead), and neither is accepted without a group.

``train`` result: the contract of :func:`feyntk.training.ensemble.train` (``mean``, ``mean1``
(N_e, n_L), ``cov`` (N_e, N_e), ``mean1_parts``, ``schedule``) plus ``"symmetry"``: the group's
name and order, the mode, and for augmentation the number of distinct augmented points and of
training terms. For f_G with an output action the outputs are correlated: ``cov`` is then
output neuron 0's (N_e, N_e) block and ``cov_outputs`` the full (N_e, n_L, N_e, n_L) array.

``train-sample``: ``augment: "full"`` trains real MLPs on the orbit (every copy a term of the
summed loss, :func:`train_sample_config`); ``symmetrize: true`` trains real symmetrized networks
``f_G(θ; x) = |G|⁻¹ Σ_g ρ_out(g)ᵀ f(θ; ρ(g)x)`` on the original set, from the same draws θ_0
(same seeds) and with the same loss, λ and schedule as the MLP, their estimator's propagator built
from Θ_G (:func:`train_sample_options`, :func:`feyntk.symmetry.sample.symmetrized_output_map`).
The contract is train-sample's: ``cov`` pools the n_L output neurons (each centred by its own
mean), which for an output action is the neuron average of the diagonal blocks (``train``'s
``cov`` is neuron 0's block; the two agree for invariance).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from feyntk.errors import NotAvailableError, SpecError
from feyntk.symmetry.groups import parse_group

SYMMETRY_KEYS = ("group", "augment", "symmetrize")


def split(config: Mapping[str, Any]):
    """(config without the symmetry keys, group spec or None, augment: bool, symmetrize: bool)."""
    if not isinstance(config, Mapping):
        raise SpecError(f"config must be a dict/JSON object, got {type(config).__name__}")
    base = {k: v for k, v in config.items() if k not in SYMMETRY_KEYS}
    aug = config.get("augment", "none")
    if aug not in ("full", "none"):
        raise SpecError(f"augment must be \"full\" or \"none\", got {aug!r}")
    sym = config.get("symmetrize", False)
    if not isinstance(sym, bool):
        raise SpecError(f"symmetrize must be true or false, got {sym!r}")
    spec = config.get("group")
    full = aug == "full"
    if spec is None and (full or sym):
        what = 'augment: "full"' if full else "symmetrize: true"
        raise SpecError(f"{what} needs a \"group\": e.g. {{\"name\": \"rot90\", "
                        "\"shape\": [h, w]}}")
    if spec is not None and full and sym:
        raise SpecError("give either augment: \"full\" (the MLP on the augmented set) or "
                        "symmetrize: true (f_G on the original set), not both: f_G trained on "
                        "its own orbit is f_G at |G| times the learning rate (or time)")
    if spec is not None and not (full or sym):
        raise SpecError("a \"group\" needs augment: \"full\" or symmetrize: true; without "
                        "either it would change nothing (the plain MLP ensemble)")
    return base, spec, full, sym


def train_symmetric(config: Mapping[str, Any], *, form: str = "auto", backend: str = "auto",
                    max_memory_bytes: int | None = None) -> dict[str, Any]:
    """``feyntk.train`` with the symmetry keys (module docstring)."""
    from feyntk.symmetry.training import augmented_training, symmetrized_training
    from feyntk.training.ensemble import parse_training

    base, spec, full, sym = split(config)
    req, xa, y, schedule = parse_training(base)
    net = req.network
    group = parse_group(spec, net.n0, net.widths[-1])
    opts = dict(form=form, backend=backend, max_memory_bytes=max_memory_bytes)
    if full:
        out = augmented_training(net, group, req.inputs, xa, y, schedule, **opts)
        info = {"mode": "augment", **out.pop("augmented")}
    else:
        out = symmetrized_training(net, group, req.inputs, xa, y, schedule, **opts)
        info = {"mode": "symmetrize"}
        if out["cov"]["value"].ndim == 4:
            out["cov_outputs"] = out["cov"]
            out["cov"] = {"value": out["cov"]["value"][:, 0, :, 0]}
    out["symmetry"] = {"group": group.name, "order": group.order,
                       "invariant": group.invariant, **info}
    return out


def train_sample_config(config: Mapping[str, Any]):
    """For train-sample: (config with the augmented orbit as its training set, or unchanged)."""
    from feyntk.training.ensemble import parse_training

    base, spec, full, sym = split(config)
    if spec is None or sym:
        return base
    req, xa, y, _ = parse_training(base)
    group = parse_group(spec, req.network.n0, req.network.widths[-1])
    R = group.output_matrices(y.shape[1])
    X = group.act(xa).reshape(-1, req.network.n0)          # every copy one term of the loss
    Y = (R[:, None] @ y[None, :, :, None])[..., 0].reshape(-1, y.shape[1])
    return {**base, "train_inputs": X.tolist(), "targets": Y.tolist()}


def train_sample_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """For train-sample: the extra keywords of ``train_sample_network`` (``{}``, or for
    ``symmetrize: true`` the ``output_map`` of f_G; module docstring)."""
    from feyntk.symmetry.augment import orbit_classes
    from feyntk.symmetry.sample import symmetrized_output_map
    from feyntk.training.ensemble import parse_training

    base, spec, full, sym = split(config)
    if not sym:
        return {}
    req, xa, _, _ = parse_training(base)
    group = parse_group(spec, req.network.n0, req.network.widths[-1])
    cls = orbit_classes(group, xa)
    shared = [[int(b) for b in np.nonzero(cls.member_of == r)[0]] for r in range(len(cls.reps))]
    shared = [m for m in shared if len(m) > 1]
    if shared:
        raise SpecError(
            f"training inputs {shared[0]} lie on one orbit of {group.name}: f_G takes related "
            "values there (f_G(ρ(g)x) = ρ_out(g) f_G(x)), so they are one training point and "
            "Θ_G on the training inputs is singular. Keep one input per orbit (train merges "
            "them with their multiplicity; for train-sample give each orbit once)")
    if not group.invariant and any(len(st) > 1 for st in cls.stabilizers):
        raise SpecError(
            "with an output action, training inputs fixed by a group element other than the "
            "identity (ρ(g)x = x) confine f_G(x) to a subspace, which makes Θ_G on the training "
            "inputs singular: perturb those training inputs, or use an invariant group")
    return {"output_map": symmetrized_output_map(req.network, group)}


def _symmetrized_request(config, command: str, **overrides):
    from feyntk.spec.config import parse_request

    base, spec, full, sym = split(config)
    if full:
        raise SpecError(f"augment belongs to train / train-sample (it changes the training "
                        f"set); {command} takes \"symmetrize\": true with a \"group\"")
    req = parse_request(base, **overrides)
    group = parse_group(spec, req.network.n0, req.network.widths[-1])
    if not group.invariant:
        raise NotAvailableError(
            f"{command} reports δ-structured tensors, which f_G with an output action does not "
            "have (its output neurons mix); feyntk.symmetry.tensors.symmetrized_statistics "
            "gives its explicit-label cumulants, and train takes the output action")
    return req, group


def predict_symmetric(config: Mapping[str, Any], **options) -> dict[str, Any]:
    """``feyntk.predict`` of f_G (``group`` + ``symmetrize: true``): the requested tensors of the
    symmetrized network at ``layer`` in the predict contract (orbit averages, :mod:`.tensors`)."""
    from feyntk.numbers.result import InputSet
    from feyntk.symmetry.tensors import symmetrized_statistics

    req, group = _symmetrized_request(config, "predict")
    st = symmetrized_statistics(req.network, group, InputSet.of(inputs=req.inputs), req.tensors,
                                req.layer, **options)
    return {"n": st.n, "layer": st.layer,
            "tensors": {t: {"value": np.array(st[t])} for t in req.tensors},
            "symmetry": {"group": group.name, "order": group.order, "mode": "symmetrize"}}


def sample_symmetric(config: Mapping[str, Any], *, samples=None, seed=None, neurons=None,
                     **_) -> dict[str, Any]:
    """``feyntk.sample`` of real symmetrized networks (:mod:`.sample`), the sample contract."""
    from feyntk.spec.config import check_samples
    from feyntk.symmetry.sample import sample_symmetrized

    req, group = _symmetrized_request(config, "sample", samples=samples, seed=seed)
    out = sample_symmetrized(req.network, group, req.inputs, req.tensors,
                             check_samples(req.samples), req.seed, layer=req.layer,
                             neurons=neurons)
    out.update(seed=req.seed, symmetry={"group": group.name, "order": group.order,
                                  "mode": "symmetrize"})
    return out
