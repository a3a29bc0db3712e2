"""The O(1/n) ensemble mean after training, from the function-space dynamics (route 1).

Conventions (MATH.md §2, §7): loss ``½ Σ_{α∈A} Σ_j ε_{j;α}²`` with ε = z_A − y at the output
layer L, n = n_{L−1}; fields carry explicit output-neuron labels i ∈ 0..n_L−1 and sample labels x
over all inputs (evaluation and training). One gradient-descent step ``Δθ_μ = −η λ_μ Σ ∂_μz ε``,
Taylor-expanded in Δθ, moves the fields exactly by (sums over output neurons j, k, l and training
samples a, b, c)

    Δz_{i;x}         = −η Ĥ_{ij;xa} ε_{ja} + (η²/2) dĤ_{ijk;xab} ε_{ja}ε_{kb}
                       − (η³/6) ddÎ_{ijkl;xabc} ε_{ja}ε_{kb}ε_{lc}
    ΔĤ_{i1i2;x1x2}   = −η (dĤ_{i1i2j;x1x2a} + dĤ_{i2i1j;x2x1a}) ε_{ja}
                       + (η²/2) (ddÎ_{i1i2jk;x1x2ab} + ddÎ_{i2i1jk;x2x1ab} + 2 ddÎÎ_{i1i2jk;x1x2ab}) ε_{ja}ε_{kb}
    ΔdĤ_{i0i1i2;x0x1x2} = −η (ddÎ_{i0i1i2j;x0x1x2a} + ddÎÎ_{i0i1i2j;x0x1x2a} + ddÎÎ_{i0i2i1j;x0x2x1a}) ε_{ja}

up to terms whose ensemble effect is O(1/n²) (fourth derivatives of z; ddNTK changes).
Gradient flow is the η → 0 limit: ``ż = −Ĥ ε``, ``dĤ/dt = −(dĤ + dĤᵀ) ε``, ``d(dĤ)/dt = −(…) ε``,
integrated with classical RK4.

The trained output ``F(z₀, Ĥ₀, dĤ₀, ddÎ, ddÎÎ)`` at the evaluation points is a polynomial map of
the initial fields. Its ensemble mean to O(1/n) is the Taylor expansion around the infinite-width
point (z₀ = 0, Ĥ₀ = δΘ, dĤ₀ = ddNTK = 0), contracted with the order-1/n statistics of layer L
(explicit-label cumulants from :meth:`feyntk.numbers.result.Statistics.cumulant`):

    n (E[z_T] − μ_T) = ∂_Ĥ F·δΘ¹ + ½ ∂²_Ĥ F : Cov_AB + Σ n E[dĤ z₀] ∂_{z₀}∂_{dĤ} F
                       + E_{z₀}[∂_{dd} F · n E[ddNTK]]

(E_{z₀} Gaussian with covariance δK; the last polynomial is cubic in z₀ so its expectation is
exact from its value and Hessian at z₀ = 0). Parity (z → −z under W_L, b_L → −W_L, −b_L) removes
every other term at this order: E[Ĥ z₀] = E[dĤ] = E[dĤ z₀ z₀] = 0, so D, F, V and K¹ do not
enter the mean. The derivatives are exact (JAX forward mode through the iterated step map).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from feyntk.training.schedule import Schedule

RK4_RATE = 0.05
"""Gradient-flow RK4 step h with h·λ_max(Θ_AA) ≤ this (global error of the decay factors ≲ (hλ)^4/120e ≈ 2e-8
on the slowest terms; well below Monte Carlo errors, and checked against the closed form)."""


@dataclass(frozen=True)
class MeanCorrection:
    """n × (E[z_T] − μ_T) at the evaluation points, split by source; arrays (n_L, N_e) [i, δ]."""

    theta1: np.ndarray
    ntk_fluctuations: np.ndarray
    dntk: np.ndarray
    ddntk: np.ndarray
    leading: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.theta1 + self.ntk_fluctuations + self.dntk + self.ddntk


def _jax():
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _fields_step(jnp, A, eta):
    """One gradient-descent step of (z, H, dH) given fixed (ddI, ddII), explicit labels."""

    def step(state, dd, y):
        z, H, dH = state
        ddI, ddII = dd
        eps = z[:, A] - y                                      # [j, a]
        dz = (-eta * jnp.einsum("ijxa,ja->ix", H[:, :, :, A], eps)
              + 0.5 * eta**2 * jnp.einsum("ijkxab,ja,kb->ix", dH[:, :, :, :, A][..., A], eps, eps)
              - eta**3 / 6 * jnp.einsum("ijklxabc,ja,kb,lc->ix",
                                        ddI[:, :, :, :, :, A][..., A, :][..., A], eps, eps, eps))
        dHe = jnp.einsum("ijkxya,ka->ijxy", dH[..., A], eps)
        dIe = jnp.einsum("ijklxyab,ka,lb->ijxy", ddI[..., A, :][..., A], eps, eps)
        dIIe = jnp.einsum("ijklxyab,ka,lb->ijxy", ddII[..., A, :][..., A], eps, eps)
        dH_ = (-eta * (dHe + dHe.transpose(1, 0, 3, 2))
               + 0.5 * eta**2 * (dIe + dIe.transpose(1, 0, 3, 2) + 2 * dIIe))
        E = _ddntk_drive(jnp, ddI, ddII, eps, A)
        return z + dz, H + dH_, dH - eta * E

    return step


def _ddntk_drive(jnp, ddI, ddII, eps, A):
    """Σ_{j,a} (ddÎ_{i0i1i2j;x0x1x2a} + ddÎÎ_{i0i1i2j;x0x1x2a} + ddÎÎ_{i0i2i1j;x0x2x1a}) ε_{ja}."""
    dI = jnp.einsum("ijklxyva,la->ijkxyv", ddI[..., A], eps)
    dII = jnp.einsum("ijklxyva,la->ijkxyv", ddII[..., A], eps)
    return dI + dII + dII.transpose(0, 2, 1, 3, 5, 4)


def _flow_rhs(jnp, A):
    def rhs(state, dd, y):
        z, H, dH = state
        ddI, ddII = dd
        eps = z[:, A] - y
        dz = -jnp.einsum("ijxa,ja->ix", H[:, :, :, A], eps)
        dHe = jnp.einsum("ijkxya,ka->ijxy", dH[..., A], eps)
        return dz, -(dHe + dHe.transpose(1, 0, 3, 2)), -_ddntk_drive(jnp, ddI, ddII, eps, A)

    return rhs


def step_plan(schedule: Schedule, lam_max: float) -> tuple[str, int, float]:
    """(kind, number of iterations, step): T steps of size η, or RK4 steps h to time t."""
    if schedule.kind == "steps":
        return "steps", int(schedule.steps), float(schedule.eta)
    count = max(1, math.ceil(schedule.time * lam_max / RK4_RATE))
    return "flow", count, float(schedule.time / count)


def trained_outputs(kind: str, count: int, A: np.ndarray, E: np.ndarray, y, step):
    """The map F(z₀, Ĥ₀, dĤ₀, ddÎ, ddÎÎ) → z_T[:, E] (a JAX function) for a finite schedule.

    Args:
        kind, count: ``"steps"`` (``count`` gradient-descent steps of size ``step`` = η) or
            ``"flow"`` (``count`` RK4 steps of size ``step`` = h), see :func:`step_plan`.
        A, E: training and evaluation sample positions; y: (n_L, N_A) targets [j, a].
        step: η or h (may be a traced JAX scalar: one compiled map serves every step size).

    ``count`` may be a traced JAX integer too: the iteration is a ``fori_loop``, a scan for a
    Python int (reverse mode available) and a while loop for a traced one (forward mode, as
    :func:`mean_correction` uses), so one compiled map serves every number of steps.
    """
    jax = _jax()
    jnp = jax.numpy
    A_ = jnp.asarray(A)
    yj = jnp.asarray(y)
    if kind == "steps":
        body = _fields_step(jnp, A_, step)
    else:
        h = step
        rhs = _flow_rhs(jnp, A_)

        def body(state, dd, y_):
            add = lambda s, k, c: tuple(a + c * b for a, b in zip(s, k))
            k1 = rhs(state, dd, y_)
            k2 = rhs(add(state, k1, h / 2), dd, y_)
            k3 = rhs(add(state, k2, h / 2), dd, y_)
            k4 = rhs(add(state, k3, h), dd, y_)
            return tuple(s + h / 6 * (a + 2 * b + 2 * c + d)
                         for s, a, b, c, d in zip(state, k1, k2, k3, k4))

    def F(z0, H0, dH0, ddI, ddII):
        final = jax.lax.fori_loop(0, count, lambda _, state: body(state, (ddI, ddII), yj),
                                  (z0, H0, dH0))
        return final[0][:, jnp.asarray(E)]

    return F


def mean_correction(stats, schedule: Schedule, y: np.ndarray, lam_max: float,
                    width: int) -> MeanCorrection:
    """Route 1: n (E[z_T] − μ_T) by exact forward-mode derivatives of the iterated step map.

    Args:
        stats: :class:`~feyntk.numbers.result.Statistics` of layer L with blocks ``eval`` and
            ``train`` holding K, Θ, Θ¹, A, B, P, Q, R, S, T, U.
        schedule: a finite schedule (T < ∞ steps, or flow to t < ∞).
        y: (N_A, n_L) targets; width: n_L.

    The derivatives are one jitted JAX function per (kind, blocks, widths), compiled once per
    process and reused by later calls with other tensors, targets, training inputs, step sizes
    or numbers of steps.
    """
    A, E = stats.block("train"), stats.block("eval")
    N, w = stats.inputs.N, width
    kind, count, step = step_plan(schedule, lam_max)
    run = _corrector(kind, tuple(int(a) for a in A), tuple(int(e) for e in E), N, w)
    H0 = stats.mean_ntk(w)
    th1 = stats.cumulant("Theta1", w)
    # A, B: the rows of Cov(Ĥ_a, Ĥ_b) over the entries F reads, Ĥ[:, :, :, A]
    cov = stats.cumulant("AB", w)                    # [i0,i1,i2,i3,s0,s1,s2,s3]
    idx = np.array(np.meshgrid(np.arange(w), np.arange(w), np.arange(N), A,
                               indexing="ij")).reshape(4, -1).T
    rows = cov[idx[:, 0], idx[:, 1], :, :, idx[:, 2], idx[:, 3]]   # [m, i2, i3, s2, s3]
    # P, Q: n E[dĤ_q z₀_c] over training z₀
    pq = stats.cumulant("PQ", w)                     # [i0,i1,i2,i3,s0,s1,s2,g0]
    zi = np.array(np.meshgrid(np.arange(w), A, indexing="ij")).reshape(2, -1).T
    dirs = np.moveaxis(pq, (3, 7), (0, 1))[zi[:, 0], zi[:, 1]]    # [c, i0,i1,i2,s0,s1,s2]
    # R, S, T, U and the z₀ covariance rows
    rI, rII = stats.cumulant("R", w), stats.cumulant("STU", w)
    Kbar = stats.kernel(w)                             # [i, j, a, b]
    krows = Kbar[zi[:, 0], :, zi[:, 1], :]            # [c, j, b]
    out = run(count, step, y.T, H0, th1, idx, rows, zi, dirs, rI, rII, krows)
    c_th1, c_ab, c_pq, c_dd, leading = (np.asarray(v) for v in out)
    return MeanCorrection(c_th1, c_ab, c_pq, c_dd, leading)


@functools.lru_cache(maxsize=16)
def _corrector(kind: str, A: tuple, E: tuple, N: int, w: int):
    """The jitted map (number of iterations, step, targets, Θ, statistics) → the five parts of
    :class:`MeanCorrection` (the number of iterations traced: no recompilation per T)."""
    jax = _jax()
    jnp = jax.numpy
    A_, E_ = np.asarray(A), np.asarray(E)

    def run(count, step, yT, H0, th1, idx, rows, zi, dirs, rI, rII, krows):
        F = trained_outputs(kind, count, A_, E_, yT, step)
        z0 = jnp.zeros((w, N))
        dH0 = jnp.zeros((w,) * 3 + (N,) * 3)
        dd0 = jnp.zeros((w,) * 4 + (N,) * 4)
        leading = F(z0, H0, dH0, dd0, dd0)

        # Θ¹: first derivative along δΘ¹
        c_th1 = jax.jvp(lambda H: F(z0, H, dH0, dd0, dd0), (H0,), (th1,))[1]

        # A, B: ½ Σ Cov(Ĥ_a, Ĥ_b) ∂_a ∂_b F
        def second_H(m_dir, row):
            basis = jnp.zeros((w, w, N, N)).at[tuple(m_dir)].set(1.0)
            inner = lambda H: jax.jvp(lambda H_: F(z0, H_, dH0, dd0, dd0), (H,), (row,))[1]
            return jax.jvp(inner, (H0,), (basis,))[1]

        c_ab = 0.5 * jax.vmap(second_H)(idx, rows).sum(0)

        # P, Q: Σ n E[dĤ_q z₀_c] ∂_{z₀_c} ∂_{dĤ_q} F
        def mixed(c, d):
            basis = jnp.zeros((w, N)).at[tuple(c)].set(1.0)
            inner = lambda z: jax.jvp(lambda D: F(z, H0, D, dd0, dd0), (dH0,), (d,))[1]
            return jax.jvp(inner, (z0,), (basis,))[1]

        c_pq = jax.vmap(mixed)(zi, dirs).sum(0)

        # R, S, T, U: E_{z₀}[p(z₀)] = p(0) + ½ Σ K_cd ∂_c∂_d p, p = ∂_dd F · n E[ddNTK]
        p = lambda z: jax.jvp(lambda a, b: F(z, H0, dH0, a, b), (dd0, dd0), (rI, rII))[1]

        def curv(c, krow):
            basis = jnp.zeros((w, N)).at[tuple(c)].set(1.0)
            return jax.jvp(lambda z: jax.jvp(p, (z,), (krow,))[1], (z0,), (basis,))[1]

        c_dd = p(z0) + 0.5 * jax.vmap(curv)(zi, krows).sum(0)
        return c_th1, c_ab, c_pq, c_dd, leading

    return jax.jit(run)
