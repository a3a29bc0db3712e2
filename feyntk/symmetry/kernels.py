"""Infinite-width K and Θ of the symmetrized network f_G as group averages (MATH.md §7).

The symmetrized network (the seeds' GCNN: full-support lifting layer plus group pooling) is

    f_G(x) = |G|⁻¹ Σ_g ρ_out(g)⁻¹ f(ρ(g) x),

which is equivariant, ``f_G(ρ(h)x) = ρ_out(h) f_G(x)``. At infinite width the MLP's output neurons
are independent with kernels ``K(x, x') δ_kl`` and ``Θ(x, x') δ_kl``, so with ρ_out orthogonal
(``ρ_out(g)⁻ᵀ = ρ_out(g)``)

    Θ_G(x, x')_ij = |G|⁻² Σ_{g,g'} [ρ_out(g)ᵀ ρ_out(g')]_ij Θ(ρ(g)x, ρ(g')x')
                  = |G|⁻¹ Σ_h ρ_out(h)_ij Θ(x, ρ(h)x'),

the second line by the MLP kernels' joint invariance ``Θ(ρ(g)x, ρ(g)x') = Θ(x, x')`` and
h = g⁻¹g' (``ρ_out(g)ᵀρ_out(g') = ρ_out(g⁻¹g')``); K_G likewise. Θ_G is matrix-valued over
output neurons: ``Θ_G(x, x')_ij`` couples output i at x to output j at x' (they are no longer
independent), with ``Θ_G(x', x)_ji = Θ_G(x, x')_ij``. For the trivial output action (invariance)
``Θ_G = θ_G ⊗ I`` with the scalar ``θ_G(x, x') = |G|⁻¹ Σ_h Θ(x, ρ(h)x')``.

Arrays: orbit kernels ``(|G|, N, |G|, N)`` indexed ``[g, a, h, b]`` for ``(ρ(g)x_a, ρ(h)x_b)``;
symmetrized kernels ``(N, N, n_L, n_L)`` indexed ``[a, b, i, j]``; their flattening
``(N·n_L, N·n_L)`` has row ``a·n_L + i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feyntk.errors import GroupError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.network import Network, check_inputs
from feyntk.symmetry.groups import Group


@dataclass(frozen=True, eq=False)
class OrbitKernels:
    """The MLP's infinite-width kernels at layer L on the orbit-stacked inputs.

    Attributes:
        group: the group.
        inputs: (N, n0) the base inputs x_a.
        nL: number of outputs.
        K, Theta: (|G|, N, |G|, N), ``K[g, a, h, b] = K(ρ(g)x_a, ρ(h)x_b)``.
    """

    group: Group
    inputs: np.ndarray
    nL: int
    K: np.ndarray
    Theta: np.ndarray


def check_group(network: Network, group: Group) -> None:
    """Refuse a group whose input or output dimension differs from the network's."""
    if group.n0 != network.n0:
        raise GroupError(f"the group acts on {group.n0} input coordinates, the network has "
                         f"n0 = widths[0] = {network.n0}")
    group.output_matrices(network.widths[-1])


def orbit_kernels(network: Network, group: Group, inputs, *, method: str = "auto") -> OrbitKernels:
    """K and Θ of the MLP on all ρ(g)x_a, from one :func:`infinite_kernels` evaluation."""
    check_group(network, group)
    x = check_inputs(inputs, network.n0)
    G, N = group.order, x.shape[0]
    K, T = infinite_kernels(network, group.act(x).reshape(G * N, network.n0), method=method)
    return OrbitKernels(group, x, network.widths[-1], K.reshape(G, N, G, N),
                        T.reshape(G, N, G, N))


@dataclass(frozen=True, eq=False)
class SymmetrizedKernels:
    """K_G and Θ_G of f_G, each (N, N, n_L, n_L) indexed [a, b, i, j] (module docstring)."""

    K: np.ndarray
    Theta: np.ndarray
    invariant: bool

    def flat(self, name: str) -> np.ndarray:
        """(N·n_L, N·n_L) with row a·n_L + i."""
        A = getattr(self, name)
        N, nL = A.shape[0], A.shape[2]
        return A.transpose(0, 2, 1, 3).reshape(N * nL, N * nL)

    def scalar(self, name: str) -> np.ndarray:
        """(N, N) θ_G of the invariant case (GroupError for an equivariant group)."""
        if not self.invariant:
            raise GroupError("the group acts non-trivially on outputs: Θ_G is matrix-valued "
                             "over output neurons; use .K / .Theta (N, N, n_L, n_L)")
        return getattr(self, name)[:, :, 0, 0]


def group_average(orbit: OrbitKernels, name: str) -> np.ndarray:
    """``A_G[a, b, i, j] = |G|⁻¹ Σ_h ρ_out(h)_ij A(x_a, ρ(h)x_b)``, (N, N, n_L, n_L): one group sum."""
    A = getattr(orbit, name)[0]  # (N, |G|, N): the identity row g = e
    R = orbit.group.output_matrices(orbit.nL)
    return np.einsum("ahb,hij->abij", A, R) / orbit.group.order


def symmetrized_kernels(orbit: OrbitKernels) -> SymmetrizedKernels:
    """K_G and Θ_G of the symmetrized network on the orbit's base inputs."""
    return SymmetrizedKernels(group_average(orbit, "K"), group_average(orbit, "Theta"),
                              orbit.group.invariant)
