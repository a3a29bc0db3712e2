"""Network spec, activations, statistic registry and config validation (bad input = clear error)."""

import math

import numpy as np

import feyntk
import pytest
import sympy as sp

from feyntk.errors import ActivationError, SpecError
from feyntk.spec.activation import Z, get_activation, known_activations
from feyntk.spec.config import EXAMPLE_CONFIG, parse_request
from feyntk.spec.network import Network
from feyntk.spec.statistic import TENSOR_NAMES, check_tensor_names


@pytest.mark.parametrize("name", known_activations())
def test_known_activations_derivatives_match_finite_differences(name):
    act = get_activation(name)
    x = np.linspace(-2.3, 2.1, 9) + 0.0123  # avoid kinks at 0
    h = 1e-5
    for k in range(1, 4):
        if not act.derivative(k).is_regular or not act.derivative(k - 1).is_regular:
            continue
        f = act.numpy(k - 1)
        fd = (f(x + h) - f(x - h)) / (2 * h)
        np.testing.assert_allclose(act.numpy(k)(x), fd, rtol=1e-6, atol=1e-6)


def test_relu_distributional_derivatives():
    relu = get_activation("relu")
    assert relu.derivative(1).regular == sp.Heaviside(Z) and relu.derivative(1).is_regular
    d2 = relu.derivative(2)
    assert d2.regular == 0 and [(t.point, t.order, t.coeff) for t in d2.deltas] == [(0.0, 0, 1.0)]
    d3 = relu.derivative(3)
    assert [(t.point, t.order, t.coeff) for t in d3.deltas] == [(0.0, 1, 1.0)]
    assert relu.regular_order == 1 and relu.kinks == (0.0,) and relu.is_scale_invariant


def test_leaky_relu_and_custom_kinks():
    lr = get_activation({"name": "leaky_relu", "slope": 0.2})
    assert [(t.point, t.coeff) for t in lr.derivative(2).deltas] == [(0.0, pytest.approx(0.8))]
    sq = get_activation("Max(0, z)**2")  # C^1: σ'' jumps, σ''' = 2δ
    assert sq.regular_order == 2
    assert [(t.point, t.order, t.coeff) for t in sq.derivative(3).deltas] == [(0.0, 0, 2.0)]
    shifted = get_activation("Heaviside(z - 1)*(z - 1)")
    assert shifted.kinks == (1.0,)
    assert [(t.point, t.coeff) for t in shifted.derivative(2).deltas] == [(1.0, 1.0)]


def test_delta_identity_normalises_coefficients():
    # f(z) δ'(z) = f(0) δ'(z) - f'(0) δ(z): for σ = z² H(z) + z H(z) the third derivative
    act = get_activation("z**2*Heaviside(z) + z*Heaviside(z)")
    d3 = {(t.order): t.coeff for t in act.derivative(3).deltas}
    assert d3 == {0: 2.0, 1: 1.0}


def test_smooth_activations_are_smooth():
    for name in ("tanh", "erf", "gelu", "softplus", "swish", "sin", "linear"):
        act = get_activation(name)
        assert act.is_smooth and act.regular_order >= 4, name


def test_custom_expression():
    act = get_activation("z*tanh(z)")
    assert act(np.array([1.0])) == pytest.approx(math.tanh(1.0))
    assert "tanh" in act._repr_latex_()


@pytest.mark.parametrize("bad, match", [
    ("foo", "known names are"),
    ("x*tanh(x)", "expression in the variable z"),
    ("z*a", "single variable z"),
    ("log(z)", "not finite"),
    ("3", "known names"),
    ({"name": "nope"}, "unknown activation"),
    ({"name": "leaky_relu", "sharpness": 2}, "bad parameters"),
    ("Heaviside(z**2 - 1)", "kink"),
])
def test_bad_activations(bad, match):
    with pytest.raises(ActivationError, match=match):
        get_activation(bad)


def test_require_regular_names_the_problem():
    with pytest.raises(ActivationError, match="delta functions at z = \\[0.0\\]"):
        get_activation("relu").require_regular(2, "the tensor V")
    get_activation("tanh").require_regular(4, "anything")


def test_network_broadcast_and_layers():
    net = Network.create([3, 8, 5, 2], "tanh", C_W=[1.0, 1.5, 2.0], C_b=0.1)
    assert net.L == 3 and net.C_b == (0.1, 0.1, 0.1) and net.C_W == (1.0, 1.5, 2.0)
    lay = net.layer(2)
    assert (lay.fan_in, lay.width, lay.C_W) == (8, 5, 1.5)
    assert net.expansion_width(3) == 5
    t = net.truncate(2)
    assert t.widths == (3, 8, 5) and t.C_W == (1.0, 1.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[3, 0, 4]), "positive integer"),
    (dict(widths=[3, -2]), "positive integer"),
    (dict(widths=[3, 2.5]), "not an integer"),
    (dict(widths=[3]), "at least"),
    (dict(widths=5), "widths must be a list"),
    (dict(widths=[3, 4, 4], C_W=[1.0]), "1 entries but the network has L = 2"),
    (dict(widths=[3, 4], C_W=float("nan")), "finite"),
    (dict(widths=[3, 4], C_b=float("inf")), "finite"),
    (dict(widths=[3, 4], C_W=0.0), "must be > 0"),
    (dict(widths=[3, 4], lambda_b=-1.0), ">= 0"),
    (dict(widths=[3, 4], C_b="x"), "number"),
])
def test_bad_networks(kwargs, match):
    widths = kwargs.pop("widths")
    with pytest.raises(SpecError, match=match):
        Network.create(widths, "tanh", **kwargs)


def _cfg(**kw):
    return {**EXAMPLE_CONFIG, **kw}


@pytest.mark.parametrize("cfg, match", [
    (_cfg(inputs=[[1.0, float("nan")], [0.0, 1.0]]), "NaN or inf"),
    (_cfg(inputs=[[1.0, 2.0, 3.0]]), "n0 = widths\\[0\\] = 2"),
    (_cfg(inputs=[]), "non-empty"),
    (_cfg(layer=0), "layer must be an integer in 1..3"),
    (_cfg(layer=4), "layer must be an integer in 1..3"),
    (_cfg(tensors=["K", "Vee"]), "unknown tensor"),
    (_cfg(tensors=[]), "at least one"),
    (_cfg(samples=1), "at least 2"),
    (_cfg(samples=2.5), "integer"),
    (_cfg(seed=-1), "seed"),
    (_cfg(bogus=1), "unknown config key"),
    ({"widths": [2, 3]}, "missing the required key 'inputs'"),
    (_cfg(activation="z*q"), "single variable z"),
])
def test_bad_configs(cfg, match):
    with pytest.raises((SpecError, ActivationError), match=match):
        parse_request(cfg)


def test_request_defaults_and_order():
    req = parse_request({"widths": [2, 4, 6], "inputs": [[1, 2]], "tensors": ["Theta", "K", "K"]})
    assert req.layer == 2 and req.n == 4 and req.tensors == ("K", "Theta") and req.N == 1
    assert check_tensor_names(None) == ("K", "Theta")
    assert len(TENSOR_NAMES) == 15


def test_pointwise_derivatives_of_kinked_activations():
    """``derivatives="pointwise"``: each σ^{(k)} is its regular part (relu σ'' = σ‴ = 0), while
    products are still differentiated as distributions (d/dz H² = δ, Gaussian integration by
    parts stays exact); smooth activations are unchanged; bad values are refused."""
    import sympy as sp
    from feyntk.errors import ActivationError
    from feyntk.spec.activation import MAX_ORDER, Z, get_activation

    pw = get_activation({"name": "relu", "derivatives": "pointwise"})
    relu = get_activation("relu")
    assert pw.name == "relu[pointwise]" and pw != relu
    assert pw.derivative(1).regular == relu.derivative(1).regular == sp.Heaviside(Z)
    assert pw.derivative(2).expr() == 0 and pw.derivative(3).expr() == 0
    assert relu.derivative(2).deltas and relu.regular_order == 1
    assert pw.regular_order == MAX_ORDER                  # σ'' = 0 is an ordinary function
    assert pw.blob_factor((1, 1), 1).deltas == relu.blob_factor((1, 1), 1).deltas  # d/dz H = δ
    assert pw.blob_factor((2, 1), 0).expr() == 0 != relu.blob_factor((2, 1), 0).expr()
    assert get_activation({"name": "tanh", "derivatives": "pointwise"}) == get_activation("tanh")
    assert get_activation({"name": "leaky_relu", "slope": 0.1, "derivatives": "pointwise"}
                          ).derivative(2).expr() == 0
    with pytest.raises(ActivationError, match="derivatives must be one of"):
        get_activation({"name": "relu", "derivatives": "autodiff"})


def test_pointwise_relu_changes_only_what_needs_sigma_second_derivative():
    """K, Θ, V, A, B, Θ¹ need σ and σ' only: identical under both definitions; P, Q differ."""
    base = {"widths": [2, 8, 8, 8], "C_W": [1.5, 2.0, 1.8], "C_b": 0.1, "lambda_b": 0.1,
            "inputs": [[0.8, -0.2], [-0.3, 0.7]], "tensors": ["K", "Theta", "V", "A", "B",
                                                            "Theta1", "P", "Q"]}
    d = feyntk.predict({**base, "activation": "relu"})["tensors"]
    p = feyntk.predict({**base, "activation": {"name": "relu", "derivatives": "pointwise"}}
                       )["tensors"]
    for k in ("K", "Theta", "V", "A", "B", "Theta1"):
        np.testing.assert_allclose(p[k]["value"], d[k]["value"], rtol=1e-12, atol=1e-14)
    for k in ("P", "Q"):
        assert np.abs(np.asarray(p[k]["value"]) - d[k]["value"]).max() > 1e-2
