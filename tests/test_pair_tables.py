"""Two-sample tables by Mehler's expansion (feyntk.numbers.pairs) against the 2-d polar rule.

The polar rule (``pair_table(..., method="polar")``, the rule every table used before) is the
oracle: every entry agrees to 1e-10 relative (with the polar rule's own absolute floor, 1e-14 of
the table's scale) for tanh, gelu, softplus, erf (numerically and in closed form) and relu
(closed forms) over collinear, duplicate, near-duplicate, zero-variance, large- and
small-variance samples, and in the kernels K and Θ of depths 1-10. Exact values (erf's arcsine
kernel, sin's e^{-(K_aa+K_bb)/2} sinh K_ab) check both rules; refusals are those of the polar rule.
"""

import numpy as np
import pytest

import feyntk.numbers.gaussian as gaussian
from feyntk.errors import DegenerateKernelError
from feyntk.numbers.gaussian import pairs
from feyntk.numbers.gaussian import pair_table
from feyntk.numbers.infinite import kernel_layers
from feyntk.spec.activation import get_activation
from feyntk.spec.network import Network

SMOOTH = ["tanh", "gelu", "softplus", "erf"]


def _inputs(rng, N: int, n0: int = 3) -> np.ndarray:
    """Random inputs with norms spread over 0.1-3, plus a duplicate, a near-duplicate (1e-7),
    a collinear (-2x), a zero input and a nearly orthogonal pair."""
    x = rng.normal(size=(N, n0))
    x *= rng.uniform(0.1, 3.0, size=(N, 1)) / np.linalg.norm(x, axis=1, keepdims=True)
    x[1] = x[0]
    x[2] = x[0] * (1 + 1e-7)
    x[3] = -2 * x[0]
    x[4] = 0.0
    x[6] = np.cross(x[5], x[7])
    return x


def _kernel(rng, N: int, var: float, C_b: float = 0.0) -> np.ndarray:
    x = _inputs(rng, N)
    return var * (x @ x.T) / 3 + C_b


def _assert_close(a, b, rtol=1e-10, floor=1e-14):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.abs(b).max()
    np.testing.assert_allclose(a, b, rtol=rtol, atol=floor * max(scale, 1e-300))


VARIANCES = [(1e-4, 0.0), (1.0, 0.0), (1.0, 0.3), (6.0, 0.1)]
# default run: every activation, both derivative orders and every variance regime at least once
# (each activation meets two regimes); the full cross product is marked slow
TABLE_CASES = [pytest.param(name, k, var, C_b, marks=() if (i + 2 * k) % 4 == j % 4 or
                            (i + 2 * k + 1) % 4 == j % 4 and k == 0 else pytest.mark.slow)
               for i, name in enumerate(SMOOTH) for k in (0, 1)
               for j, (var, C_b) in enumerate(VARIANCES)]


@pytest.mark.parametrize("name, k, var, C_b", TABLE_CASES)
def test_tables_agree_with_the_polar_rule(name, k, var, C_b):
    K = _kernel(np.random.default_rng(17), 16, var, C_b)
    act = get_activation(name)
    new = pair_table(act, K, k, method="quadrature")
    old = pair_table(act, K, k, method="polar")
    _assert_close(new.value, old.value)
    assert np.all(np.isfinite(new.error)) and np.all(new.error >= 0)
    assert np.all(new.error <= 1e-10 * np.abs(old.value).max())


@pytest.mark.parametrize("name", ["tanh", "gelu"])
def test_mixed_derivative_orders(name):
    """k1 ≠ k2: the table is not symmetric; both triangles agree with the polar rule, and
    swapping the orders transposes it (such tables used to recurse without end)."""
    K = _kernel(np.random.default_rng(3), 10, 1.5, 0.2)
    act = get_activation(name)
    new = pair_table(act, K, 0, 1, method="quadrature")
    old = pair_table(act, K, 0, 1, method="polar")
    # (tanh's table vanishes by parity: its entries are rounding, hence the absolute 1e-14)
    np.testing.assert_allclose(new.value, old.value, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(pair_table(act, K, 1, 0).value, new.value.T, rtol=1e-13,
                               atol=1e-15)


KERNEL_NETS = [(1, 16, 1.0, 0.0), (3, 16, 1.0, 0.0), (3, 12, 2.0, 0.5), (10, 8, 1.0, 0.0)]
KERNEL_CASES = [pytest.param(name, *net, marks=() if i % 4 == j else pytest.mark.slow)
                for i, name in enumerate(["tanh", "gelu", "relu", "erf", "softplus"])
                for j, net in enumerate(KERNEL_NETS)]


@pytest.mark.parametrize("name, depth, N, C_W, C_b", KERNEL_CASES)
def test_kernels_agree_with_the_polar_rule(name, depth, N, C_W, C_b):
    """K and Θ of every layer: the default rule (closed forms for relu and erf, Mehler for the
    others) against the polar rule everywhere (relu, erf: their closed forms' oracle too)."""
    C_W = 2.0 * C_W if name == "relu" else C_W
    net = Network.create([3] + [32] * depth, name, C_W=C_W, C_b=C_b, lambda_W=1.0, lambda_b=0.1)
    x = _inputs(np.random.default_rng(5), N)
    x[4] = 0.5 * x[-1]  # no zero input: relu's Θ refuses z = 0 (tests/test_numbers.py)
    new = kernel_layers(net, x)
    old = kernel_layers(net, x, method="polar")
    for a, b in zip(new, old):
        _assert_close(a.K, b.K)
        _assert_close(a.Theta, b.Theta)


def test_exact_values():
    """erf (Williams' arcsine kernel) and sin (e^{-(K_aa+K_bb)/2} sinh / cosh K_ab): Mehler
    and the polar rule against the exact values, 1e-12 relative."""
    K = _kernel(np.random.default_rng(11), 12, 1.2, 0.1)
    erf = get_activation("erf")
    for k in (0, 1):
        exact = pair_table(erf, K, k, method="closed").value
        for method in ("quadrature", "polar"):
            _assert_close(pair_table(erf, K, k, method=method).value, exact, rtol=1e-12)
    sin = get_activation("sin")
    d = np.diag(K)
    damp = np.exp(-(d[:, None] + d[None, :]) / 2)
    for k, exact in ((0, damp * np.sinh(K)), (1, damp * np.cosh(K))):
        _assert_close(pair_table(sin, K, k, method="quadrature").value, exact, rtol=1e-12)


def test_a_much_finer_polar_rule():
    """tanh and gelu against the polar rule at rtol = 1e-14: 1e-12 relative."""
    K = _kernel(np.random.default_rng(23), 10, 2.0, 0.1)
    for name in ("tanh", "gelu"):
        act = get_activation(name)
        for k in (0, 1):
            fine = pair_table(act, K, k, method="polar", rtol=1e-14).value
            _assert_close(pair_table(act, K, k, method="quadrature").value, fine, rtol=1e-12)


def test_error_estimate_bounds_the_error():
    """The estimate is an upper bound of the actual error (erf's closed form as the truth),
    within rounding (1e-16 of the scale)."""
    K = _kernel(np.random.default_rng(29), 12, 2.0, 0.1)
    erf = get_activation("erf")
    for k in (0, 1):
        est = pair_table(erf, K, k, method="quadrature")
        exact = pair_table(erf, K, k, method="closed").value
        assert np.all(np.abs(est.value - exact) <= est.error + 1e-16 * np.abs(exact).max())
        assert np.all(est.error < 1e-11 * np.abs(exact).max())


def test_moderate_variances_never_reach_the_polar_rule(monkeypatch):
    """All pairs of a 40-input tanh table come from one batched expansion (no 2-d rule); a
    large-variance sample (K_aa = 30) sends exactly its own pairs to the polar rule, which
    batches them."""
    calls = []
    expect = gaussian.table.expect

    def spy(f, cov, **kw):
        calls.append(np.shape(cov)[0])
        return expect(f, cov, **kw)

    monkeypatch.setattr(gaussian.table, "expect", spy)  # pair_table's polar rule
    rng = np.random.default_rng(31)
    x = rng.normal(size=(40, 3))
    x *= np.sqrt(3) / np.linalg.norm(x, axis=1, keepdims=True)
    K = x @ x.T / 3
    tanh = get_activation("tanh")
    for k in (0, 1):
        pair_table(tanh, K, k)
    assert calls == []
    x = x[:12]
    x[0] *= np.sqrt(30.0)  # K_00 = 30
    K = x @ x.T / 3
    tab = pair_table(tanh, K, 0)
    assert calls == [12]  # the 12 pairs (0, b), b = 0..11, in one batch
    _assert_close(tab.value, pair_table(tanh, K, 0, method="polar").value)


def test_singular_samples_are_exact():
    """A zero-variance sample gives exact zeros for an odd σ (as the polar rule), a duplicate
    the 1-d integral."""
    K = np.array([[1.3, 1.3, 0.0], [1.3, 1.3, 0.0], [0.0, 0.0, 0.0]])
    t = pair_table(get_activation("tanh"), K, 0)
    assert t.value[2, 2] == 0.0 and t.value[0, 2] == 0.0 and t.error[0, 2] == 0.0
    u, w = pairs.hermite_basis(256)[0], pairs.hermite_basis(256)[1][0] ** 2
    assert t.value[0, 1] == pytest.approx(np.sum(w * np.tanh(np.sqrt(1.3) * u) ** 2), rel=1e-13)


def test_hermite_basis_is_orthogonal():
    for m in pairs.LEVELS[:4]:
        x, Q = pairs.hermite_basis(m)
        np.testing.assert_allclose(Q @ Q.T, np.eye(m), atol=1e-13)
        assert np.all(np.diff(x) > 0)


@pytest.mark.parametrize("K", [np.array([[1.0, 2.0], [2.0, 1.0]]),
                               np.array([[1.0, np.nan], [np.nan, 1.0]]),
                               np.array([[-1.0, 0.0], [0.0, 1.0]])])
def test_refusals_are_unchanged(K):
    def message(method):
        with pytest.raises(DegenerateKernelError) as info:
            pair_table(get_activation("tanh"), K, 0, method=method)
        return str(info.value)

    assert message("auto") == message("polar")


def test_infinite_expectations_are_refused():
    """exp(z²/8) at K = 3: E[f²] = ∞, refused as by the polar rule; at K = 1 the expansion
    gives the exact E[exp(z²/4)] = √2 (the polar rule's radial nodes reach where the
    integrand overflows the weight)."""
    act = get_activation("exp(z**2/8)")
    for method in ("auto", "polar"):
        with pytest.raises(DegenerateKernelError, match="not finite"):
            pair_table(act, np.array([[3.0, 0.5], [0.5, 3.0]]), 0, method=method)
    t = pair_table(act, np.array([[1.0, 0.0], [0.0, 1.0]]), 0)
    assert t.value[0, 0] == pytest.approx(np.sqrt(2), rel=1e-12)
    assert t.value[0, 1] == pytest.approx(4 / 3, rel=1e-12)  # E[e^{z²/8}]² = (1/√(3/4))²


def test_kinked_activations_keep_their_rules():
    """relu: closed forms by default; its quadrature is the polar rule, unchanged."""
    K = _kernel(np.random.default_rng(37), 8, 1.0, 0.1)
    relu = get_activation("relu")
    a = pair_table(relu, K, 1, method="quadrature")
    b = pair_table(relu, K, 1, method="polar")
    np.testing.assert_array_equal(a.value, b.value)
