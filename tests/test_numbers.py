"""Gaussian expectations and infinite-width kernels (MATH.md §4 worked examples).

Oracles: closed forms (linear, relu family, erf), Isserlis' theorem, and an independent
adaptive quadrature (scipy's QUADPACK on the bivariate normal density, split at z = 0).
neural-tangents cannot be installed beside this project's jax (it needs tensorflow through
jax2tf), so the independent quadrature stands in for its stax kernels.
"""

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate

from feyntk.errors import DegenerateKernelError, QuadratureWarning
from feyntk.numbers.gaussian import expect, halfrange_rule, pair_table
from feyntk.numbers.infinite import infinite_kernels, kernel_layers
from feyntk.spec.activation import get_activation
from feyntk.spec.network import Network
from feyntk.testing import CLOSED_FORM, inputs, networks


def _random_psd(rng, N, rank=None):
    A = rng.normal(size=(N, rank or N))
    return A @ A.T / (rank or N) + (0.0 if rank else 0.05 * np.eye(N))


def test_hermite_and_halfrange_rules_integrate_moments():
    r, w = halfrange_rule(24, 1)
    assert np.all(r > 0)
    # ∫_0^∞ r^(k+1) e^{-r²/2} dr = 2^{k/2} Γ(k/2 + 1)
    from math import gamma
    for k in range(0, 20, 3):
        assert (w * r**k).sum() == pytest.approx(2 ** (k / 2) * gamma(k / 2 + 1), rel=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_isserlis_moments_in_up_to_four_dimensions(d):
    rng = np.random.default_rng(d)
    K = _random_psd(rng, d)
    tuples = list(itertools.product(range(d), repeat=4))
    for j in rng.choice(len(tuples), size=min(12, len(tuples)), replace=False):
        idx = tuples[j]
        est = expect(lambda z: np.prod([z[:, i] for i in idx], axis=0), K)
        a, b, c, e = idx
        exact = K[a, b] * K[c, e] + K[a, c] * K[b, e] + K[a, e] * K[b, c]
        assert est.value == pytest.approx(exact, rel=1e-11, abs=1e-12)


# K over 4 of 8 inputs in 3 dimensions, layer 2 of a tanh network: one thin direction
# (λ_min/λ_max ≈ 1/4000), as in every 4-sample blob of a deep network on low-dimensional inputs
THIN_K = np.array([[0.39429449, -0.35135151, 0.38968730, -0.29398006],
                   [-0.35135151, 0.39429449, -0.37045353, 0.23233713],
                   [0.38968730, -0.37045353, 0.39429449, -0.26404428],
                   [-0.29398006, 0.23233713, -0.26404428, 0.39429449]])


def test_anisotropic_grid_resolves_thin_directions():
    """The anisotropic tensor rule (fewer nodes along directions of small variance) is as
    accurate as the isotropic rule with the same m, for a derivative integrand of tanh on a
    covariance with a thin direction (reference: isotropic, m = 64). A thin direction once kept
    2 nodes at every level: an error the refinement could not see."""
    from feyntk.numbers.gaussian import _apply_rule, _tensor_rule, _whiten

    def f(z):  # z: (..., 4, P) -> (..., 2, P)
        t = np.tanh(z)
        d1 = 1 - t**2
        t0, t1, t2, t3 = (np.take(t, k, axis=-2) for k in range(4))
        d0, e1, e2, e3 = (np.take(d1, k, axis=-2) for k in range(4))
        return np.stack([(-2 * t0 * d0) * t1 * e2 * (-2 * e3 * (1 - 3 * t3**2)),
                         d0 * e1 * (-2 * t2 * e2) * (-2 * t3 * e3)], axis=-2)

    L = _whiten(THIN_K[None])
    nodes, weights = _tensor_rule((64,) * 4)
    ref = f(L[0] @ nodes) @ weights
    for m in (32, 48):
        nodes, weights = _tensor_rule((m,) * 4)
        iso_err = np.abs(f(L[0] @ nodes) @ weights - ref).max()
        aniso_err = np.abs(_apply_rule(f, L, m)[0] - ref).max()
        assert aniso_err <= 1.1 * iso_err + 1e-13, (m, aniso_err, iso_err)


def test_capped_integrals_are_reported_with_a_conservative_error():
    """expect() records an integral that reached m_max unconverged, with an error estimate
    that bounds its true error; converged integrals are not recorded."""
    from feyntk.numbers.gaussian import QuadratureReport, capped_error

    np.testing.assert_allclose(capped_error([1e-6, 1e-3, 1e-5], [1e-2, 1e-4, np.inf]),
                               [1e-8, 1e-3, 1e-5])
    cov = np.array([[2.0, 1.2, 0.8], [1.2, 2.0, 1.0], [0.8, 1.0, 2.0]])

    def f(z):  # tanh''(z0) tanh''(z1) tanh'(z2)
        t = np.tanh(z)
        return 4 * t[:, 0] * t[:, 1] * (1 - t[:, 0]**2) * (1 - t[:, 1]**2) * (1 - t[:, 2]**2)

    ref = expect(f, cov, m=32, m_max=256)
    for m, m_max in [(16, 32), (8, 32), (16, 64), (32, 128)]:  # one or more level differences
        rep = QuadratureReport()
        got = expect(f, cov, m=m, m_max=m_max, report=rep)
        assert rep.capped == 1 and rep.worst == f"3-sample, m = {m_max}"
        true = abs(float(got.value) - float(ref.value)) / abs(float(ref.value))
        plain = float(got.error) / abs(float(got.value))  # |I_m - I_m/2|: the naive bound
        assert true <= rep.max_rel_error <= plain * (1 + 1e-12), (m_max, true, rep)
    rep2 = QuadratureReport()
    expect(f, 0.1 * cov, report=rep2)
    assert rep2.capped == 0 and rep2.summary()["max_rel_error_estimate"] == 0.0


def test_relu_closed_forms_at_tiny_variances():
    """relu / leaky relu closed forms at variances ~1e-221 (hypothesis counterexample): the pair
    norm sqrt(K_aa K_bb) underflowed to 0, which made K shrink ×100 per layer for leaky relu,
    E[σ'²] = 0.255 instead of 0.50005, and relu refuse a nonzero variance as zero."""
    for act, cb in ((get_activation({"name": "leaky_relu", "slope": 0.01}), 4e-221),
                    (get_activation("relu"), 4e-221)):
        net = Network.create([1, 2, 2, 2], act, C_W=1.0, C_b=[cb, 0.0, 0.0], lambda_W=1.0,
                             lambda_b=[0.0, 1.0, 0.0])
        a = kernel_layers(net, np.zeros((1, 1)), method="closed")[-1]
        b = kernel_layers(net, np.zeros((1, 1)), method="quadrature")[-1]
        np.testing.assert_allclose(a.K, b.K, rtol=1e-10, atol=0)
        np.testing.assert_allclose(a.Theta, b.Theta, rtol=1e-10, atol=0)


@pytest.mark.parametrize("ms", [(8,), (6, 10, 24), (12, 12, 12, 12), (2, 6, 12, 24)])
def test_pruned_tensor_rule_equals_the_full_grid_pruned(ms):
    """The direction-by-direction construction of the pruned tensor rule (memory ∝ kept nodes)
    gives exactly the full meshgrid's nodes, weights and order, keeping w ≥ PRUNE · max w."""
    from feyntk.numbers.gaussian import PRUNE, _tensor_rule, hermite_rule

    rules = [hermite_rule(m) for m in ms]
    grids = np.meshgrid(*[x for x, _ in rules], indexing="ij")
    w = np.ones(grids[0].size)
    for g in np.meshgrid(*[w_ for _, w_ in rules], indexing="ij"):
        w = w * g.ravel()
    keep = w >= PRUNE * w.max()
    nodes, weights = _tensor_rule(ms)
    np.testing.assert_array_equal(nodes, np.stack([g.ravel()[keep] for g in grids]))
    np.testing.assert_array_equal(weights, w[keep])


def _correlated(rng, d, common):
    """Random correlation matrix; ``common`` adds a shared direction (correlations → 1)."""
    A = 0.3 * rng.normal(size=(d, d)) + common
    K = A @ A.T
    s = np.sqrt(np.diag(K))
    return K / np.outer(s, s)


def _orthant3(C):
    """P(z > 0) for z ~ N(0, C) in 3-d (Sheppard / Childs' closed form)."""
    s = np.sqrt(np.diag(C))
    R = C / np.outer(s, s)
    return 0.125 + (np.arcsin(R[0, 1]) + np.arcsin(R[0, 2]) + np.arcsin(R[1, 2])) / (4 * np.pi)


@pytest.mark.parametrize("common", [0.0, 1.0, 10.0, 30.0])
def test_conical_rule_is_exact_for_kinks_at_zero(common):
    """3- and 4-d integrands with jumps on the planes z_a = 0 (relu's σ', σ and their
    products) against closed forms, up to correlations 0.9999: the orthant probability in 3-d,
    and in 4-d ⟨relu(z_0) Θ(z_1) Θ(z_2) Θ(z_3)⟩ reduced by Gaussian integration by parts to
    Σ_j K_0j ρ_j(0) P(z_{-j} > 0 | z_j = 0). Gauss–Hermite missed these by up to 2e-2 while
    its refinement looked converged."""
    rng = np.random.default_rng(int(common) + 7)
    for _ in range(2):
        K = _correlated(rng, 3, common) * np.outer([1.0, 2.0, 0.5], [1.0, 2.0, 0.5])
        est = expect(lambda z: np.all(z > 0, axis=1) * 1.0, K, kinks=(0.0,))
        assert est.value == pytest.approx(_orthant3(K), abs=1e-13)
        K4 = _correlated(rng, 4, common) * np.outer([1.0, 2.0, 0.5, 1.5], [1.0, 2.0, 0.5, 1.5])
        exact = 0.0
        for j in range(4):
            r = [k for k in range(4) if k != j]
            C = K4[np.ix_(r, r)] - np.outer(K4[r, j], K4[j, r]) / K4[j, j]
            exact += K4[0, j] / np.sqrt(2 * np.pi * K4[j, j]) * _orthant3(C)
        est = expect(lambda z: np.maximum(z[:, 0], 0) * np.all(z[:, 1:] > 0, axis=1), K4,
                     kinks=(0.0,))
        assert est.value == pytest.approx(exact, abs=1e-9 * exact)


def test_conical_rule_moments_and_fallbacks():
    """The conical nodes integrate 1 and z zᵀ; kinks elsewhere or shifted fall back to the
    tensor rule (with a warning). Repeated and collinear inputs keep the exact rules: rank 2
    over 3 variables takes the polar rule cut at every kink line, rank 3 over 4 the conical rule
    on its 3 distinct planes, or with x₃ = x₁ + x₂ (4 planes) on cones cut by the fourth."""
    from feyntk.numbers.gaussian import CONE_LEVELS, conical_applies, conical_nodes, factor

    rng = np.random.default_rng(3)
    for d in (3, 4):
        K = _correlated(rng, d, 2.0)
        L = factor(K[None], smooth=False)
        assert conical_applies(L, (0.0,), None)
        assert not conical_applies(L, (1.0,), None) and not conical_applies(L, (), None)
        assert not conical_applies(L, (0.0,), np.full((1, d), 0.1))
        one, second = 0.0, 0.0
        for z, w in conical_nodes(L, CONE_LEVELS[d][1]):  # the last level
            one += w.sum()
            second = second + np.einsum("bip,bjp,bp->ij", z, z, w)
        assert one == pytest.approx(1.0, abs=1e-9)
        np.testing.assert_allclose(second, K, atol=1e-9)
    dup = np.array([[1.0, 1.0, 0.4], [1.0, 1.0, 0.4], [0.4, 0.4, 1.0]])
    assert not conical_applies(factor(dup[None], smooth=False)[..., :2], (0.0,), None)
    est = expect(lambda z: np.all(z > 0, axis=1) * 1.0, dup, kinks=(0.0,))
    assert est.value == pytest.approx(0.25 + np.arcsin(0.4) / (2 * np.pi), abs=1e-13)
    K3 = _correlated(rng, 3, 1.0)
    dup4 = K3[np.ix_([0, 0, 1, 2], [0, 0, 1, 2])]
    assert conical_applies(factor(dup4[None], smooth=False)[..., :3], (0.0,), None)
    est = expect(lambda z: np.all(z > 0, axis=1) * 1.0, dup4, kinks=(0.0,))
    assert est.value == pytest.approx(_orthant3(K3), abs=1e-13)
    X = rng.normal(size=(3, 3))
    X = np.vstack([X, X[0] + X[1]])  # x_3 = x_0 + x_1: rank 3, four distinct planes
    KX = X @ X.T
    coll = factor(KX[None], smooth=False)[..., :3]
    assert coll.shape[-1] == 3 and conical_applies(coll, (0.0,), None)
    one = sum(w.sum() for _, w in conical_nodes(coll, CONE_LEVELS[3][1]))
    assert one == pytest.approx(1.0, abs=1e-12)
    # P(z_0 > 0, z_1 < 0, z_3 > 0): an orthant probability of (z_0, −z_1, z_3)
    S = np.diag([1.0, -1.0, 1.0])
    exact = _orthant3(S @ KX[np.ix_([0, 1, 3], [0, 1, 3])] @ S)
    est = expect(lambda z: (z[:, 0] > 0) * (z[:, 1] < 0) * (z[:, 3] > 0) * 1.0, KX,
                 kinks=(0.0,))
    assert est.value == pytest.approx(exact, abs=1e-13)
    # the fallback says so where it happens; the exact rules stay silent
    step = lambda z: np.all(z > 0, axis=1) * 1.0  # noqa: E731
    with pytest.warns(QuadratureWarning, match="kinks away from 0"):
        expect(step, K3, kinks=(0.5,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        expect(step, K3, kinks=(0.0,))
        expect(step, dup4, kinks=(0.0,))
        expect(step, KX, kinks=(0.0,))


def test_conical_rule_refuses_cones_beyond_its_cap(monkeypatch):
    """Bisection is bounded: past CONE_MAX cones (inputs too nearly collinear) the request is
    refused with the reason instead of integrated on an unsplit, inaccurate cone."""
    import feyntk.numbers.gaussian as gaussian

    K = _correlated(np.random.default_rng(0), 3, 30.0)
    assert len(gaussian.cone_simplices(gaussian.factor(K[None], smooth=False)[0])) > 8
    monkeypatch.setattr(gaussian.conical, "CONE_MAX", 8)  # read by cone_simplices
    with pytest.raises(DegenerateKernelError, match="too nearly collinear"):
        expect(lambda z: np.all(z > 0, axis=1) * 1.0, K, kinks=(0.0,))


def test_singular_covariances_give_limits_not_nan():
    # duplicate sample: rank 1; zero-variance sample: deterministic 0
    K = np.array([[1.3, 1.3, 0.0], [1.3, 1.3, 0.0], [0.0, 0.0, 0.0]])
    tanh = get_activation("tanh")
    t = pair_table(tanh, K, 0)
    assert np.all(np.isfinite(t.value))
    one_d = integrate.quad(lambda u: np.tanh(np.sqrt(1.3) * u) ** 2 * np.exp(-u * u / 2)
                           / np.sqrt(2 * np.pi), -40, 40, epsabs=1e-14)[0]
    assert t.value[0, 1] == pytest.approx(one_d, rel=1e-11)
    assert t.value[2, 2] == 0.0 and t.value[0, 2] == 0.0
    # 4-d with a repeated sample is a correct 3-d integral
    K4 = np.array([[1.0, 0.3, 0.3, 0.1], [0.3, 1.0, 1.0, 0.2], [0.3, 1.0, 1.0, 0.2],
                   [0.1, 0.2, 0.2, 0.8]])
    est = expect(lambda z: z[:, 1] * z[:, 2] * z[:, 0] * z[:, 3], K4)
    assert est.value == pytest.approx(1.0 * 0.1 + 0.3 * 0.2 + 0.3 * 0.2, rel=1e-11)


@pytest.mark.parametrize("name", CLOSED_FORM)
@pytest.mark.parametrize("k", [0, 1])
@given(seed=st.integers(0, 2**31), rank=st.sampled_from([None, 1, 2]))
def test_closed_forms_agree_with_quadrature(name, k, seed, rank):
    rng = np.random.default_rng(seed)
    K = _random_psd(rng, 3, rank) * rng.uniform(0.2, 4.0)
    act = get_activation(name if name != "leaky_relu" else {"name": name, "slope": 0.2})
    a = pair_table(act, K, k, method="closed")
    b = pair_table(act, K, k, method="quadrature")
    np.testing.assert_allclose(a.value, b.value, rtol=1e-10, atol=1e-12)
    assert np.all(b.error < 1e-9)


def test_kink_at_deterministic_zero_is_a_clear_error():
    net = Network.create([2, 8, 8], "relu", C_W=2.0, C_b=0.0)
    x = np.array([[1.0, 0.5], [0.0, 0.0]])
    K = kernel_layers(net, x, ntk=False)[-1].K  # K alone is fine: relu(0) = 0
    assert np.all(np.isfinite(K)) and K[1, 1] == 0.0
    with pytest.raises(DegenerateKernelError, match=r"inputs \['x\[1\]'\]"):
        kernel_layers(net, x, ntk=True)


def test_layer_one_is_exact():
    net = Network.create([3, 5, 7], "tanh", C_W=[1.7, 0.9], C_b=[0.2, 0.4],
                         lambda_W=[0.5, 2.0], lambda_b=[0.3, 0.1])
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 0.3]])
    K1, T1 = infinite_kernels(net, x, 1)
    np.testing.assert_allclose(K1, 0.2 + 1.7 * x @ x.T / 3, rtol=1e-15)
    np.testing.assert_allclose(T1, 0.3 + 0.5 * x @ x.T / 3, rtol=1e-15)


def test_deep_linear_and_relu_criticality():
    x = np.array([[1.0, 0.2, -0.7], [0.3, 0.9, 0.1]])
    gram = x @ x.T / 3
    for l, layer in enumerate(kernel_layers(Network.create([3] + [6] * 5, "linear"), x), 1):
        np.testing.assert_allclose(layer.K, gram, rtol=1e-13)
        np.testing.assert_allclose(layer.Theta, l * gram, rtol=1e-13)
    for layer in kernel_layers(Network.create([3] + [6] * 5, "relu", C_W=2.0, lambda_W=2.0), x):
        np.testing.assert_allclose(np.diag(layer.K), 2 * np.diag(gram), rtol=1e-13)


def _oracle_pair(f, g, Kaa, Kbb, Kab):
    """E[f(z_a) g(z_b)] by QUADPACK on the bivariate density, quadrants split at 0."""
    if Kaa * Kbb - Kab**2 <= 1e-14 * Kaa * Kbb:  # rank one: z_b = (Kab/Kaa) z_a
        s = np.sqrt(Kaa)
        h = lambda u: f(s * u) * g(Kab / Kaa * s * u) * np.exp(-u * u / 2) / np.sqrt(2 * np.pi)
        return sum(integrate.quad(h, lo, hi, epsabs=1e-15, epsrel=1e-13, limit=200)[0]
                   for lo, hi in ((-40, 0), (0, 40)))
    det = Kaa * Kbb - Kab**2
    norm = 1 / (2 * np.pi * np.sqrt(det))

    def dens(zb, za):
        q = (Kbb * za * za - 2 * Kab * za * zb + Kaa * zb * zb) / det
        return f(za) * g(zb) * norm * np.exp(-q / 2)

    La, Lb = 14 * np.sqrt(Kaa), 14 * np.sqrt(Kbb)
    return sum(integrate.dblquad(dens, a0, a1, b0, b1, epsabs=1e-15, epsrel=1e-12)[0]
               for (a0, a1), (b0, b1) in itertools.product(((-La, 0), (0, La)),
                                                           ((-Lb, 0), (0, Lb))))


def _oracle_kernels(net, x):
    """The K/Θ recursion of MATH.md §4 typed in as an oracle, integrals by QUADPACK."""
    act = net.activation
    s, ds = act.numpy(0), act.numpy(1)
    gram = x @ x.T / net.n0
    K = net.C_b[0] + net.C_W[0] * gram
    T = net.lambda_b[0] + net.lambda_W[0] * gram
    for l in range(2, net.L + 1):
        N = len(x)
        ss = np.array([[_oracle_pair(s, s, K[a, a], K[b, b], K[a, b]) for b in range(N)]
                       for a in range(N)])
        dd = np.array([[_oracle_pair(ds, ds, K[a, a], K[b, b], K[a, b]) for b in range(N)]
                       for a in range(N)])
        K, T = (net.C_b[l - 1] + net.C_W[l - 1] * ss,
                net.lambda_b[l - 1] + net.lambda_W[l - 1] * ss + net.C_W[l - 1] * dd * T)
    return K, T


@pytest.mark.parametrize("name", ["tanh", "erf", "relu", "gelu"])
def test_kernels_match_independent_quadrature(name):
    net = Network.create([2, 9, 7, 5], name, C_W=[1.3, 1.8, 0.9], C_b=[0.1, 0.0, 0.3],
                         lambda_W=[1.0, 0.7, 1.3], lambda_b=[0.2, 0.0, 0.5])
    x = np.array([[0.9, -0.4], [0.2, 1.1]])
    K, T = infinite_kernels(net, x)
    Ko, To = _oracle_kernels(net, x)
    np.testing.assert_allclose(K, Ko, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(T, To, rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_kernels_symmetric_psd_finite(data):
    net = data.draw(networks(max_width=16))
    x = data.draw(inputs(net.n0))
    zero = (np.abs(x).sum(axis=1) == 0) & (net.C_b[0] == 0)
    if zero.any() and net.activation.kinks and net.L > 1:
        with pytest.raises(DegenerateKernelError, match="zero preactivation variance"):
            kernel_layers(net, x)
        return
    for layer in kernel_layers(net, x):
        for M in (layer.K, layer.Theta):
            assert np.all(np.isfinite(M))
            np.testing.assert_allclose(M, M.T, rtol=0, atol=1e-14)
            assert np.linalg.eigvalsh(M).min() >= -1e-10 * max(1.0, np.abs(M).max())


@given(data=st.data())
def test_kernels_closed_form_vs_quadrature_on_random_specs(data):
    net = data.draw(networks(activations=CLOSED_FORM, max_depth=4, max_width=8))
    x = data.draw(inputs(net.n0, max_inputs=3))
    zero = (np.abs(x).sum(axis=1) == 0) & (net.C_b[0] == 0)
    if zero.any() and net.activation.kinks and net.L > 1:  # σ acts from layer 2 on
        with pytest.raises(DegenerateKernelError, match="zero preactivation variance"):
            kernel_layers(net, x, method="closed")
        return
    a = kernel_layers(net, x, method="closed")[-1]
    b = kernel_layers(net, x, method="quadrature")[-1]
    np.testing.assert_allclose(a.K, b.K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.Theta, b.Theta, rtol=1e-10, atol=1e-12)


def test_triangular_factor_pivots_and_drops_collinear_variables():
    """K = L Lᵀ with L[perm] lower triangular; a duplicate variable or a zero-variance one gets a
    zero column (the rank decision is per variable, so a tiny but independent variance stays);
    pivoting puts the variable nearly collinear with the others last."""
    from feyntk.numbers.gaussian import triangular_directions

    rng = np.random.default_rng(3)
    A = rng.normal(size=(5, 4, 4))
    K = A @ A.transpose(0, 2, 1)
    L, perm = triangular_directions(K)
    np.testing.assert_allclose(L @ L.transpose(0, 2, 1), K, atol=1e-12)
    for b in range(5):
        assert np.allclose(np.triu(L[b][perm[b]], 1), 0.0)
    dup = K[0].copy()
    dup[3], dup[:, 3] = dup[1], dup[1]
    dup[3, 3] = dup[1, 1]
    L, perm = triangular_directions(dup[None])
    assert (np.abs(L[0]).sum(0) > 0).sum() == 3 and perm[0, -1] in (1, 3)
    np.testing.assert_allclose(L[0] @ L[0].T, dup, atol=1e-12)
    zero = K[1].copy()
    zero[2], zero[:, 2] = 0.0, 0.0
    L, perm = triangular_directions(zero[None])
    assert perm[0, -1] == 2 and np.all(L[0][2] == 0) and (np.abs(L[0]).sum(0) > 0).sum() == 3
    tiny = K[2] * np.outer([1, 1, 1e-9, 1], [1, 1, 1e-9, 1])
    L, _ = triangular_directions(tiny[None])
    assert (np.abs(L[0]).sum(0) > 0).sum() == 4
    near = THIN_K.copy()
    L, perm = triangular_directions(near[None])
    cond = [np.abs(L[0][perm[0][j], j]) for j in range(4)]
    assert cond[-1] == min(cond)
