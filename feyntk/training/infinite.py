"""Trained ensembles at infinite width: mean and NTK-ensemble covariance (MATH.md §7).

At infinite width the NTK is frozen at Θ and the outputs move linearly,
``dz_δ/dt = −Σ_α Θ_{δα}(z_α − y_α)`` (gradient flow; the step map ``ε ← (I − ηΘ_AA) ε`` for
gradient descent, ε = z_A − y). With the decay ``g(Θ_AA)`` of the schedule
(:class:`~feyntk.training.schedule.Schedule`: ``(I − ηΘ_AA)^T`` or ``e^{−Θ_AA t}``) and the
propagator ``P = Θ_δA Θ_AA⁻¹ (I − g(Θ_AA))`` (N_e × N_A),

    z_T(δ) = z_0(δ) − P (z_0(A) − y),       μ(δ) = P y,
    Σ(δ, δ') = K_δδ' + P K_AA Pᵀ − P K_Aδ' − K_δA Pᵀ,

for every output neuron (distinct output neurons are independent at infinite width). Σ is the
covariance over the ensemble of random initialisations propagated through the linear dynamics,
not the Bayesian posterior. Θ_AA⁻¹(I − g) is evaluated in the eigenbasis of Θ_AA as
``(1 − g(λ))/λ``, which is exact at T = ∞ and stable for small λ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feyntk.errors import DegenerateKernelError, SpecError
from feyntk.training.schedule import Schedule

SINGULAR_RTOL = 1e-10
"""Θ_AA with λ_min/λ_max below this is refused as singular (duplicate or collinear inputs)."""


@dataclass(frozen=True)
class TrainingSpectrum:
    """The eigendecomposition ``Θ_AA = V diag(lam) Vᵀ`` of the training-block NTK."""

    lam: np.ndarray
    V: np.ndarray


def spectrum(theta_AA: np.ndarray, schedule: Schedule) -> TrainingSpectrum:
    """Eigendecompose Θ_AA; refuse singular blocks and unstable gradient-descent steps."""
    th = 0.5 * (theta_AA + theta_AA.T)
    if not np.all(np.isfinite(th)):
        raise SpecError("the training NTK Θ_AA is not finite; check the hyperparameters")
    lam, V = np.linalg.eigh(th)
    if lam[-1] <= 0 or lam[0] <= SINGULAR_RTOL * lam[-1]:
        raise DegenerateKernelError(
            f"the NTK on the training inputs, Θ_AA, is singular (eigenvalues "
            f"{[float(f'{v:.4g}') for v in lam]}): duplicate or collinear training inputs "
            "(or a network that cannot separate them) leave the targets without a unique "
            "interpolant. Remove the repeated/collinear training inputs.")
    if schedule.kind == "steps":
        limit = 2.0 / lam[-1]
        if schedule.eta >= limit:
            raise SpecError(
                f"eta = {schedule.eta:g} is at or beyond the stability limit of gradient "
                f"descent, 2/λ_max(Θ_AA) = {limit:.6g} (λ_max = {lam[-1]:.6g}): the training "
                f"residual grows like |1 − ηλ_max|^T. Use eta < {limit:.6g} (eta <= "
                f"{1 / lam[-1]:.4g} = 1/λ_max is the regime the 1/n theory is validated in).")
    return TrainingSpectrum(lam, V)


def propagator(theta: np.ndarray, e: np.ndarray, a: np.ndarray, schedule: Schedule,
               spec: TrainingSpectrum | None = None) -> np.ndarray:
    """``P = Θ_eA Θ_AA⁻¹ (I − g(Θ_AA))``, (len(e), len(a)), for sample index arrays e and a."""
    spec = spectrum(theta[np.ix_(a, a)], schedule) if spec is None else spec
    w = (1.0 - schedule.decay(spec.lam)) / spec.lam
    return theta[np.ix_(e, a)] @ (spec.V * w) @ spec.V.T


def infinite_ensemble(K: np.ndarray, theta: np.ndarray, e: np.ndarray, a: np.ndarray,
                      y: np.ndarray, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-width ensemble mean (len(e), n_L) and one-neuron covariance (len(e), len(e)).

    Args:
        K, theta: (N, N) infinite-width kernels on all inputs.
        e, a: indices of the evaluation and training inputs in K/theta.
        y: (len(a), n_L) targets.
    """
    P = propagator(theta, e, a, schedule)
    mean = P @ y
    Kea, Kaa = K[np.ix_(e, a)], K[np.ix_(a, a)]
    cov = K[np.ix_(e, e)] + P @ Kaa @ P.T - P @ Kea.T - Kea @ P.T
    return mean, 0.5 * (cov + cov.T)
