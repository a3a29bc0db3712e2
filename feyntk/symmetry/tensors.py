"""The fifteen order-1/n tensors of the symmetrized network f_G by orbit averaging (MATH.md §7).

``f_G(x) = |G|⁻¹ Σ_g ρ_out(g)⁻¹ f(ρ(g)x)`` is linear in the MLP's outputs on the orbit of x, and
so are its parameter derivatives; every field of MATH.md §2 of f_G (z, Ĥ, dĤ, ddÎ, ddÎÎ) is
therefore the orbit average of the MLP's field in *each* sample slot, and by multilinearity every
correlator, cumulant and order-1/n tensor of f_G is the orbit average of the MLP's.

**Invariance** (trivial ρ_out). Output neuron i of f_G only involves neuron i of f, so the neuron
δ-structure of MATH.md §3 is untouched and each tensor of rank k is

    T_G(x_{a1}, …, x_{ak}) = |G|⁻ᵏ Σ_{g1..gk} T(ρ(g1)x_{a1}, …, ρ(gk)x_{ak})
                           = |G|⁻⁽ᵏ⁻¹⁾ Σ_{h2..hk} T(x_{a1}, ρ(h2)x_{a2}, …, ρ(hk)x_{ak}),

the second line by the joint invariance of every MLP tensor, ``T(ρ(g)y1, …, ρ(g)yk) =
T(y1, …, yk)`` (the first layer's weight distribution is invariant under orthogonal ρ), with
h_m = g1⁻¹g_m. The result is a plain :class:`~feyntk.numbers.result.Statistics` on the base
inputs, so everything built on Statistics (the trained-ensemble 1/n mean of
:mod:`feyntk.training`) applies to f_G unchanged.

**Equivariance** (ρ_out non-trivial). Output neurons mix, ``f_G,i = |G|⁻¹ Σ_g ρ_out(g)ᵀ_{ij}
f_j(ρ(g)·)``, and the cumulants lose the δ-structure; with explicit output labels (the arrays of
:meth:`Statistics.cumulant`: neuron slots in leg order, then samples in the same order)

    C_G[i1..ik; a1..ak] = |G|⁻⁽ᵏ⁻¹⁾ Σ_{h2..hk} Π_{m≥2} ρ_out(h_m)ᵀ_{i_m l_m} C[i1, l2..lk; x_{a1}, ρ(h2)x_{a2}, …],

the first slot's sum removed as before: the δ-products of C are invariant under ρ_out(g)^{⊗k}
for orthogonal ρ_out. :class:`EquivariantStatistics` offers the same ``cumulant``, ``kernel``,
``mean_ntk`` and ``block`` as Statistics with these dense arrays (e.g. ``kernel(n_L)[i, j, a, b]
= |G|⁻¹ Σ_h ρ_out(h)_ij K(x_a, ρ(h)x_b)``, the matrix-valued K_G of :mod:`.kernels`), which is what
the trained-ensemble code reads.

The MLP tensors are evaluated once on the orbit stack ``{ρ(g)x_a}`` (|G|·N inputs, one input
block ``g<k>`` per element, element-major); keep |G|·N small (the infinite-width kernels and the
rank-4 tensors grow like (|G|N)⁴).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from feyntk.errors import SpecError
from feyntk.numbers.result import VERTICES, InputSet, Statistics, evaluate_statistics, _leg_refs
from feyntk.spec.statistic import get_statistic
from feyntk.symmetry.groups import Group
from feyntk.symmetry.kernels import check_group

FIFTEEN = ("K", "K1", "V", "Theta", "Theta1", "A", "B", "D", "F", "P", "Q", "R", "S", "T", "U")


def orbit_inputs(group: Group, inputs: InputSet) -> InputSet:
    """The orbit stack ``ρ(g)x_a`` of all base inputs, one block ``g<k>`` per element (in order)."""
    orbit = group.act(inputs.inputs)  # (|G|, N, n0)
    return InputSet.of(**{f"g{k}": orbit[k] for k in range(group.order)})


def statistics(network, inputs: InputSet, names, layer: int | None = None, *,
               quadrature: str = "default", **options) -> Statistics:
    """:func:`~feyntk.numbers.result.evaluate_statistics`, or with ``quadrature="fine"`` the
    engine's larger caps for 3- and 4-sample Gaussian integrals (``predict``'s option).

    The exact symmetry identities of this stage (joint invariance, equivariance of trained
    means) hold to the accuracy of those integrals, ~1e-7 relative at the default caps, which
    Θ_AA⁻¹ amplifies at T = ∞; ``"fine"`` gains about four digits (measured).
    """
    if quadrature == "default":
        return evaluate_statistics(network, inputs, names, layer, **options)
    if quadrature != "fine":
        raise SpecError(f"quadrature must be 'default' or 'fine', got {quadrature!r}")
    from feyntk.kernels.engine import evaluate

    layer = network.L if layer is None else network.check_layer(layer)
    values = evaluate(network, inputs.inputs, tuple(names), layer, fine=True, **options)
    return Statistics(inputs, layer, network.expansion_width(layer),
                      {k: np.array(values[k], dtype=float) for k in names})


def orbit_statistics(network, group: Group, inputs: InputSet, names, layer: int | None = None,
                     **options) -> Statistics:
    """The MLP's statistics ``names`` on the orbit stack of ``inputs`` (one evaluation)."""
    check_group(network, group)
    return statistics(network, orbit_inputs(group, inputs), tuple(names), layer, **options)


def _orbit_axes(orbit: Statistics, group: Group, array: np.ndarray, first: int) -> np.ndarray:
    """Split each of the trailing sample axes (from ``first`` on) of length |G|·N into (g, a)."""
    G = group.order
    N = len(orbit.block("g0"))
    for k in range(group.order):  # the blocks are the element-major orbit stack
        if not np.array_equal(orbit.block(f"g{k}"), np.arange(k * N, (k + 1) * N)):
            raise SpecError("orbit statistics must be evaluated on orbit_inputs(group, inputs)")
    lead = array.shape[:first]
    return array.reshape(lead + (G, N) * (array.ndim - first))


def average_tensor(orbit: Statistics, group: Group, name: str) -> np.ndarray:
    """``T_G[a1..ak] = |G|⁻⁽ᵏ⁻¹⁾ Σ_{h2..hk} T(x_{a1}, ρ(h2)x_{a2}, …)`` (invariant case).

    Slot 1 is read on the identity block ``g0`` only: the joint invariance removes its sum.
    """
    T = _orbit_axes(orbit, group, orbit[name], 0)       # (G, N) * k
    k = T.ndim // 2
    T = T[0]                                             # slot 1 at the identity
    return T.mean(axis=tuple(1 + 2 * m for m in range(k - 1)))  # the h_m axes


def symmetrized_statistics(network, group: Group, inputs: InputSet, names=FIFTEEN,
                           layer: int | None = None, *, dense: bool = False, **options):
    """The tensors ``names`` of f_G at ``layer`` (default L) on the base ``inputs``.

    Returns a :class:`Statistics` (tensors in MATH.md's index order, order-1/n ones as
    coefficients of 1/n with n = n_{layer−1}) for a group acting trivially on outputs, else (or
    with ``dense=True``) an :class:`EquivariantStatistics` over explicit output labels.
    ``options`` go to :func:`statistics` (quadrature, form, backend, max_memory_bytes). An output action needs ``layer`` = L (it acts on the network outputs).
    """
    names = tuple(names)
    for name in names:
        get_statistic(name)
    orbit = orbit_statistics(network, group, inputs, names, layer, **options)
    if group.invariant and not dense:
        return Statistics(inputs, orbit.layer, orbit.n,
                          {k: average_tensor(orbit, group, k) for k in names})
    if orbit.layer != network.L and not group.invariant:
        raise SpecError(f"the output action acts on layer L = {network.L}; f_G's statistics at "
                        f"layer {orbit.layer} need an invariant group (no output_action)")
    return EquivariantStatistics(inputs, orbit.layer, orbit.n, group, orbit)


@dataclass(frozen=True, eq=False)
class EquivariantStatistics:
    """Statistics of f_G with a non-trivial output action, over explicit output labels.

    Attributes:
        inputs: the base inputs (blocks as given).
        layer, n: as in Statistics.
        group: the group (its output action acts on the ``width`` = n_L output labels).
        orbit: the MLP's Statistics on the orbit stack.
    """

    inputs: InputSet
    layer: int
    n: int
    group: Group
    orbit: Statistics

    def block(self, name: str) -> np.ndarray:
        return self.inputs.index(name)

    def __getitem__(self, name: str):
        raise SpecError(f"f_G with an output action has no δ-structured tensor {name!r}: its "
                        "output neurons mix; use .cumulant(vertex, n_L), .kernel(n_L) or "
                        ".mean_ntk(n_L) (explicit output labels)")

    def _transform(self, C: np.ndarray, k: int, width: int) -> np.ndarray:
        """C[i1..ik, (g,a)1..k] → |G|⁻⁽ᵏ⁻¹⁾ Σ_h Π_{m≥2} ρ_out(h_m)ᵀ C[…, (e,a1), (h_m,a_m)…]."""
        R = self.group.output_matrices(width)
        C = _orbit_axes(self.orbit, self.group, C, k)    # [i1..ik, g1, a1, ..., gk, ak]
        C = C[(slice(None),) * k + (0,)]                   # slot 1 at the identity
        letters = iter(string.ascii_letters)
        i = [next(letters) for _ in range(k)]
        l = [next(letters) for _ in range(k)]
        h = [next(letters) for _ in range(k)]
        a = [next(letters) for _ in range(k)]
        src = "".join([i[0]] + l[1:]) + a[0] + "".join(h[m] + a[m] for m in range(1, k))
        ops = [C] + [R] * (k - 1)
        subs = [src] + [f"{h[m]}{l[m]}{i[m]}" for m in range(1, k)]  # ρ(h)ᵀ_{il} = ρ(h)_{li}
        out = np.einsum(",".join(subs) + "->" + "".join(i) + "".join(a), *ops, optimize=True)
        return out / self.group.order ** (k - 1)

    def _restrict(self, out: np.ndarray, k: int, on) -> np.ndarray:
        if on is None:
            return out
        if len(on) != k:
            raise SpecError(f"{k} sample axes; got {len(on)} input blocks {tuple(on)}")
        return out[(slice(None),) * k + np.ix_(*(self.block(b) for b in on))]

    def cumulant(self, vertex: str, width: int, on=None) -> np.ndarray:
        """n × the connected cumulant of a vertex of f_G, explicit labels (Statistics.cumulant)."""
        if vertex not in VERTICES:
            raise SpecError(f"unknown vertex {vertex!r}; known: {list(VERTICES)}")
        k = len(_leg_refs(VERTICES[vertex])[0])
        C = self.orbit.cumulant(vertex, width)
        return self._restrict(self._transform(C, k, width), k, on)

    def kernel(self, width: int, name: str = "K") -> np.ndarray:
        """``E[f_G,i(x_a) f_G,j(x_b)]`` at O(1) (or Θ for name="Theta") as [i, j, a, b]."""
        return self._transform(self.orbit.kernel(width, name), 2, width)

    def mean_ntk(self, width: int) -> np.ndarray:
        return self.kernel(width, "Theta")
