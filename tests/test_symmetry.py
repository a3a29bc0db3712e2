"""Emergent equivariance (issue 16, MATH.md §7): groups as data, symmetrized-network kernels,
augmented and symmetrized trained ensembles at infinite width and the seeds' theorem."""

import math

import numpy as np
import pytest

from feyntk.errors import GroupError, SpecError
from feyntk.symmetry.groups import MAX_ORDER, parse_group

ROT = [[0.0, -1.0], [1.0, 0.0]]  # 90° rotation of a 2-vector: C4's standard output action
R3 = [[math.cos(2 * math.pi / 3), -math.sin(2 * math.pi / 3)],
      [math.sin(2 * math.pi / 3), math.cos(2 * math.pi / 3)]]  # R3⁴ ≠ I: no image of C4


def _check_group(G, order):
    assert G.order == order
    assert np.array_equal(G.matrices[0], np.eye(G.n0))
    for M in G.matrices:
        assert np.abs(M.T @ M - np.eye(G.n0)).max() < 1e-12
    T = G.table()  # closure: every product is an element, and each row is a permutation
    for row in list(T) + list(T.T):
        assert sorted(row) == list(range(order))
    inv = G.inverses()
    assert np.all(T[np.arange(order), inv] == 0)
    keys = {np.round(M, 8).tobytes() for M in G.matrices}
    assert len(keys) == order  # distinct elements
    if G.output is not None:  # homomorphism
        for g in range(order):
            for h in range(order):
                assert np.abs(G.output[g] @ G.output[h] - G.output[T[g, h]]).max() < 1e-12


@pytest.mark.parametrize("spec,n0,order", [
    ({"name": "rot90", "shape": [3, 3]}, 9, 4),
    ({"name": "rot90", "shape": [2, 2]}, 4, 4),
    ({"name": "dihedral", "shape": [3, 3]}, 9, 8),
    ({"name": "flip", "shape": [2, 3]}, 6, 2),
    ({"name": "translate", "shape": [3, 4]}, 12, 12),
    ({"name": "translate", "shape": [1, 5]}, 5, 5),
    ({"name": "shift"}, 7, 7),
])
def test_named_groups(spec, n0, order):
    _check_group(parse_group(spec, n0), order)


def test_named_actions_are_the_documented_images():
    img = np.arange(9.0).reshape(3, 3)
    G = parse_group({"name": "dihedral", "shape": [3, 3]}, 9)
    r, s = (G.matrices[k] for k in G.generators)
    assert np.array_equal(r @ img.ravel(), np.rot90(img).ravel())
    assert np.array_equal(s @ img.ravel(), np.fliplr(img).ravel())
    T = parse_group({"name": "translate", "shape": [3, 3]}, 9)
    t0, t1 = (T.matrices[k] for k in T.generators)
    assert np.array_equal(t0 @ img.ravel(), np.roll(img, 1, axis=0).ravel())
    assert np.array_equal(t1 @ img.ravel(), np.roll(img, 1, axis=1).ravel())
    S = parse_group({"name": "shift"}, 4)
    assert np.array_equal(S.matrices[S.generators[0]] @ np.arange(4.0), [3.0, 0.0, 1.0, 2.0])


def test_generated_groups_and_output_actions():
    th = 2 * np.pi / 5
    R5 = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    _check_group(parse_group({"generators": [R5]}, 2), 5)
    _check_group(parse_group({"generators": [R5, [[1.0, 0.0], [0.0, -1.0]]]}, 2), 10)
    C4 = parse_group({"name": "rot90", "shape": [2, 2], "output_action": [ROT]}, 4, 2)
    _check_group(C4, 4)
    assert not C4.invariant
    D4 = parse_group({"name": "dihedral", "shape": [2, 2],
                      "output_action": [[[1.0]], [[-1.0]]]}, 4, 1)  # the sign of reflections
    _check_group(D4, 8)
    assert sorted(D4.output.ravel()) == [-1.0] * 4 + [1.0] * 4
    sub = C4.subgroup([2])  # {e, r²} ⊂ C4
    _check_group(sub, 2)
    assert np.allclose(sub.output[1], -np.eye(2))
    assert parse_group({"name": "rot90", "shape": [2, 2]}, 4).invariant


@pytest.mark.parametrize("spec,n0,nL,match", [
    ("rot90", 4, 1, "JSON object"),
    ({"shape": [2, 2]}, 4, 1, "needs \"name\" or \"generators\""),
    ({"name": "rot90", "generators": [np.eye(4).tolist()]}, 4, 1, "not both"),
    ({"name": "rot45", "shape": [2, 2]}, 4, 1, "unknown group name"),
    ({"name": "rot90"}, 4, 1, "needs \"shape\""),
    ({"name": "rot90", "shape": [2, 3]}, 6, 1, "not square"),
    ({"name": "dihedral", "shape": [1, 4]}, 4, 1, "not square"),
    ({"name": "rot90", "shape": [3, 3]}, 4, 1, "h·w = 9"),
    ({"name": "flip", "shape": [2]}, 4, 1, "two positive integers"),
    ({"name": "flip", "shape": [2, 2.0]}, 4, 1, "two positive integers"),
    ({"name": "shift", "shape": [2, 2]}, 4, 1, "takes no shape"),
    ({"name": "flip", "shape": [2, 2], "extra": 1}, 4, 1, "unknown key"),
    ({"generators": []}, 2, 1, "non-empty list"),
    ({"generators": [[[0, 1], [1, 0], [0, 0]]]}, 2, 1, "must be 2 × 2"),
    ({"generators": [[["a", 1], [1, 0]]]}, 2, 1, "not a matrix of numbers"),
    ({"generators": [[[1.0, 0.1], [0.0, 1.0]]]}, 2, 1, "not orthogonal"),
    ({"generators": [[[math.nan, 0.0], [0.0, 1.0]]]}, 2, 1, "NaN"),
    ({"generators": [[[math.cos(1.0), -math.sin(1.0)], [math.sin(1.0), math.cos(1.0)]]]},
     2, 1, f"more than {MAX_ORDER} elements"),
    ({"name": "translate", "shape": [64, 64]}, 4096, 1, "MiB of dense matrices"),
    ({"name": "rot90", "shape": [2, 2], "output_action": [ROT, ROT]}, 4, 2, "one n_L × n_L"),
    ({"name": "rot90", "shape": [2, 2], "output_action": [[[2.0]]]}, 4, 1, "not orthogonal"),
    ({"name": "rot90", "shape": [2, 2], "output_action": [ROT]}, 4, 1, "must be 1 × 1"),
    ({"name": "rot90", "shape": [2, 2], "output_action": [R3]}, 4, 2, "not a homomorphism"),
    ({"name": "dihedral", "shape": [2, 2], "output_action": [ROT, ROT]}, 4, 2,
     "not a homomorphism"),
    ({"name": "rot90", "shape": [2, 2], "output_action": [ROT]}, 4, None, "needs the number"),
])
def test_bad_groups_are_refused(spec, n0, nL, match):
    with pytest.raises(GroupError, match=match) as info:
        parse_group(spec, n0, nL)
    assert isinstance(info.value, SpecError)


# ---------------------------------------------------------------- symmetrized-network kernels

from feyntk.spec.network import Network  # noqa: E402
from feyntk.symmetry.kernels import orbit_kernels, symmetrized_kernels  # noqa: E402

C4_3 = {"name": "rot90", "shape": [3, 3]}


def _net(n0, nL, depth=3, act="tanh"):
    return Network.create([n0] + [16] * (depth - 1) + [nL], act, C_W=[1.3, 1.6, 1.4][:depth],
                          C_b=0.1, lambda_W=1.0, lambda_b=[0.2, 0.1, 0.3][:depth])


def _inputs(N, n0, seed):
    return np.random.default_rng(seed).standard_normal((N, n0))


def _double_sum(orbit, name):
    """|G|⁻² Σ_{g,g'} ρ_out(g)ᵀ ρ_out(g') A(ρ(g)x_a, ρ(g')x_b): no invariance used."""
    R = orbit.group.output_matrices(orbit.nL)
    A = getattr(orbit, name)
    return np.einsum("gahb,gki,hkj->abij", A, R, R) / orbit.group.order ** 2


@pytest.mark.parametrize("spec,n0,nL", [
    (C4_3, 9, 1),
    ({"name": "dihedral", "shape": [3, 3]}, 9, 2),
    ({"name": "rot90", "shape": [2, 2], "output_action": [ROT]}, 4, 2),
    ({"name": "dihedral", "shape": [2, 2], "output_action": [[[1.0]], [[-1.0]]]}, 4, 1),
    ({"name": "translate", "shape": [2, 3]}, 6, 1),
])
def test_symmetrized_kernels_are_the_double_group_sum(spec, n0, nL):
    G = parse_group(spec, n0, nL)
    x = _inputs(3, n0, 1)
    x[2] = G.matrices[1] @ x[0]  # two inputs on one orbit
    orbit = orbit_kernels(_net(n0, nL), G, x)
    sk = symmetrized_kernels(orbit)
    for name in ("K", "Theta"):
        A = getattr(sk, name)
        assert A.shape == (3, 3, nL, nL)
        assert np.abs(A - _double_sum(orbit, name)).max() < 1e-12
        # symmetric as a kernel over (input, output neuron) and equivariant in each argument
        flat = sk.flat(name)
        assert np.abs(flat - flat.T).max() < 1e-14
        assert np.linalg.eigvalsh(flat).min() > -1e-12
        R = G.output_matrices(nL)
        assert np.abs(A[2] - np.einsum("ij,bjk->bik", R[1], A[0])).max() < 1e-12
    if G.invariant:
        th = sk.scalar("Theta")
        assert np.abs(sk.Theta - th[:, :, None, None] * np.eye(nL)).max() == 0
        assert np.abs(th - orbit.Theta[0, :, :, :].mean(axis=1)).max() < 1e-15
    else:
        with pytest.raises(GroupError, match="matrix-valued"):
            sk.scalar("Theta")


def test_symmetrized_ntk_of_a_real_depth_one_network():
    """At depth 1 the NTK is exact at any width: differentiate a real f_G with JAX."""
    import jax
    import jax.numpy as jnp

    G = parse_group({"name": "rot90", "shape": [2, 2], "output_action": [ROT]}, 4, 2)
    lw, lb, n0 = 0.7, 0.3, 4
    net = Network.create([n0, 2], "tanh", C_W=1.0, C_b=0.1, lambda_W=lw, lambda_b=lb)
    x = _inputs(3, n0, 2)
    rho, R = jnp.asarray(G.matrices), jnp.asarray(G.output)

    def fG(params, x1):
        W, b = params
        z = jnp.einsum("ij,gj->gi", W, rho @ x1) + b  # f(ρ(g)x), (|G|, n_L)
        return jnp.einsum("gki,gk->i", R, z) / G.order  # ρ_out(g)⁻¹ = ρ_out(g)ᵀ

    rng = np.random.default_rng(3)
    params = (jnp.asarray(rng.standard_normal((2, n0))), jnp.asarray(rng.standard_normal(2)))
    jac = [jax.jacobian(fG)(params, jnp.asarray(xa)) for xa in x]  # (n_L, *param shape)
    ntk = np.zeros((3, 3, 2, 2))
    for a in range(3):
        for b in range(3):
            ntk[a, b] = (lw / n0) * np.einsum("ikl,jkl->ij", jac[a][0], jac[b][0]) \
                + lb * np.einsum("ik,jk->ij", jac[a][1], jac[b][1])
    sk = symmetrized_kernels(orbit_kernels(net, G, x))
    assert np.abs(sk.Theta - ntk).max() < 1e-13
