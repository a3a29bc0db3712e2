"""Augmented and symmetrized trained ensembles at infinite width; the seeds' theorem (MATH.md §7).

Summed loss ``½ Σ_terms |z(x) − y|²`` and the schedules of :mod:`feyntk.training.schedule`.

*Augmentation* trains the MLP on ``{(ρ(g)x_α, ρ_out(g)y_α) : g ∈ S, α ∈ A}`` (S = G: full
augmentation; a subset or subgroup: partial). *Symmetrized network*: f_G of
:mod:`feyntk.symmetry.kernels` trained on the original (x_α, y_α).

Seeds' theorem. If the ensemble mean μ is equivariant, the augmented flow is
``dμ(δ)/dt = −Σ_{g,α} Θ(δ, ρ(g)x_α)(μ(ρ(g)x_α) − ρ_out(g)y_α)
= −|G| Σ_α Θ_G(δ, x_α)(μ(x_α) − y_α)``,
whose right side is equivariant in δ, so μ stays equivariant from μ = 0 and obeys the symmetrized
network's flow sped up by |G|: ``μ^aug(t) = μ^G(|G| t)``; for gradient descent the same step map
gives ``μ^aug(T steps of η) = μ^G(T steps of |G|η)``. Both hold for every δ and every t. The
covariances differ (the MLP's initial function is not invariant). Gradient descent's stability
limit for the augmented set, 2/λ_max of its Θ_AA, also covers the non-invariant directions (which
the mean never excites), so it can be below the limit 2/(|G| λ_max) of the symmetrized network.

Repeated training terms (Θ_AA singular otherwise), handled exactly for the summed loss:

* augmented set: copies c of one point u (a training input fixed by some g, or two training inputs
  on one orbit) add up to ``½ Σ_c |z(u) − y_c|² = ½ m_u |z(u) − ȳ_u|² + const`` (m_u copies, ȳ_u
  their mean target), so the set is reduced to its distinct points with multiplicities;
* symmetrized network: f_G(ρ(g)x) = ρ_out(g) f_G(x) exactly, so training inputs on one orbit
  merge into one representative x_a (targets transported by ρ_out(g)ᵀ, multiplicity m_a), and
  f_G(x_a) lies in the fixed space ``V_a = range Π_a``, ``Π_a = |Stab(x_a)|⁻¹ Σ_{h∈Stab} ρ_out(h)``,
  so only ``Π_a ȳ_a`` is fitted (the rest of the loss is constant).

Weighted terms enter :func:`~feyntk.training.infinite.infinite_ensemble` exactly by scaling the
training rows and columns of K, Θ and the targets by √m (with ``Θ̃ = √M Θ_AA √M``,
``P = Θ_δA Θ_AA⁻¹(I − g(Θ_AA M))`` equals ``P̃ √M``), and the fixed spaces by their orthonormal
bases Q_a (the null directions of Θ_AA that this removes are annihilated by Θ_δA as well).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from feyntk.errors import GroupError, SpecError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.network import Network, check_inputs
from feyntk.symmetry.groups import Group
from feyntk.symmetry.kernels import check_group, orbit_kernels, symmetrized_kernels
from feyntk.training.ensemble import check_targets
from feyntk.training.infinite import infinite_ensemble
from feyntk.training.schedule import Schedule

POINT_ATOL = 1e-10
"""Two inputs are the same point when they agree to POINT_ATOL·max(1, |x|_∞)."""


def _same(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Boolean over the leading axes of q: q equals the point p to POINT_ATOL."""
    scale = max(1.0, float(np.abs(p).max()))
    return np.abs(q - p).max(axis=-1) <= POINT_ATOL * scale


@dataclass(frozen=True, eq=False)
class AugmentedSet:
    """The distinct points of an augmented training set.

    Attributes:
        inputs: (M, n0) distinct points ρ(g)x_α.
        targets: (M, n_L) the mean target of each point's copies.
        multiplicity: (M,) number of copies (training terms) of each point.
        source: (M, 2) (g, α) of the first copy: ``inputs[u] = ρ(g) x_α``.
        conflict: max |y_c − ȳ_u| over copies (0 unless targets disagree on a repeated point,
            e.g. an equivariant target at a point fixed by some g).
        terms: total number of training terms, |S|·N_A.
    """

    inputs: np.ndarray
    targets: np.ndarray
    multiplicity: np.ndarray
    source: np.ndarray
    conflict: float
    terms: int


def _elements(group: Group, elements) -> np.ndarray:
    if elements is None:
        return np.arange(group.order)
    idx = np.asarray(list(elements), dtype=int).ravel()
    if idx.size == 0 or idx.min() < 0 or idx.max() >= group.order:
        raise GroupError(f"augmentation elements must be indices in 0..{group.order - 1} of "
                         f"the group's elements, got {list(elements)}")
    return idx


def augment(group: Group, x_train, y, elements=None) -> AugmentedSet:
    """``{(ρ(g)x_α, ρ_out(g)y_α) : g ∈ elements, α}`` reduced to distinct points (module docstring).

    Args:
        group: the group.
        x_train: (N_A, n0) training inputs; y: (N_A, n_L) targets.
        elements: indices of the group elements to augment with (default: all of G).
    """
    x = check_inputs(x_train, group.n0)
    Y = np.asarray(y, dtype=float)
    if Y.ndim != 2 or Y.shape[0] != x.shape[0]:
        raise SpecError(f"targets must be an (N_A, n_L) array with N_A = {x.shape[0]} rows, "
                        f"got shape {Y.shape}")
    idx = _elements(group, elements)
    R = group.output_matrices(Y.shape[1])
    P = group.act(x)[idx]  # (S, N_A, n0)
    T = np.einsum("gij,aj->gai", R[idx], Y)
    pts, tg, src, members = [], [], [], []
    for s, g in enumerate(idx):
        for a in range(x.shape[0]):
            hit = np.nonzero(_same(P[s, a], np.asarray(pts)))[0] if pts else ()
            if len(hit):
                members[hit[0]].append(T[s, a])
            else:
                pts.append(P[s, a])
                src.append((int(g), a))
                members.append([T[s, a]])
    tg = np.array([np.mean(m, axis=0) for m in members])
    conflict = max(float(np.abs(np.asarray(m) - t).max()) for m, t in zip(members, tg))
    return AugmentedSet(np.array(pts), tg, np.array([len(m) for m in members]),
                        np.array(src, dtype=int), conflict, len(idx) * x.shape[0])


@dataclass(frozen=True, eq=False)
class TrainedEnsemble:
    """Infinite-width trained ensemble on N_e evaluation inputs.

    Attributes:
        mean: (N_e, n_L) ensemble mean μ.
        cov: (N_e, n_L, N_e, n_L) ensemble covariance of output i at x_δ and output j at x_δ'
            (``Σ ⊗ I`` when output neurons are independent: the MLP, or f_G for invariance).
    """

    mean: np.ndarray
    cov: np.ndarray


def _schedules(schedule) -> tuple[tuple[Schedule, ...], bool]:
    """(schedules, single): one Schedule or a sequence of them (kernels evaluated once)."""
    if isinstance(schedule, Schedule):
        return (schedule,), True
    out = tuple(schedule)
    if not out or not all(isinstance(s, Schedule) for s in out):
        raise SpecError("schedule must be a Schedule or a non-empty sequence of Schedules "
                        "(feyntk.training.schedule.parse_schedule builds one from a config)")
    return out, False


def _weighted(K, T, N_e: int, B: np.ndarray, yb: np.ndarray, schedule: Schedule):
    """infinite_ensemble on eval rows 0..N_e−1 plus reduced training columns B (module docstring).

    K, T: (N_e + N_A', ...) joint kernels whose first N_e rows are the evaluation points;
    B: (N_A', R) the map from reduced training coordinates to training rows (√m Q);
    yb: (R, c) reduced targets Bᵀȳ.
    """
    n = K.shape[0]
    C = np.zeros((n, N_e + B.shape[1]))
    C[:N_e, :N_e] = np.eye(N_e)
    C[N_e:, N_e:] = B
    e, a = np.arange(N_e), np.arange(N_e, N_e + B.shape[1])
    return infinite_ensemble(C.T @ K @ C, C.T @ T @ C, e, a, yb, schedule)


def augmented_ensemble(network: Network, group: Group, x_eval, x_train, y, schedule,
                       elements=None, *, method: str = "auto"):
    """The MLP ensemble trained on the augmented set (module docstring), at infinite width.

    ``schedule``: a Schedule (returns a TrainedEnsemble) or a sequence (returns a tuple, one per
    schedule, from one kernel evaluation). ``elements``: group element indices (default all).
    """
    scheds, single = _schedules(schedule)
    check_group(network, group)
    nL = network.widths[-1]
    xe, xa = check_inputs(x_eval, network.n0), check_inputs(x_train, network.n0)
    aug = augment(group, xa, check_targets(y, xa.shape[0], nL), elements)
    K, T = infinite_kernels(network, np.vstack([xe, aug.inputs]), method=method)
    s = np.sqrt(aug.multiplicity.astype(float))
    out = []
    for sc in scheds:
        mean, cov = _weighted(K, T, len(xe), np.diag(s), s[:, None] * aug.targets, sc)
        out.append(TrainedEnsemble(mean, np.einsum("de,ij->diej", cov, np.eye(nL))))
    return out[0] if single else tuple(out)


@dataclass(frozen=True, eq=False)
class OrbitClasses:
    """Training inputs grouped by orbit.

    Attributes:
        reps: indices of the representatives x_a (first input of each orbit met).
        member_of: (N_A,) the position in ``reps`` of each input's representative.
        element: (N_A,) an element g with ``x_b = ρ(g) x_rep``.
        stabilizers: per representative, the indices h with ``ρ(h)x_a = x_a``.
    """

    reps: tuple[int, ...]
    member_of: np.ndarray
    element: np.ndarray
    stabilizers: tuple[tuple[int, ...], ...]


def orbit_classes(group: Group, x) -> OrbitClasses:
    """Which training inputs share an orbit, and the stabilizer of each representative."""
    x = check_inputs(x, group.n0)
    orbits = group.act(x)  # (|G|, N, n0)
    reps, member_of, element = [], [], []
    for b in range(x.shape[0]):
        for r, a in enumerate(reps):
            hit = np.nonzero(_same(x[b], orbits[:, a]))[0]
            if len(hit):
                member_of.append(r)
                element.append(int(hit[0]))
                break
        else:
            member_of.append(len(reps))
            element.append(0)
            reps.append(b)
    stab = tuple(tuple(int(h) for h in np.nonzero(_same(x[a], orbits[:, a]))[0]) for a in reps)
    return OrbitClasses(tuple(reps), np.array(member_of), np.array(element), stab)


def symmetrized_ensemble(network: Network, group: Group, x_eval, x_train, y, schedule, *,
                         method: str = "auto"):
    """The symmetrized network f_G trained on (x_train, y) without augmentation, infinite width.

    The dynamics run over (input, output neuron) pairs with the matrix-valued Θ_G; repeated
    orbits and fixed spaces are reduced exactly (module docstring). ``schedule`` as in
    :func:`augmented_ensemble`.
    """
    scheds, single = _schedules(schedule)
    check_group(network, group)
    nL = network.widths[-1]
    xe, xa = check_inputs(x_eval, network.n0), check_inputs(x_train, network.n0)
    Y = check_targets(y, xa.shape[0], nL)
    R = group.output_matrices(nL)
    cls = orbit_classes(group, xa)
    sk = symmetrized_kernels(orbit_kernels(network, group, np.vstack([xe, xa[list(cls.reps)]]),
                                           method=method))
    N_e, n_r = len(xe), len(cls.reps)
    cols, targets = [], []
    for r in range(n_r):
        members = np.nonzero(cls.member_of == r)[0]
        ybar = np.mean([R[cls.element[b]].T @ Y[b] for b in members], axis=0)
        proj = R[list(cls.stabilizers[r])].mean(axis=0)
        w, V = np.linalg.eigh(0.5 * (proj + proj.T))
        Q = V[:, w > 0.5]  # orthonormal basis of the fixed space (eigenvalues 0 or 1)
        for k in range(Q.shape[1]):
            col = np.zeros(n_r * nL)
            col[r * nL:(r + 1) * nL] = math.sqrt(len(members)) * Q[:, k]
            cols.append(col)
            targets.append(col[r * nL:(r + 1) * nL] @ ybar)
    if not cols:
        raise SpecError("the symmetrized network's outputs on the training inputs are "
                        "identically zero (every training input is fixed by elements acting "
                        "without fixed vectors on outputs): nothing to fit; use other training "
                        "inputs or another output action")
    Kf, Tf, B, yb = sk.flat("K"), sk.flat("Theta"), np.stack(cols, axis=1), np.array(targets)
    out = []
    for sc in scheds:
        mean, cov = _weighted(Kf, Tf, N_e * nL, B, yb[:, None], sc)
        out.append(TrainedEnsemble(mean.reshape(N_e, nL), cov.reshape(N_e, nL, N_e, nL)))
    return out[0] if single else tuple(out)


def scaled_schedule(schedule: Schedule, factor: float) -> Schedule:
    """The schedule with time (flow) or step size (gradient descent) multiplied by factor."""
    if schedule.kind == "flow":
        return Schedule("flow", time=schedule.time * factor)
    return Schedule("steps", steps=schedule.steps, eta=schedule.eta * factor)


@dataclass(frozen=True, eq=False)
class TheoremCheck:
    """μ^aug at a schedule against μ^G at the |G|-scaled one (module docstring)."""

    schedule: Schedule
    augmented: TrainedEnsemble
    symmetrized: TrainedEnsemble

    @property
    def max_abs_diff(self) -> float:
        return float(np.abs(self.augmented.mean - self.symmetrized.mean).max())


def seeds_theorem(network: Network, group: Group, x_eval, x_train, y, schedule, *,
                  method: str = "auto"):
    """The seeds' theorem as an identity: full augmentation at t vs f_G at |G| t (or |G| η).

    Returns a TheoremCheck (a tuple of them for a sequence of schedules).
    """
    scheds, single = _schedules(schedule)
    aug = augmented_ensemble(network, group, x_eval, x_train, y, scheds, method=method)
    sym = symmetrized_ensemble(network, group, x_eval, x_train, y,
                               [scaled_schedule(s, group.order) for s in scheds], method=method)
    out = tuple(TheoremCheck(s, a, g) for s, a, g in zip(scheds, aug, sym))
    return out[0] if single else out


def orbit_violation(group: Group, orbit_values) -> np.ndarray:
    """(|G|,) ``max_δ |v(ρ(g)x_δ) − ρ_out(g) v(x_δ)|`` for values ``orbit_values[g, δ]`` (n_L)."""
    v = np.asarray(orbit_values, dtype=float)
    R = group.output_matrices(v.shape[-1])
    return np.abs(v - np.einsum("gij,dj->gdi", R, v[0])).max(axis=(1, 2))


def augmentation_violation(network: Network, group: Group, x_eval, x_train, y, schedule,
                           elements=None, *, method: str = "auto"):
    """(|G|,) equivariance violation of the augmented mean under every element of G.

    The mean of the ensemble augmented with ``elements`` (default: all) is evaluated on the
    orbits of x_eval; zero (to rounding) for full augmentation, nonzero in general for a partial
    one except under the elements of the subgroup augmented with. ``schedule`` as in
    :func:`augmented_ensemble` (a tuple of violations for a sequence).
    """
    xe = check_inputs(x_eval, network.n0)
    scheds, single = _schedules(schedule)
    ens = augmented_ensemble(network, group, group.act(xe).reshape(-1, network.n0), x_train, y,
                             scheds, elements, method=method)
    out = tuple(orbit_violation(group, e.mean.reshape(group.order, len(xe), -1)) for e in ens)
    return out[0] if single else out
