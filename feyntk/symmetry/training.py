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
