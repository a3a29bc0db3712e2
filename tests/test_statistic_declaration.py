"""One declaration per statistic: a toy statistic declared here, in one place, is derived by the
diagram engine, evaluated and estimated by Monte Carlo end to end, and the registry is restored.

The toy is the same-neuron cumulant ``G_{a1a2a3a4} = n κ(Ĥ_{ii;a1a2}, z_{i;a3}, z_{i;a4})``. It is
not one of the fifteen, and not a vertex (neuron i occurs four times), but MATH.md §3–4.2 say
what it must be: ``G = D_{a1a2a3a4} + F_{a1a3a2a4} + F_{a1a4a2a3}``, which the engine never
sees as such — it derives G's recursion from G's correlator alone.
"""

import itertools

import numpy as np
import pytest

import feyntk
from feyntk.diagrams.vertices import insertions, means
from feyntk.errors import NotAvailableError, SpecError
from feyntk.spec.config import parse_request
from feyntk.spec.statistic import REGISTRY, TENSOR_NAMES, Statistic, registered, registry_token

TOY = Statistic.declare("G", r"\mathcal{G}", "H_{ii;a1a2} z_{i;a3} z_{i;a4}", 1)
"""The whole declaration of the toy statistic."""

CFG = {"widths": [2, 7, 9, 6], "activation": "tanh", "C_W": 1.4, "C_b": 0.15, "lambda_W": 0.9,
       "lambda_b": 0.2, "layer": 3, "inputs": [[1.0, 0.3], [-0.4, 0.9]]}


def _same_neuron(D, F):
    """D_{a1a2a3a4} + F_{a1a3a2a4} + F_{a1a4a2a3} as an array over (a1, a2, a3, a4)."""
    return D + np.einsum("acbd->abcd", F) + np.einsum("adbc->abcd", F)


@pytest.fixture
def toy():
    before = (dict(REGISTRY), registry_token(), insertions())
    with registered(TOY):
        yield TOY
    assert (dict(REGISTRY), registry_token(), insertions()) == before


def test_toy_is_derived_from_its_declaration(toy):
    from feyntk.api import derivable
    from feyntk.diagrams.diagram import diagrams, sigma_order_needed
    from feyntk.kernels.lower import symmetries
    from feyntk.recursions.recursion import recursion
    from feyntk.spec.statistic import symmetry_group
    from feyntk.validate.estimators import ESTIMATORS

    assert "G" in TENSOR_NAMES and "G" in derivable() and len(TENSOR_NAMES) == 16
    assert toy.rank == 4 and toy.fields == ("H", "z") and toy.sigma_order == 1
    # index symmetries from the correlator, and the same from the recursion's terms
    group = {(0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2)}
    assert set(symmetry_group("G")) == group == set(symmetries(["G"])["G"])
    # not a vertex: the layer-ℓ vertices and means are those of the fifteen
    assert [v.name for v in insertions()] == ["K1", "V", "Theta1", "AB", "DF", "PQ", "R", "STU"]
    assert means() == {"H": "Theta"}
    # its recursion reads the layer-ℓ D and F through the DF vertex, printed with its symbol
    assert {"D", "F", "Theta"} <= {t for d in diagrams("G") for t in d.tensors}
    assert r"\mathcal{G}" in recursion("G").latex()
    assert sigma_order_needed("G", "inverse-metric") <= sigma_order_needed("G", "derivative")
    # the Monte Carlo estimator: one neuron, minus the product of its two even blocks
    est = ESTIMATORS["G"]
    assert (est.a, est.product, est.offset, est.perm, est.pairs) == (
        "H[ii]z[i]z[i]", ("H[ii]", "z[i]z[i]"), None, None, False)


def test_toy_predict_is_the_same_neuron_cumulant(toy):
    out = feyntk.predict({**CFG, "tensors": ["G", "D", "F"]}, backend="numpy")
    G, D, F = (out["tensors"][k]["value"] for k in "GDF")
    assert G.shape == (2,) * 4 and np.abs(G).max() > 0.1
    np.testing.assert_allclose(G, _same_neuron(D, F), rtol=1e-12, atol=1e-13)
    # the generated kernels (their cache key covers the declaration) agree with the oracle
    fast = feyntk.predict({**CFG, "tensors": ["G"]}, backend="numba")
    np.testing.assert_allclose(fast["tensors"]["G"]["value"], G, rtol=1e-12, atol=1e-13)


def test_toy_estimator_matches_its_definition(toy):
    """On synthetic fields the derived estimator is n (E[H_ii z_i z_i] − E[H_ii] E[z_i z_i])."""
    from feyntk.validate.estimators import estimate_from_fields

    rng = np.random.default_rng(0)
    S, M, N, n = 4, 3, 2, 5
    z, H = rng.normal(size=(S, M, N)), rng.normal(size=(S, M, M, N, N))
    got = estimate_from_fields({"z": z, "H": H}, ["G"], n)["G"]
    a = np.zeros((S,) + (N,) * 4)
    for s, i, idx in itertools.product(range(S), range(M), itertools.product(range(N), repeat=4)):
        a1, a2, a3, a4 = idx
        a[(s,) + idx] += H[s, i, i, a1, a2] * z[s, i, a3] * z[s, i, a4] / M
    x = np.einsum("siiab->sab", H) / M
    y = np.einsum("sia,sib->sab", z, z) / M
    ustat = (np.einsum("sab,tcd->abcd", x, y) - np.einsum("sab,scd->abcd", x, y)) / (S * S - S)
    np.testing.assert_allclose(got["value"], n * (a.mean(0) - ustat), atol=1e-12)
    assert np.all(got["se"] > 0)


def test_toy_monte_carlo_agrees_with_prediction(toy):
    """Real sampled networks (layer 2, n = 16, 600 networks): the estimate of G agrees with the
    prediction within the statistical error plus the O(1/n) finite-width shift."""
    cfg = {**CFG, "widths": [2, 16, 16], "layer": 2, "tensors": ["G"]}
    mc = feyntk.sample(cfg, samples=600, seed=1)
    assert mc["neurons"] >= 1 and "U-statistic" in mc["notes"]["G"]
    pred = feyntk.predict(cfg, backend="numpy")["tensors"]["G"]["value"]
    value, se = mc["tensors"]["G"]["value"], mc["tensors"]["G"]["se"]
    assert np.all(se > 0)
    assert np.all(np.abs(value - pred) < 4 * se + 0.1 * np.abs(pred)), (value, se, pred)


def test_registry_is_restored_after_the_block():
    with registered(TOY):
        assert "G" in REGISTRY
    assert "G" not in REGISTRY and len(TENSOR_NAMES) == 15
    with pytest.raises(SpecError, match="unknown tensor"):
        parse_request({**CFG, "tensors": ["G"]})
    from feyntk.diagrams.diagram import diagrams

    with pytest.raises(NotAvailableError):
        diagrams("G")
    # restored even when the block raises
    with pytest.raises(RuntimeError):
        with registered(TOY):
            raise RuntimeError
    assert "G" not in REGISTRY


def test_declarations_are_checked_against_each_other():
    before = (dict(REGISTRY), insertions())
    # F under another name covers the same neuron pattern of the (H, z, z) vertex twice
    twin = Statistic.declare("F2", "F_2", "H_{ij;a1a2} z_{i;a3} z_{j;a4}", 1, "a1 a3 a2 a4")
    with pytest.raises(SpecError, match="declared twice"):
        with registered(twin):
            pass
    # a vertex whose other neuron patterns nobody declares would silently lose contributions
    lone = Statistic.declare("X", "X", "H_{ij;a1a2} z_{i;a3} z_{j;a4} z_{k;a5} z_{k;a6}", 1)
    with pytest.raises(SpecError, match="none of the declared"):
        with registered(lone):
            pass
    with pytest.raises(SpecError, match="already declared"):
        with registered(Statistic.declare("V", "V", "z_{i;a1} z_{i;a2}", 1)):
            pass
    assert (dict(REGISTRY), insertions()) == before
    with pytest.raises(SpecError, match="odd number"):
        Statistic.declare("Y", "Y", "H_{ij;a1a2}", 1)
    with pytest.raises(SpecError, match="unknown field"):
        Statistic.declare("Y", "Y", "W_{i;a1}", 1)
    with pytest.raises(SpecError, match="index order"):
        Statistic.declare("Y", "Y", "z_{i;a1} z_{i;a2}", 1, "a1 a3")
