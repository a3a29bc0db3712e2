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
in ``tests/test_training.py`` checks this). Note the output width n_L multiplies Q: Σ_j δ_jj = n_L.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feyntk.errors import SpecError
from feyntk.numbers.evaluate import evaluate
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
                     form: str = "auto") -> NTKStep:
    """Ensemble-mean NTK change after one full-batch GD step on the MSE loss.

    Args:
        network: the network (statistics at its last layer L).
        eval_inputs: (N_e, n0) points δ where the NTK is watched.
        train_inputs: (N_t, n0) training inputs α.
        targets: (N_t, n_L) targets y_{j;α}.
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
    X = np.concatenate([xe, xt])
    v = evaluate(network, X, NEEDS, form=form)
    n = network.expansion_width(network.L)
    e, t = np.arange(len(xe)), len(xe) + np.arange(len(xt))
    P, Q, R, S, T, U = (v[k] for k in ("P", "Q", "R", "S", "T", "U"))
    Kt = v["K"][np.ix_(t, t)]
    d = np.eye(nL)

    # first order: −(δ_{i1i2}/n) Σ_α [P_{δ1δ2αα} + n_L Q_{δ1δ2αα} + Q_{δ1αδ2α} + (δ1 ↔ δ2)]
    g = P[np.ix_(e, e, t, t)].diagonal(axis1=2, axis2=3).sum(-1) \
        + nL * Q[np.ix_(e, e, t, t)].diagonal(axis1=2, axis2=3).sum(-1) \
        + np.einsum("dafa->df", Q[np.ix_(e, t, e, t)])
    first = -np.einsum("ij,de->ijde", d, g + g.T) / n

    # second order: ½ Σ E[X] (δ_{j1j2} K_{α1α2} + y_{j1α1} y_{j2α2}) over the four ddNTK terms
    M = np.einsum("jk,ab->jakb", d, Kt) + np.einsum("ja,kb->jakb", y.T, y.T)  # [j1,α1,j2,α2]
    R_ = lambda *ix: R[np.ix_(*ix)]
    S_ = lambda *ix: S[np.ix_(*ix)]
    T_ = lambda *ix: T[np.ix_(*ix)]
    U_ = lambda *ix: U[np.ix_(*ix)]

    def ddI(sw: bool) -> np.ndarray:
        """n·E[ddÎ_{i1i2j1j2;δ1δ2α1α2}] (or with i1 ↔ i2, δ1 ↔ δ2 when sw) as [i1,i2,d1,d2,j1,a1,j2,a2]."""
        r1 = R_(e, e, t, t)  # R_{δ1δ2α1α2}
        r2 = R_(e, t, t, e)  # R_{δ1α1α2δ2}
        r3 = R_(e, t, e, t)  # R_{δ1α2δ2α1}
        out = (np.einsum("ij,kl,deab->ijdekalb", d, d, r1)
               + np.einsum("ik,jl,dabe->ijdekalb", d, d, r2)
               + np.einsum("il,jk,dbea->ijdekalb", d, d, r3))
        return out.transpose(1, 0, 3, 2, 4, 5, 6, 7) if sw else out

    def ddII(swap_j: bool) -> np.ndarray:
        s1, t1, u1 = S_(e, e, t, t), T_(e, e, t, t), U_(e, e, t, t)
        out = (np.einsum("ij,kl,deab->ijdekalb", d, d, s1)
               + np.einsum("ik,jl,deab->ijdekalb", d, d, t1)
               + np.einsum("il,jk,deab->ijdekalb", d, d, u1))
        return out.transpose(0, 1, 2, 3, 6, 7, 4, 5) if swap_j else out

    X2 = ddI(False) + ddI(True) + ddII(False) + ddII(True)
    second = 0.5 * np.einsum("ijdekalb,kalb->ijde", X2, M) / n
    return NTKStep(first, second, n)
