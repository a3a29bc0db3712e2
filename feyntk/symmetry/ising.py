"""The 2-d periodic Ising model: exact enumeration and a vectorised Metropolis sampler.

Data for the Ising demonstration of emergent invariance (issue 16 item 5): spin configurations
s ∈ {−1, +1}^(h×w) on an h × w torus with energy

    E(s) = −J Σ_{⟨ij⟩} s_i s_j = −J Σ_{r,c} s_{r,c} (s_{r+1,c} + s_{r,c+1})   (indices mod h, w),

i.e. every site's bond to its lower and right neighbour (2hw bonds; on a side of length 2 both
bonds of a pair join the same two sites and count twice, as the formula says). The target of the
demonstration, the energy per spin e(s) = E(s)/(hw), is invariant under the lattice translations
and, for h = w, under the dihedral group D4 of the square.

Sampler (:func:`metropolis`): checkerboard Metropolis, many independent chains at once (numpy,
vectorised over chains and sites). A half-sweep proposes flipping every site of one colour
(r + c even, then odd); those sites have no bonds among themselves (h, w even), so the
half-sweep is a product of independent single-site Metropolis updates, each accepting with
probability min(1, exp(−β ΔE)): it satisfies detailed balance with respect to the Boltzmann
distribution π(s) ∝ exp(−β E(s)) (tested by enumeration in tests/test_symmetry_experiments.py),
and a sweep (both colours) leaves π invariant. All randomness comes from one
``numpy.random.Generator`` seeded by ``seed``; the same seed gives the same configurations.
"""

from __future__ import annotations

import itertools

import numpy as np

from feyntk.errors import SpecError


def energy(spins, J: float = 1.0) -> np.ndarray:
    """E(s) of configurations ``spins`` (..., h, w) with entries ±1 (module docstring)."""
    s = np.asarray(spins, dtype=float)
    if s.ndim < 2:
        raise SpecError(f"spins must have shape (..., h, w), got {s.shape}")
    return -J * np.sum(s * (np.roll(s, -1, axis=-2) + np.roll(s, -1, axis=-1)), axis=(-2, -1))


def energy_per_spin(spins, J: float = 1.0) -> np.ndarray:
    """e(s) = E(s)/(h w)."""
    s = np.asarray(spins)
    return energy(s, J) / (s.shape[-1] * s.shape[-2])


def all_configurations(h: int, w: int) -> np.ndarray:
    """(2^(hw), h, w) every configuration of a small lattice (hw ≤ 20)."""
    if h * w > 20:
        raise SpecError(f"enumerating 2^{h * w} configurations is too many (h·w ≤ 20)")
    bits = np.array(list(itertools.product((-1, 1), repeat=h * w)), dtype=np.int8)
    return bits.reshape(-1, h, w)


def boltzmann(configs, beta: float, J: float = 1.0) -> np.ndarray:
    """Normalised Boltzmann weights π(s) ∝ exp(−β E(s)) of the given configurations."""
    E = energy(configs, J)
    logw = -beta * (E - E.min())
    p = np.exp(logw)
    return p / p.sum()


def exact_energy_per_spin(h: int, w: int, beta: float, J: float = 1.0) -> float:
    """⟨E⟩/(hw) under π by enumeration of all 2^(hw) configurations."""
    c = all_configurations(h, w)
    return float(boltzmann(c, beta, J) @ energy_per_spin(c, J))


def _check_lattice(h: int, w: int) -> None:
    if h < 2 or w < 2 or h % 2 or w % 2:
        raise SpecError(f"the checkerboard sampler needs even side lengths >= 2, got {h} x {w}")


def half_sweep(spins: np.ndarray, beta, colour: int, rng: np.random.Generator,
               J: float = 1.0) -> np.ndarray:
    """One Metropolis update of every site of one colour ((r + c) % 2 == colour), in place.

    spins: (chains, h, w) int8 ±1; beta: scalar or (chains,). Returns ``spins``.
    """
    _, h, w = spins.shape
    r, c = np.indices((h, w))
    mask = (r + c) % 2 == colour
    s = spins.astype(np.int64)
    nb = (np.roll(s, 1, -2) + np.roll(s, -1, -2) + np.roll(s, 1, -1) + np.roll(s, -1, -1))
    dE = 2.0 * J * s * nb                                   # energy change of flipping each site
    b = np.asarray(beta, dtype=float).reshape(-1, 1, 1)
    u = rng.random(spins.shape)
    accept = mask & (u < np.exp(-np.maximum(b * dE, 0.0)))
    spins[accept] *= -1
    return spins


def metropolis(h: int, w: int, betas, *, chains: int, sweeps: int, burn_in: int = 0,
               thin: int = 1, seed: int = 0, J: float = 1.0, start: str = "random") -> dict:
    """Configurations of an h × w periodic Ising model at inverse temperatures ``betas``.

    Args:
        betas: one or several β; ``chains`` independent chains run at each.
        sweeps: recorded sweeps (each a black and a white half-sweep) after ``burn_in`` sweeps;
            every ``thin``-th one is kept.
        seed: the seed of the one ``numpy.random.Generator``.
        start: ``"random"`` (infinite temperature) or ``"ordered"`` (all +1).

    Returns:
        ``{"spins": (len(betas), kept, chains, h, w) int8, "beta": (len(betas),),
        "energy_per_spin": (len(betas), kept, chains), "acceptance": (len(betas),), "seed"}``.
    """
    _check_lattice(h, w)
    B = np.atleast_1d(np.asarray(betas, dtype=float))
    if chains < 1 or sweeps < 1 or burn_in < 0 or thin < 1:
        raise SpecError("chains and sweeps must be >= 1, burn_in >= 0, thin >= 1")
    rng = np.random.default_rng(seed)
    nb, n = len(B), chains * len(B)
    beta = np.repeat(B, chains)
    if start == "random":
        s = np.where(rng.random((n, h, w)) < 0.5, -1, 1).astype(np.int8)
    elif start == "ordered":
        s = np.ones((n, h, w), dtype=np.int8)
    else:
        raise SpecError(f"start must be 'random' or 'ordered', got {start!r}")
    kept, flips, proposals = [], np.zeros(n), 0
    for k in range(burn_in + sweeps):
        before = s.copy()
        for colour in (0, 1):
            half_sweep(s, beta, colour, rng, J)
        flips += np.sum(before != s, axis=(1, 2))
        proposals += h * w
        if k >= burn_in and (k - burn_in) % thin == 0:
            kept.append(s.copy())
    out = np.stack(kept).reshape(len(kept), nb, chains, h, w).transpose(1, 0, 2, 3, 4)
    return {"spins": out, "beta": B, "energy_per_spin": energy_per_spin(out, J),
            "acceptance": (flips / proposals).reshape(nb, chains).mean(1), "seed": seed}


def ising_dataset(side: int, betas, per_beta: int, *, seed: int = 0,
                  burn_in: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent configurations and their energy per spin, ``per_beta`` at each β.

    One chain per configuration, run ``burn_in`` sweeps from a random start; its last state is
    the sample. Returns ``(x, y, beta)``: x (N, side²) float ±1 (row-major), y (N, 1) the energy
    per spin, beta (N,), N = len(betas)·per_beta.
    """
    run = metropolis(side, side, betas, chains=per_beta, sweeps=1, burn_in=burn_in, seed=seed)
    s = run["spins"][:, -1]                                  # (len(betas), chains, side, side)
    x = s.reshape(-1, side * side).astype(float)
    y = energy_per_spin(s.reshape(-1, side, side))[:, None]
    beta = np.repeat(run["beta"], per_beta)
    return x, y, beta
