"""The sampler against brute-force autodiff, MATH.md §1 initialisation, and its contracts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from feyntk.errors import ActivationError, MemoryBudgetError, SpecError
from feyntk.spec.activation import get_activation
from feyntk.spec.network import Network
from feyntk.validate.sample import (FIELDS, FieldSpec, _chunk_fields, bytes_per_network, forward,
                                    learning_rates, network_fields, network_key, plan_sampling,
                                    sample, sample_fields, sample_parameters)

HYPER = dict(C_W=(1.3, 0.8, 1.7), C_b=(0.1, 0.3, 0.05), lambda_W=(0.7, 1.2, 0.9),
             lambda_b=(0.2, 0.05, 0.4))
X = np.array([[0.7, -0.3], [0.2, 1.1]])


def tiny(act="tanh"):
    return Network.create([2, 3, 3, 2], get_activation(act), **HYPER)


def _flat_to_fields(t, M, N):
    k = t.ndim
    return np.asarray(t).reshape((M, N) * k).transpose(
        tuple(range(0, 2 * k, 2)) + tuple(range(1, 2 * k, 2)))


def brute_force(spec, theta, x):
    """MATH.md §2 sums written out over μ, ν, ... from full derivative tensors of z(θ)."""
    f = lambda t: forward(spec, t, x).reshape(-1)  # noqa: E731

    @jax.jit
    def derivs(t):
        return (jax.jacrev(f)(t), jax.hessian(f)(t),
                jax.jacfwd(jax.jacfwd(jax.jacrev(f)))(t))

    @jax.jit
    def sums(J, H2, H3, lam):
        ein = lambda s, *a: jnp.einsum(s, *a, optimize=True)  # noqa: E731
        return {
            "H": ein("ap,bp,p->ab", J, J, lam),
            "dH": ein("apq,bp,cq,p,q->abc", H2, J, J, lam, lam),
            "ddI": ein("apqr,bp,cq,dr,p,q,r->abcd", H3, J, J, J, lam, lam, lam),
            "ddII": ein("apq,bpr,cq,dr,p,q,r->abcd", H2, H2, J, J, lam, lam, lam),
        }

    return sums(*derivs(theta), learning_rates(spec))


@pytest.mark.parametrize("act,layer,batch", [
    ("tanh", 1, None), ("tanh", 2, None), ("tanh", 3, None), ("gelu", 3, 5)])
def test_fields_match_brute_force(act, layer, batch):
    net = tiny(act).truncate(layer)
    M, N = net.widths[-1], X.shape[0]
    spec = FieldSpec(net, M, FIELDS, batch)
    theta = sample_parameters(spec, network_key(3, 5))
    fast = jax.jit(network_fields, static_argnums=0)(spec, theta, jnp.asarray(X))
    ref = brute_force(spec, theta, jnp.asarray(X))
    np.testing.assert_allclose(fast["z"], forward(spec, theta, X), rtol=0, atol=1e-14)
    for name, val in ref.items():
        want = _flat_to_fields(val, M, N)
        assert fast[name].shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(fast[name], want, rtol=0, atol=1e-12 * scale, err_msg=name)
        if layer == 1 and name != "H":
            assert not np.any(np.asarray(fast[name])), f"{name} must vanish exactly at layer 1"
    if layer == 1:  # Ĥ^{(1)} = δ (λ_b + λ_W x·x/n0)
        theta1 = HYPER["lambda_b"][0] + HYPER["lambda_W"][0] * X @ X.T / 2
        np.testing.assert_allclose(fast["H"], np.einsum("ij,ab->ijab", np.eye(M), theta1),
                                   atol=1e-14)


def test_symmetry_of_fields():
    spec = FieldSpec(tiny("gelu"), 2, FIELDS)
    f = jax.jit(network_fields, static_argnums=0)(
        spec, sample_parameters(spec, network_key(0, 0)), jnp.asarray(X))
    H, dH, ddI = (np.asarray(f[k]) for k in ("H", "dH", "ddI"))
    np.testing.assert_allclose(H, H.transpose(1, 0, 3, 2), atol=1e-14)
    np.testing.assert_allclose(dH, dH.transpose(0, 2, 1, 3, 5, 4), atol=1e-14)
    np.testing.assert_allclose(ddI, ddI.transpose(0, 3, 1, 2, 4, 7, 5, 6), atol=1e-14)


def test_initialisation_follows_math_section_1():
    net = Network.create([3, 5, 4], "tanh", C_W=(1.5, 0.6), C_b=(0.2, 0.7),
                         lambda_W=(0.3, 2.0), lambda_b=(0.4, 0.9))
    spec = FieldSpec(net, 4, ("z",))
    thetas = np.asarray(jax.vmap(lambda i: sample_parameters(spec, network_key(1, i)))(
        jnp.arange(4000)))
    sizes = [(5 * 3, 1.5 / 3), (5, 0.2), (4 * 5, 0.6 / 5), (4, 0.7)]
    off = 0
    for size, var in sizes:
        block = thetas[:, off: off + size]
        off += size
        assert abs(block.mean()) < 5 * np.sqrt(var / block.size)
        assert abs(block.var() / var - 1) < 0.05
    assert off == thetas.shape[1] == spec.n_parameters
    lam = np.asarray(learning_rates(spec))
    np.testing.assert_allclose(lam, np.concatenate(
        [np.full(15, 0.3 / 3), np.full(5, 0.4), np.full(20, 2.0 / 5), np.full(4, 0.9)]))


def test_reproducible_chunk_and_neuron_invariant():
    net = tiny("tanh")
    a = sample(net, X, 3, ("z", "H"), 11, seed=4, chunk=3)
    b = sample(net, X, 3, ("z", "H"), 11, seed=4, chunk=7)
    for k in a:
        assert a[k].shape[0] == 11
        np.testing.assert_allclose(a[k], b[k], rtol=1e-13, atol=1e-15)
    again = sample(net, X, 3, ("z", "H"), 11, seed=4, chunk=3)
    assert all(np.array_equal(a[k], again[k]) for k in a)
    other = sample(net, X, 3, ("z", "H"), 11, seed=5, chunk=3)
    assert not np.allclose(a["z"], other["z"])
    spec = FieldSpec(net, 2, ("z", "H"))                     # network 6 by the one-network path
    one = jax.jit(network_fields, static_argnums=0)(
        spec, sample_parameters(spec, network_key(4, 6)), jnp.asarray(X))
    for k in a:
        np.testing.assert_allclose(a[k][6], one[k], rtol=1e-12, atol=1e-14)
    wide = Network.create([2, 3, 6], "tanh")
    z6 = sample(wide, X, 2, ("z",), 5, seed=1, neurons=6)["z"]
    z2 = sample(wide, X, 2, ("z",), 5, seed=1, neurons=2)["z"]
    np.testing.assert_allclose(z6[:, :2], z2, rtol=1e-13)


def test_progress_bar_counts_networks(capsys):
    plan = plan_sampling(tiny(), X, 2, ("z",), chunk=4)
    list(sample_fields(plan, 10, progress=True))
    assert "10/10" in capsys.readouterr().err


def test_memory_budget_refusal_and_sizing():
    net = Network.create([4, 64, 64, 64], "tanh")
    with pytest.raises(MemoryBudgetError, match=r"MiB.*Reduce the number of inputs N"):
        plan_sampling(net, np.ones((4, 4)), 3, ("ddI",), neurons=3, max_memory_bytes=200_000)
    plan = plan_sampling(net, np.ones((4, 4)), 3, ("z", "H"), max_memory_bytes=50 * 2**20)
    assert plan.chunk * plan.bytes_per_network <= 50 * 2**20
    with pytest.raises(MemoryBudgetError, match="chunk"):
        plan_sampling(net, np.ones((4, 4)), 3, ("z", "H"), chunk=10_000,
                      max_memory_bytes=50 * 2**20)
    small = plan_sampling(net, np.ones((4, 4)), 3, ("ddI",), neurons=3,
                          max_memory_bytes=30 * 2**20)
    assert small.spec.batch is not None and small.bytes_per_network <= 30 * 2**20
    fallback = plan_sampling(net, np.ones((4, 4)), 3, ("dH",), max_memory_bytes=3 * 2**20)
    assert fallback.neurons < 4


@pytest.mark.parametrize("fields,M,N,batch", [
    (("z", "H"), 8, 3, None), (("ddI",), 2, 2, 4),
    pytest.param(FIELDS, 2, 3, None, marks=pytest.mark.slow)])
def test_memory_estimate_is_conservative(fields, M, N, batch):
    """Per-network memory (slope in the chunk size) of XLA's compiled chunk vs the estimate."""
    spec = FieldSpec(Network.create([3, 16, 16, 16], "tanh"), M, fields, batch)
    x = jnp.ones((N, 3))
    sizes = []
    for C in (4, 12):
        ma = _chunk_fields.lower(jax.random.PRNGKey(0), jnp.arange(C, dtype=jnp.uint32), x,
                                 spec=spec, reduce=None).compile().memory_analysis()
        if ma is None:
            pytest.skip("this backend reports no memory analysis")
        sizes.append(ma.temp_size_in_bytes + ma.output_size_in_bytes)
    per_network = (sizes[1] - sizes[0]) / 8
    assert per_network <= bytes_per_network(spec, N) <= 8 * per_network


def test_refusals():
    relu = Network.create([2, 3, 3], "relu")
    with pytest.raises(ActivationError, match="delta"):
        plan_sampling(relu, X, 2, ("dH",))
    plan_sampling(relu, X, 2, ("z", "H"))
    plan_sampling(relu, X, 1, ("ddI",))          # no σ at layer 1
    narrow = Network.create([2, 3, 1], "tanh")
    with pytest.raises(SpecError, match="two different neurons"):
        plan_sampling(narrow, X, 2, ("z",), min_neurons=2)
    with pytest.raises(SpecError, match="neurons"):
        plan_sampling(tiny(), X, 3, ("z",), neurons=3)
    with pytest.raises(SpecError, match="fields"):
        plan_sampling(tiny(), X, 3, ("K",))
    with pytest.raises(SpecError, match="chunk"):
        plan_sampling(tiny(), X, 3, ("z",), chunk=0)
