"""The ensemble-mean change of the NTK under one full-batch gradient-descent step (PDLT ch. 11).

Loss ``L = ½ Σ_{α∈train} Σ_j (z_{j;α} − y_{j;α})²`` at the output layer; one step
``θ_μ → θ_μ − η λ_μ ∂_μ L`` from initialisation. Writing ε = z − y, Taylor expansion of Ĥ in the
step gives exactly (MATH.md §2 definitions; sums over output neurons j and training samples α)

    ΔĤ_{i1i2;δ1δ2} = −η Σ ε_{j;α} (dĤ_{i1i2j;δ1δ2α} + dĤ_{i2i1j;δ2δ1α})
                     + ½η² Σ ε_{j1;α1} ε_{j2;α2} (ddÎ_{i1i2j1j2;δ1δ2α1α2} + ddÎ_{i2i1j1j2;δ2δ1α1α2}
                                                  + ddÎÎ_{i1i2j1j2;δ1δ2α1α2} + ddÎÎ_{i1i2j2j1;δ1δ2α2α1})
                     + O(η³).

Its mean at order 1/n (n = n_{L-1}) follows from the dNTK and ddNTK tensors: E[dĤ ε] = E[dĤ z]
gives P and Q; for the η² part the ddNTK means are used with E[ε ε] = δ K + y y, i.e. the joint
cumulants of ddNTKs with two preactivations are taken to be of higher order (the Monte Carlo test
in ``tests/test_training.py`` checks this). The neuron structure (which δ's multiply P, Q, R, S,
T, U; e.g. n_L multiplying Q through Σ_j δ_jj) is not written here: the expectations come with
explicit output labels from :meth:`feyntk.numbers.result.Statistics.cumulant`, which sums the
δ-terms declared in :data:`feyntk.diagrams.vertices.INSERTIONS`, and this module only contracts
them with ε over j and α.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feyntk.errors import SpecError
from feyntk.numbers.result import InputSet, evaluate_statistics
from feyntk.spec.network import Network, check_inputs

NEEDS = ("K", "P", "Q", "R", "S", "T", "U")


@dataclass(frozen=True)
class NTKStep:
    """Predicted E[Ĥ(after one step) − Ĥ(init)] = η·first + η²·second + O(η³, 1/n²).

    Attributes:
        first, second: arrays (n_L, n_L, N_eval, N_eval) indexed [i1, i2, δ1, δ2].
        n: the expansion width n_{L-1}; ``first·n`` and ``second·n`` are width-independent.
    """

    first: np.ndarray
    second: np.ndarray
    n: int

    def change(self, eta: float) -> np.ndarray:
        return eta * self.first + eta**2 * self.second


def predict_ntk_step(network: Network, eval_inputs, train_inputs, targets, *,
                     form: str = "auto", backend: str = "auto") -> NTKStep:
    """Ensemble-mean NTK change after one full-batch GD step on the MSE loss.

    Args:
        network: the network (statistics at its last layer L).
        eval_inputs: (N_e, n0) points δ where the NTK is watched.
        train_inputs: (N_t, n0) training inputs α.
        targets: (N_t, n_L) targets y_{j;α}.
        form: how Gaussian expectations are evaluated (see :func:`feyntk.kernels.evaluate`).
        backend: ``"auto"`` (the fastest available), ``"numba"``, ``"jax"`` or ``"numpy"``.
    """
    xe = check_inputs(eval_inputs, network.n0)
    xt = check_inputs(train_inputs, network.n0)
    nL = network.widths[-1]
    y = np.asarray(targets, dtype=float)
    if y.ndim == 1 and nL == 1:
        y = y[:, None]
    if y.shape != (xt.shape[0], nL) or not np.all(np.isfinite(y)):
        raise SpecError(f"targets must be a finite array of shape (N_train, n_L) = "
                        f"({xt.shape[0]}, {nL}); got {y.shape}")
    if network.L < 2:
        zero = np.zeros((nL, nL, len(xe), len(xe)))
        return NTKStep(zero, zero.copy(), network.expansion_width(network.L))
    stats = evaluate_statistics(network, InputSet.of(eval=xe, train=xt), NEEDS, form=form,
                                backend=backend)
    n = stats.n
    on = ("eval", "eval", "train", "train")  # δ1 δ2 on the watched points, α's on training ones

    # first order: −Σ_{j,α} (E[dĤ_{i1i2j;δ1δ2α} z_{j;α}] + E[dĤ_{i2i1j;δ2δ1α} z_{j;α}])
    dHz = stats.cumulant("PQ", nL, on)                  # n·E[dĤ z]: [i1,i2,j,j',δ1,δ2,α,α']
    g = np.einsum("ijkkdeaa->ijde", dHz)
    first = -(g + g.transpose(1, 0, 3, 2)) / n

    # second order: ½ Σ E[ε_{j1;α1} ε_{j2;α2}] × (the four ddNTK terms of the docstring), with
    # E[ε ε] = δ_{j1j2} K_{α1α2} + y_{j1;α1} y_{j2;α2}
    t = stats.block("train")
    eps2 = stats.kernel(nL)[:, :, t][:, :, :, t] + np.einsum("ak,bl->klab", y, y)  # [j1,j2,α1,α2]
    ddI = stats.cumulant("R", nL, on)                   # n·E[ddÎ]: [i1,i2,j1,j2,δ1,δ2,α1,α2]
    ddII = stats.cumulant("STU", nL, on)                # n·E[ddÎÎ], same axes
    second = 0.5 * (np.einsum("ijkldeab,klab->ijde", ddI, eps2)
                    + np.einsum("jikledab,klab->ijde", ddI, eps2)
                    + np.einsum("ijkldeab,klab->ijde", ddII, eps2)
                    + np.einsum("ijlkdeba,klab->ijde", ddII, eps2)) / n
    return NTKStep(first, second, n)
