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


# ---------------------------------------------------------------- trained ensembles, seeds' theorem

from scipy.linalg import expm  # noqa: E402

from feyntk.numbers.infinite import infinite_kernels  # noqa: E402
from feyntk.symmetry.augment import (  # noqa: E402
    augment, augmentation_violation, augmented_ensemble, orbit_violation, seeds_theorem,
    symmetrized_ensemble)
from feyntk.training.schedule import Schedule  # noqa: E402

C4_EQ = {"name": "rot90", "shape": [2, 2], "output_action": [ROT]}
D4_EQ = {"name": "dihedral", "shape": [2, 2],  # the standard 2-d representation of D4
         "output_action": [ROT, [[-1.0, 0.0], [0.0, 1.0]]]}
FLOWS = [Schedule("flow", time=0.3), Schedule("flow", time=3.0), Schedule("flow", time=math.inf)]
GDS = [Schedule("steps", steps=6, eta=0.04), Schedule("steps", steps=None, eta=0.04)]


def _problem(spec, n0, nL, N_e=2, seed=0):
    """Training set with an input fixed by the whole group and a pair on one orbit."""
    G = parse_group(spec, n0, nL)
    rng = np.random.default_rng(seed)
    xa = rng.standard_normal((3, n0))
    xa[1] = 0.8 * np.ones(n0)  # fixed by every element
    xa[2] = G.matrices[1] @ xa[0]
    return G, _net(n0, nL), rng.standard_normal((N_e, n0)), xa, rng.standard_normal((3, nL))


def _oracle_mean(theta_eA, theta_AA, y, schedule):
    """Unreduced linear dynamics (Θ_AA may be singular): expm (flow) or the iterated step."""
    n = theta_AA.shape[0]
    if schedule.kind == "flow" and math.isfinite(schedule.time):
        big = np.block([[-theta_AA, np.eye(n)], [np.zeros((n, 2 * n))]]) * schedule.time
        integral = expm(big)[:n, n:]  # ∫_0^t e^{−Θ s} ds
        return theta_eA @ integral @ y
    mu_A, mu_e = np.zeros_like(y), np.zeros((theta_eA.shape[0], y.shape[1]))
    for _ in range(schedule.steps):
        mu_e, mu_A = mu_e - schedule.eta * theta_eA @ (mu_A - y), \
            mu_A - schedule.eta * theta_AA @ (mu_A - y)
    return mu_e


def test_augmented_set_counts_repeated_points():
    G, net, xe, xa, y = _problem(C4_EQ, 4, 2)
    aug = augment(G, xa, y)
    assert aug.terms == 12 and aug.multiplicity.sum() == 12
    assert sorted(aug.multiplicity) == [2, 2, 2, 2, 4]  # orbit of x0 (= orbit of x2), fixed x1
    fixed = int(np.argmax(aug.multiplicity))
    assert np.abs(aug.targets[fixed]).max() < 1e-15  # Σ_k R^k y = 0 for the 90° rotation
    assert aug.conflict > 0.1
    for u, (g, a) in enumerate(aug.source):
        assert np.allclose(aug.inputs[u], G.matrices[g] @ xa[a])
    inv = augment(parse_group(C4_3, 9), _inputs(2, 9, 0), [[1.0], [2.0]])
    assert inv.conflict == 0 and inv.terms == 8 and len(inv.inputs) == 8
    with pytest.raises(GroupError, match="indices"):
        augment(G, xa, y, elements=[0, 4])
    with pytest.raises(SpecError, match="targets"):
        augment(G, xa, y[:2])


@pytest.mark.parametrize("schedule", [Schedule("flow", time=0.7), Schedule("steps", steps=4,
                                                                             eta=0.05)])
def test_repeated_points_reduce_exactly(schedule):
    """The multiplicity / fixed-space reductions against the unreduced (singular) dynamics."""
    G, net, xe, xa, y = _problem(C4_EQ, 4, 2)
    nL = 2
    # augmented MLP: every one of the 12 terms, duplicates included
    pts = G.act(xa).reshape(-1, 4)
    tgt = np.einsum("gij,aj->gai", G.output, y).reshape(-1, nL)
    K, T = infinite_kernels(net, np.vstack([xe, pts]))
    e, a = slice(0, 2), slice(2, None)
    ens = augmented_ensemble(net, G, xe, xa, y, schedule)
    assert np.abs(ens.mean - _oracle_mean(T[e, a], T[a, a], tgt, schedule)).max() < 1e-10
    # symmetrized network: flattened Θ_G over all (x_α, i), singular (x2 ~ x0, x1 fixed)
    sk = symmetrized_kernels(orbit_kernels(net, G, np.vstack([xe, xa])))
    Tf = sk.flat("Theta")
    e, a = slice(0, 2 * nL), slice(2 * nL, None)
    assert np.linalg.eigvalsh(Tf[a, a])[:3].max() < 1e-12  # three null directions
    sym = symmetrized_ensemble(net, G, xe, xa, y, schedule)
    ref = _oracle_mean(Tf[e, a], Tf[a, a], y.reshape(-1, 1), schedule).reshape(2, nL)
    assert np.abs(sym.mean - ref).max() < 1e-10


@pytest.mark.parametrize("spec,n0,nL", [(C4_3, 9, 1), (C4_EQ, 4, 2), (D4_EQ, 4, 2)])
def test_seeds_theorem(spec, n0, nL):
    """μ^aug(t) = μ^G(|G| t) (flow) and μ^aug(T, η) = μ^G(T, |G| η) (gradient descent)."""
    G, net, xe, xa, y = _problem(spec, n0, nL, N_e=1 if G_ORDER[spec["name"]] > 4 else 2)
    checks = seeds_theorem(net, G, xe, xa, y, FLOWS + GDS)
    for c in checks:
        assert c.max_abs_diff < 1e-10, (c.schedule, c.max_abs_diff)
        assert np.abs(c.augmented.mean).max() > 1e-3
    # the covariances are not equal: the MLP's initial function is not invariant
    assert np.abs(checks[0].augmented.cov - checks[0].symmetrized.cov).max() > 1e-3


G_ORDER = {"rot90": 4, "dihedral": 8}


@pytest.mark.parametrize("spec,n0,nL", [(C4_3, 9, 1), (C4_EQ, 4, 2)])
def test_trained_means_are_equivariant(spec, n0, nL):
    """μ(ρ(g)x) = ρ_out(g) μ(x) for random x at several t, augmented MLP and f_G."""
    G, net, xe, xa, y = _problem(spec, n0, nL, N_e=1)
    for v in augmentation_violation(net, G, xe, xa, y, FLOWS + GDS[:1]):
        assert v.max() < 1e-10, v
    sym = symmetrized_ensemble(net, G, G.act(xe).reshape(-1, n0), xa, y, FLOWS)
    R = G.output_matrices(nL)
    for ens in sym:
        assert orbit_violation(G, ens.mean.reshape(G.order, 1, nL)).max() < 1e-10
        assert np.abs(ens.mean).max() > 1e-3
        # f_G's fluctuations are equivariant too: Σ(ρ(g)x, ρ(h)x) = ρ_out(g) Σ(x, x) ρ_out(h)ᵀ
        cov = ens.cov.reshape(G.order, nL, G.order, nL)
        pred = np.einsum("gik,kl,hjl->gihj", R, cov[0, :, 0, :], R)
        assert np.abs(cov - pred).max() < 1e-10


def test_partial_augmentation_breaks_invariance():
    G, net, xe, xa, y = _problem(C4_3, 9, 1, N_e=1)
    flow = Schedule("flow", time=2.0)
    sub = [G.index(M) for M in G.subgroup([2]).matrices]  # {e, r²}
    assert sorted(sub) == [0, 2]
    v_sub, = augmentation_violation(net, G, xe, xa, y, [flow], elements=sub)
    assert v_sub[2] < 1e-10 and min(v_sub[1], v_sub[3]) > 1e-3
    v_some = augmentation_violation(net, G, xe, xa, y, flow, elements=[0, 1])  # not a subgroup
    assert v_some[1:].min() > 1e-3
    v_none = augmentation_violation(net, G, xe, xa, y, flow, elements=[0])  # no augmentation
    assert v_none[1:].min() > 1e-3


def test_trained_ensemble_refusals():
    G, net, xe, xa, y = _problem(C4_EQ, 4, 2)
    with pytest.raises(SpecError, match="Schedule"):
        augmented_ensemble(net, G, xe, xa, y, {"time": 1.0})
    with pytest.raises(SpecError, match="nothing to fit"):
        symmetrized_ensemble(net, G, xe, xa[1:2], y[1:2], Schedule("flow", time=1.0))
    with pytest.raises(GroupError, match="n0 = widths"):
        symmetrized_ensemble(_net(9, 2), G, _inputs(1, 9, 0), _inputs(1, 9, 1), y[:1],
                             Schedule("flow", time=1.0))
