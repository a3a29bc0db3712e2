"""Trained augmented and symmetrized ensembles at O(1/n) (issue 16 item 3, MATH.md §7).

Built on :mod:`feyntk.training` (the 1/n mean from the step map or its converged closed form),
which reads only a Statistics-like object: ``cumulant``, ``kernel``, ``mean_ntk``, ``block``,
``inputs``, ``layer``.

**Weighted training points.** The augmented set is reduced to distinct points u with
multiplicities m_u (:func:`.augment.augment`); the summed loss with m copies of a point is the
loss with weight m, ``½ Σ_u m_u |z(u) − ȳ_u|²`` (+ const). The training code has unit weights,
but every field of MATH.md §2 is linear in each of its sample slots, so the change of variables
``z'_u = √m_u z_u`` (and likewise each training slot of Ĥ, dĤ, ddÎ, ddÎÎ; evaluation slots
unchanged), ``y'_u = √m_u ȳ_u`` turns the weighted dynamics into the unit-weight dynamics of the
primed fields exactly: ``Δz_x = −η Σ_u Ĥ_{xu} m_u ε_u = −η Σ_u Ĥ'_{xu} ε'_u``, and so on for
every term of the step map. The primed statistics are the tensors with each training slot
multiplied by √m (:class:`WeightedStatistics`). Θ'_AA = √M Θ_AA √M stays nonsingular on
distinct points, so converged training (T = ∞) works too; the evaluation outputs are not
rescaled. (:mod:`.augment` uses the same rescaling at infinite width.)

**Full augmentation is exactly equivariant at every width** (Nordenfors & Flinth 2024): the
initial distribution is invariant under θ ↦ (W₁ρ(g)ᵀ, …, ρ_out(g)W_L, ρ_out(g)b_L), which maps
the trained network on the augmented set to itself, so E[z_T(ρ(g)x)] = ρ_out(g)E[z_T(x)] order
by order in 1/n; ``mean1`` of :func:`augmented_training` is a test of the whole finite-width
machinery.

**Symmetrized network.** f_G's statistics (:mod:`.tensors`) go through the same code; training
inputs on one orbit merge into one representative with multiplicity m (f_G is exactly
equivariant), as in :func:`.augment.symmetrized_ensemble`. For an output action, training inputs
with a non-trivial stabilizer would need the fixed-space projection as well, which the step-map
code's explicit-label layout does not take: refused.

**Augmented MLP against the symmetrized network at O(1/n)** (issue 16 item 3(b)).
:func:`paired_configs` turns one config (a ``group`` and a schedule) into the two the seeds
compare: the MLP on the full orbit at (T steps of η) or t, and f_G on the original set at
(T steps of |G|η) or |G|t. Their infinite-width means are equal exactly (the seeds' theorem,
:func:`.augment.seeds_theorem`: for gradient descent the step map of the equivariant mean is
the same for η on the orbit and |G|η for f_G, so this η/T mapping is exact; for the loss
normalised by the number of terms the η would agree). Their 1/n coefficients are not:
:func:`augmented_minus_symmetrized` gives ``mean1_aug − mean1_G``. It vanishes neither at
T = 1 (the one-step map's ½η² dĤ εε term pairs the MLP's own output at ρ(g)x_α with the dNTK
there, while f_G pairs the orbit average) nor at later times, so the seeds' equality is an
infinite-width statement. :func:`difference_sweep` measures it on real trained ensembles of both
kinds.
"""

from __future__ import annotations

import numpy as np

from feyntk.errors import NotAvailableError, SpecError
from feyntk.numbers.result import InputSet
from feyntk.spec.network import Network, check_inputs
from feyntk.symmetry.augment import augment, orbit_classes, symmetrized_ensemble
from feyntk.symmetry.groups import Group
from feyntk.symmetry.kernels import check_group
from feyntk.symmetry.tensors import statistics, symmetrized_statistics
from feyntk.training.converged import flatten_labels
from feyntk.training.ensemble import (NEEDS, check_activation, check_targets,
                                      check_training_memory, correction)
from feyntk.training.infinite import infinite_ensemble, spectrum


class WeightedStatistics:
    """Statistics with every sample axis scaled by ``s`` (√multiplicity on ``block``, else 1)."""

    def __init__(self, base, block: str, weights):
        self.base = base
        self.inputs = base.inputs
        self.layer, self.n = base.layer, base.n
        s = np.ones(base.inputs.N)
        idx = base.block(block)
        w = np.asarray(weights, dtype=float)
        if w.shape != idx.shape or np.any(w <= 0):
            raise SpecError(f"weights must be {len(idx)} positive numbers for block {block!r}")
        s[idx] = np.sqrt(w)
        self.s = s

    def block(self, name: str) -> np.ndarray:
        return self.base.block(name)

    def _scale(self, arr: np.ndarray, k: int, on=None) -> np.ndarray:
        for m in range(k):
            s = self.s if on is None else self.s[self.block(on[m])]
            shape = [1] * arr.ndim
            shape[arr.ndim - k + m] = -1
            arr = arr * s.reshape(shape)
        return arr

    def __getitem__(self, name: str) -> np.ndarray:
        T = self.base[name]
        return self._scale(T, T.ndim)

    def cumulant(self, vertex: str, width: int, on=None) -> np.ndarray:
        C = self.base.cumulant(vertex, width, on)
        return self._scale(C, C.ndim // 2, on)

    def kernel(self, width: int, name: str = "K") -> np.ndarray:
        return self._scale(self.base.kernel(width, name), 2)

    def mean_ntk(self, width: int) -> np.ndarray:
        return self.kernel(width, "Theta")


def _result(stats, schedule, y, width, mean, cov) -> dict:
    A = stats.block("train")
    Th = flatten_labels(stats.mean_ntk(width), 2)
    Af = (np.arange(width)[:, None] * stats.inputs.N + A[None, :]).ravel()
    lam_max = float(np.linalg.eigvalsh(0.5 * (Th[np.ix_(Af, Af)] + Th[np.ix_(Af, Af)].T))[-1])
    corr = correction(stats, schedule, y, lam_max, width)
    parts = {k: getattr(corr, k).T for k in ("theta1", "ntk_fluctuations", "dntk", "ddntk")}
    return {"n": stats.n, "layer": stats.layer, "mean": {"value": mean},
            "mean1": {"value": corr.total.T}, "cov": {"value": cov},
            "mean1_parts": parts, "schedule": schedule.to_json()}


def augmented_training(network: Network, group: Group, x_eval, x_train, y, schedule,
                       elements=None, *, form: str = "auto", backend: str = "auto",
                       max_memory_bytes: int | None = None, quadrature: str = "default") -> dict:
    """The MLP ensemble trained on the augmented set: μ, Σ and the 1/n mean coefficient.

    Result as :func:`feyntk.training.ensemble.train` (``mean``, ``mean1`` (N_e, n_L); ``cov``
    (N_e, N_e) of one output neuron), plus ``"augmented": {"points", "terms"}``.
    ``elements``: group element indices to augment with (default all: full augmentation).
    ``quadrature``: ``"fine"`` for the engine's larger Gaussian-integral caps (see
    :func:`.tensors.statistics`).
    """
    check_group(network, group)
    w = network.widths[-1]
    xe, xa = check_inputs(x_eval, network.n0), check_inputs(x_train, network.n0, "train_inputs")
    aug = augment(group, xa, check_targets(y, xa.shape[0], w), elements)
    inputs = InputSet.of(eval=xe, train=aug.inputs)
    check_training_memory(w, inputs.N, len(aug.inputs), max_memory_bytes)
    check_activation(network)
    stats = statistics(network, inputs, NEEDS, network.L, form=form, backend=backend,
                       max_memory_bytes=max_memory_bytes, quadrature=quadrature)
    ws = WeightedStatistics(stats, "train", aug.multiplicity)
    yw = np.sqrt(aug.multiplicity)[:, None] * aug.targets
    E, A = ws.block("eval"), ws.block("train")
    spectrum(ws["Theta"][np.ix_(A, A)], schedule)  # singular / unstable-η refusals
    mean, cov = infinite_ensemble(ws["K"], ws["Theta"], E, A, yw, schedule)
    out = _result(ws, schedule, yw, w, mean, cov)
    out["augmented"] = {"points": len(aug.inputs), "terms": aug.terms}
    return out


def symmetrized_training(network: Network, group: Group, x_eval, x_train, y, schedule, *,
                         form: str = "auto", backend: str = "auto",
                         max_memory_bytes: int | None = None, quadrature: str = "default") -> dict:
    """The symmetrized network f_G trained on (x_train, y): μ, Σ and the 1/n mean coefficient.

    ``mean`` (N_e, n_L) and ``mean1`` (N_e, n_L) as for the MLP; ``cov`` (N_e, N_e) for an
    invariant group (output neurons of f_G independent), (N_e, n_L, N_e, n_L) for an output
    action (they mix).
    """
    check_group(network, group)
    w = network.widths[-1]
    xe, xa = check_inputs(x_eval, network.n0), check_inputs(x_train, network.n0, "train_inputs")
    Y = check_targets(y, xa.shape[0], w)
    cls = orbit_classes(group, xa)
    R = group.output_matrices(w)
    if not group.invariant and any(len(s) > 1 for s in cls.stabilizers):
        raise NotAvailableError(
            "the 1/n mean of f_G with an output action needs training inputs with a trivial "
            "stabilizer (ρ(g)x = x only for g = e): at a fixed point f_G's outputs are confined "
            "to the fixed space of the stabilizer, a projection the step-map code does not take. "
            "Perturb those training inputs, or use an invariant group")
    reps = xa[list(cls.reps)]
    m = np.array([np.sum(cls.member_of == r) for r in range(len(cls.reps))], dtype=float)
    ybar = np.array([np.mean([R[cls.element[b]].T @ Y[b] for b in np.nonzero(cls.member_of == r)[0]],
                             axis=0) for r in range(len(cls.reps))])
    inputs = InputSet.of(eval=xe, train=reps)
    check_training_memory(w, group.order * inputs.N, len(reps), max_memory_bytes)
    check_activation(network)
    stats = symmetrized_statistics(network, group, inputs, NEEDS, network.L, form=form,
                                   backend=backend, max_memory_bytes=max_memory_bytes,
                                   quadrature=quadrature)
    ws = WeightedStatistics(stats, "train", m)
    yw = np.sqrt(m)[:, None] * ybar
    ens = symmetrized_ensemble(network, group, xe, xa, Y, schedule)
    cov = ens.cov[:, 0, :, 0] if group.invariant else ens.cov
    return _result(ws, schedule, yw, w, ens.mean, cov)


def paired_configs(config) -> tuple[dict, dict]:
    """(augmented MLP config, symmetrized config at the |G|-scaled schedule) from a config with a
    ``group`` and a schedule but neither ``augment`` nor ``symmetrize`` (module docstring)."""
    import math
    from collections.abc import Mapping

    from feyntk.symmetry.config import SYMMETRY_KEYS
    from feyntk.training.schedule import parse_schedule

    if not isinstance(config, Mapping):
        raise SpecError(f"config must be a dict/JSON object, got {type(config).__name__}")
    if "group" not in config:
        raise SpecError("comparing the augmented MLP with f_G needs a \"group\": e.g. "
                        "{\"name\": \"rot90\", \"shape\": [h, w]}")
    given = [k for k in SYMMETRY_KEYS[1:] if k in config]
    if given:
        raise SpecError(f"give the config without {given}: both variants are built from it "
                        "(augment: \"full\" at the schedule, symmetrize: true at |G| times it)")
    sched = parse_schedule(config)
    from feyntk.symmetry.groups import parse_group
    widths = config.get("widths")
    if not isinstance(widths, (list, tuple)) or len(widths) < 2:
        raise SpecError("the config needs \"widths\" [n0, ..., n_L]")
    order = parse_group(config["group"], widths[0], widths[-1]).order
    aug = {**config, "augment": "full"}
    sym = {**config, "symmetrize": True}
    if sched.kind == "steps":
        sym["eta"] = float(config["eta"]) * order
    elif not math.isinf(sched.time):
        sym["time"] = float(config["time"]) * order
    return aug, sym


def augmented_minus_symmetrized(config, **options) -> dict:
    """Theory of the difference (module docstring): ``feyntk.train`` of both paired configs.

    Returns ``{"mean": μ_aug − μ_G (zero to rounding), "mean1": mean1_aug − mean1_G,
    "augmented": train result, "symmetrized": train result}`` (arrays (N_e, n_L)).
    """
    from feyntk.symmetry.config import train_symmetric

    aug, sym = paired_configs(config)
    a, g = train_symmetric(aug, **options), train_symmetric(sym, **options)
    return {"mean": a["mean"]["value"] - g["mean"]["value"],
            "mean1": a["mean1"]["value"] - g["mean1"]["value"], "augmented": a,
            "symmetrized": g}


def difference_sweep(config, ns, *, samples: int, seed: int = 0, paired: bool = True,
                     progress: bool = False):
    """Monte Carlo of E[f^aug_T] − E[f^G_T] at hidden widths ``ns`` (a
    :class:`~feyntk.validate.compare.Sweep` of (N_e, n_L) values with standard errors).

    Both kinds are trained by train-sample's code (:func:`feyntk.training.sample.train_sample_network`,
    the variance-reduced estimator g of each). ``paired``: both kinds at width n use seed
    ``seed + n`` (the same initial θ_0 per network index), and the error is that of the
    per-network difference g_aug − g_G (its variance is the sum of the two minus twice their
    covariance, which is positive: its standard error measured 15–31% below the unpaired one for
    tanh C4 on 2 × 2 inputs, n = 16–64); otherwise
    the symmetrized networks use seed ``seed + n + 10⁶`` and the variances add.
    """
    from feyntk.symmetry.config import train_sample_config, train_sample_options
    from feyntk.training.compare import scaled_config
    from feyntk.training.ensemble import parse_training
    from feyntk.training.sample import train_sample_network
    from feyntk.validate.compare import Sweep

    aug, sym = paired_configs(config)
    vals, ses = [], []
    for n in ns:
        est = []
        for k, cfg in enumerate((aug, sym)):
            c = scaled_config(cfg, int(n))
            req, xa, y, schedule = parse_training(train_sample_config(c))
            s = seed + int(n) + (0 if paired or k == 0 else 10 ** 6)
            est.append(train_sample_network(req.network, req.inputs, xa, y, schedule,
                                            samples=samples, seed=s, progress=progress,
                                            keep=True, **train_sample_options(c))["estimates"])
        if paired:
            d = est[0] - est[1]
            vals.append(d.mean(0))
            ses.append(d.std(0, ddof=1) / np.sqrt(samples))
        else:
            vals.append(est[0].mean(0) - est[1].mean(0))
            ses.append(np.sqrt(est[0].var(0, ddof=1) + est[1].var(0, ddof=1)) / np.sqrt(samples))
    return Sweep("mean_aug-mean_G", np.asarray(ns, float), np.array(vals), np.array(ses))
