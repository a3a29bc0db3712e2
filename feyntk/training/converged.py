"""The O(1/n) ensemble mean of converged training in closed form (route 2, T = ∞ / t = ∞).

An independent route to :mod:`feyntk.training.dynamics`: instead of iterating the step map, the
first-order sources of the function-space dynamics are summed over time in closed form in the
eigenbasis of Θ_AA. Indices are flattened (output neuron, sample): x over all inputs, a, b, c
over the training inputs; ε_τ = U^τ (z₀ − y) at leading order with U = I − ηΘ_AA, i.e.
``ε_τ(a) = Σ_p V_ap u_p^τ ε̂_p`` with E[ε̂_p] = Y_p = −(Vᵀy)_p, Cov(ε̂) = K̂ = VᵀK_AA V and
E[dĤ₀ ε̂_p] = Ĉ(·; p) (the P/Q cumulant, explicit labels).

A first-order source s_τ(x) added to the step map moves the converged output by
``δz_∞ = Π Σ_τ s_τ`` with ``Π(x) = e_x − Θ_xA Θ_AA⁻¹`` (the linear dynamics propagate the
training part away). The sources (MATH.md §2 fields; dd = ddNTK means R, S, T, U) are

    Z1 = (η²/2) Σ_τ dĤ₀ ε_τ ε_τ                    Z2 = −(η³/6) Σ_τ ddÎ ε_τ ε_τ ε_τ
    Z3 = −(η³/2) Σ_{r<τ} 𝔼 ε_r ε_τ ε_τ              Z4 = η² Σ_{s<τ} D₀ ε_s ε_τ
    Z5 = −(η³/2) Σ_{s<τ} 𝔻 ε_s ε_s ε_τ              Z6 = −η³ Σ_{r<s<τ} 𝔼_D ε_r ε_s ε_τ

with D₀(x,a;b) = dĤ₀(x;a,b) + dĤ₀(a;x,b), 𝔼(x;a,b;c) = ddÎ(x;a,b,c) + ddÎÎ(x,a;b,c) + ddÎÎ(x,b;a,c),
𝔼_D(x,a,b,c) = 𝔼(x;a,b;c) + 𝔼(a;x,b;c), 𝔻(x,a;b,c) = ddÎ(x;a,b,c) + ddÎ(a;x,b,c) + 2ddÎÎ(x,a;b,c).
The time sums are geometric series ("algorithm projectors", PDLT ch. ∞):

    η Σ_τ P^τ = η/(1−P),   η² Σ_{s<τ} P_s^s P_τ^τ = η² P_τ/((1−P_τ)(1−P_sP_τ)),
    η³ Σ_{r<s<τ} … = η³ P_τ·P_sP_τ/((1−P_τ)(1−P_sP_τ)(1−P_rP_sP_τ)),

P the product of u_p = 1 − ηλ_p over the legs at that time. Gradient flow keeps Z4 and Z6 with
the integrals 1/Λ_τ(Λ_s+Λ_τ) and 1/Λ_τ(Λ_s+Λ_τ)(Λ_r+Λ_s+Λ_τ) (Λ the sums of λ_p); Z1, Z2, Z3, Z5
carry extra powers of η and vanish. The frozen-NTK part (Θ¹; A, B) is the exact expansion of the
converged interpolant E[Ĥ_xA Ĥ_AA⁻¹] y to first order in Θ¹ and second order in ΔĤ.
"""

from __future__ import annotations

import functools

import numpy as np

from feyntk.training.dynamics import MeanCorrection
from feyntk.training.schedule import Schedule


def flatten_labels(arr: np.ndarray, slots: int) -> np.ndarray:
    """[i0..i_{k-1}, s0..s_{k-1}] → [(i0,s0), ..., (i_{k-1},s_{k-1})] with X = i·N + s."""
    order = [ax for k in range(slots) for ax in (k, slots + k)]
    t = arr.transpose(order)
    return t.reshape([t.shape[2 * k] * t.shape[2 * k + 1] for k in range(slots)])


class _Weights:
    """Time sums over ordered groups of legs, for gradient descent or flow."""

    def __init__(self, schedule: Schedule, lam: np.ndarray):
        self.gd = schedule.kind == "steps"
        self.eta = schedule.eta
        self.u = 1.0 - schedule.eta * lam if self.gd else None
        self.lam = lam

    def _g(self, k):
        grids = np.ix_(*[self.u if self.gd else self.lam] * k)
        return functools.reduce(np.multiply if self.gd else np.add, grids)

    def one(self, k: int) -> np.ndarray:
        """Σ_τ (all k legs at τ), array over the legs' eigen-indices."""
        P = self._g(k)
        return self.eta / (1 - P) if self.gd else 1 / P

    def two(self, ks: int, kt: int) -> np.ndarray:
        """Σ_{s<τ}: first ks legs at s, last kt at τ."""
        Ps, Pt = self._g(ks), self._g(kt)
        Ps = Ps.reshape(Ps.shape + (1,) * kt)
        if self.gd:
            return self.eta**2 * Pt / ((1 - Pt) * (1 - Ps * Pt))
        return 1 / (Pt * (Ps + Pt))

    def three(self) -> np.ndarray:
        """Σ_{r<s<τ}, one leg each, axes (r, s, τ)."""
        Pr, Ps, Pt = np.ix_(*[self.u if self.gd else self.lam] * 3)
        if self.gd:
            return self.eta**3 * Pt * Ps * Pt / ((1 - Pt) * (1 - Ps * Pt) * (1 - Pr * Ps * Pt))
        return 1 / (Pt * (Ps + Pt) * (Pr + Ps + Pt))


def converged_correction(stats, schedule: Schedule, y: np.ndarray,
                         width: int) -> MeanCorrection:
    """Route 2: n (E[z_∞] − μ_∞) at the evaluation points, arrays (n_L, N_e) [i, δ].

    Args: as :func:`feyntk.training.dynamics.mean_correction`, with a converged schedule.
    """
    w, N = width, stats.inputs.N
    A, E = stats.block("train"), stats.block("eval")
    Af = (np.arange(w)[:, None] * N + A[None, :]).ravel()       # flattened training positions
    Ef = (np.arange(w)[:, None] * N + E[None, :]).ravel()
    Th = flatten_labels(stats.mean_ntk(w), 2)
    K = flatten_labels(stats.kernel(w), 2)[np.ix_(Af, Af)]
    yf = np.asarray(y, float).T.ravel()                          # [(j, a)]
    lam, V = np.linalg.eigh(Th[np.ix_(Af, Af)])
    Tinv = (V / lam) @ V.T
    W = _Weights(schedule, lam)
    Y = -(V.T @ yf)
    Kh = V.T @ K @ V
    M3 = (np.einsum("p,q,r->pqr", Y, Y, Y) + np.einsum("pq,r->pqr", Kh, Y)
          + np.einsum("pr,q->pqr", Kh, Y) + np.einsum("qr,p->pqr", Kh, Y))

    def T(arr, *axes):                     # transform the named training axes to the eigenbasis
        for ax in axes:
            arr = np.moveaxis(np.tensordot(arr, V, axes=([ax], [0])), -1, ax)
        return arr

    # -- frozen NTK: Θ¹ (first order) and A, B (second order) of E[Ĥ_xA Ĥ_AA⁻¹] y
    th1 = flatten_labels(stats.cumulant("Theta1", w), 2)
    cov = flatten_labels(stats.cumulant("AB", w), 4)
    g = Tinv @ yf
    c_th1 = th1[np.ix_(Ef, Af)] @ g - Th[np.ix_(Ef, Af)] @ Tinv @ th1[np.ix_(Af, Af)] @ g
    cov_xa_bc = cov[np.ix_(Ef, Af, Af, Af)]
    cov_da_bc = cov[np.ix_(Af, Af, Af, Af)]
    c_ab = (-np.einsum("xabc,ab,c->x", cov_xa_bc, Tinv, g)
            + Th[np.ix_(Ef, Af)] @ Tinv @ np.einsum("dabc,ab,c->d", cov_da_bc, Tinv, g))

    # -- sources, summed over time, at every x (then projected with Π)
    Cz = flatten_labels(stats.cumulant("PQ", w), 4)[..., Af]
    RI = flatten_labels(stats.cumulant("R", w), 4)
    RII = flatten_labels(stats.cumulant("STU", w), 4)
    a_ = Af
    dH_xab = Cz[:, a_][:, :, a_]                                   # [x, a, b, c]
    dH_axb = Cz[a_][:, :, a_].transpose(1, 0, 2, 3)                # dĤ₀(a; x, b) as [x, a, b, c]
    ddI_x = RI[:, a_][:, :, a_][:, :, :, a_]                        # ddÎ(x; a, b, c)
    ddII_x = RII[:, a_][:, :, a_][:, :, :, a_]                      # ddÎÎ(x, a; b, c)
    ddII_xb = ddII_x.transpose(0, 2, 1, 3)                          # ddÎÎ(x, b; a, c) as [x,a,b,c]
    Ex = ddI_x + ddII_x + ddII_xb                                   # 𝔼(x; a, b; c)
    # 𝔼(a; x, b; c) = ddÎ(a; x, b, c) + ddÎÎ(a, x; b, c) + ddÎÎ(a, b; x, c), as [x, a, b, c]
    Ea = (RI[a_][:, :, a_][:, :, :, a_].transpose(1, 0, 2, 3)
          + RII[a_][:, :, a_][:, :, :, a_].transpose(1, 0, 2, 3)
          + RII[a_][:, a_][:, :, :, a_].transpose(2, 0, 1, 3))
    Dd = ddI_x + RI[a_][:, :, a_][:, :, :, a_].transpose(1, 0, 2, 3) + 2 * ddII_x

    S_dntk = np.zeros(Th.shape[0])
    S_dd = np.zeros(Th.shape[0])
    # Z4: ε_τ on a (p), ε_s on b (q)
    CD = T(dH_xab + dH_axb, 1, 2, 3)                                # [x, p, q, r]
    W2 = W.two(1, 1)                                                # [q (s), p (τ)]
    S_dntk += np.einsum("xpqq,qp,p->x", CD, W2, Y) + np.einsum("xpqp,qp,q->x", CD, W2, Y)
    # Z6: ε_τ on a (p), ε_s on b (q), ε_r on c (r)
    S_dd -= np.einsum("xpqr,rqp,pqr->x", T(Ex + Ea, 1, 2, 3), W.three(), M3)
    if W.gd:
        eta = schedule.eta
        C2 = T(dH_xab, 1, 2, 3)
        W1 = W.one(2)
        S_dntk += 0.5 * eta * (np.einsum("xpqp,pq,q->x", C2, W1, Y)
                               + np.einsum("xpqq,pq,p->x", C2, W1, Y))              # Z1
        S_dd -= eta**2 / 6 * np.einsum("xpqr,pqr,pqr->x", T(ddI_x, 1, 2, 3), W.one(3), M3)  # Z2
        S_dd -= 0.5 * eta * np.einsum("xpqr,rpq,pqr->x", T(Ex, 1, 2, 3), W.two(1, 2), M3)   # Z3
        S_dd -= 0.5 * eta * np.einsum("xpqr,qrp,pqr->x", T(Dd, 1, 2, 3), W.two(2, 1), M3)   # Z5

    def project(S):
        return S[Ef] - Th[np.ix_(Ef, Af)] @ Tinv @ S[Af]

    shape = (w, len(E))
    return MeanCorrection(c_th1.reshape(shape), c_ab.reshape(shape),
                          project(S_dntk).reshape(shape), project(S_dd).reshape(shape),
                          (Th[np.ix_(Ef, Af)] @ g).reshape(shape))
