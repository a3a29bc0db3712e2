"""``feyntk predict`` with the second-order names K2, V1, V6 (issue 18 item 3).

Contract (MATH.md §7, n = n_{layer-1}): ``K2`` is the coefficient of 1/n² in
E[z_{i;a1} z_{i;a2}] = K + K1/n + K2/n², ``V1`` the coefficient of 1/n in
n·Cov[z_i z_i, z_j z_j] = V + V1/n (i ≠ j), ``V6`` the coefficient of 1/n² in the joint cumulant
of z_{i;a1} z_{i;a2} z_{j;a3} z_{j;a4} z_{k;a5} z_{k;a6} (i, j, k distinct), a rank-6 array
[a1, …, a6]. They are evaluated by the numpy oracle :mod:`feyntk.numbers.second_order`; the
first-order names of the same request keep their own route and numbers.

Checked here through :func:`feyntk.predict` and ``feyntk predict`` (JSON round trip):

* equal to :func:`feyntk.numbers.second_order.evaluate` called directly (tanh, two inputs);
* the closed forms of tests/test_second_order.py: deep linear (C_W = 1) and relu at criticality
  (C_W = 2), C_b = 0, one input, equal widths n: with L' = ℓ − 1 layers below,
  K1 = K2 = 0, V = a L' K², V1 = a² C(L', 2) K², V6 = K³ (c L' + 6 a² C(L', 2)),
  (a, c) = (2, 8) linear, (5, 44) relu; to 1e-10;
* first-order values unchanged when second-order names are requested alongside;
* memory refusal before allocating (V6 holds N^6 entries), explicit numba/jax refused,
  bad names refused with the list of known names.
"""

import json
import math

import numpy as np
import pytest

import feyntk
from feyntk.cli import main
from feyntk.errors import DegenerateKernelError, MemoryBudgetError, NotAvailableError, SpecError
from feyntk.numbers.second_order import evaluate
from feyntk.spec.config import parse_request
from feyntk.spec.network import Network
from feyntk.spec.statistic import REGISTRY, TENSOR_NAMES

TANH = {"widths": [2, 7, 9, 6], "activation": "tanh", "C_W": 1.4, "C_b": 0.15,
        "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[1.0, 0.3], [-0.4, 0.9]], "layer": 3}
SECOND = ["K2", "V1", "V6"]


def _close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= tol * scale, np.abs(a - b).max() / scale


@pytest.fixture(scope="module")
def direct():
    """numbers/second_order.py evaluated directly on TANH."""
    net = Network.create(TANH["widths"], TANH["activation"], C_W=TANH["C_W"], C_b=TANH["C_b"])
    return evaluate(net, TANH["inputs"], SECOND, TANH["layer"])


@pytest.fixture(scope="module")
def predicted():
    return feyntk.predict({**TANH, "tensors": ["K", "K1", "V", *SECOND]})


def test_predict_equals_second_order_engine_directly(direct, predicted):
    res = predicted
    assert res["n"] == 9 and res["layer"] == 3
    assert list(res["tensors"]) == ["K", "K1", "V", "K2", "V1", "V6"]
    assert res["tensors"]["V6"]["value"].shape == (2,) * 6
    assert res["tensors"]["V1"]["value"].shape == (2,) * 4
    assert res["tensors"]["K2"]["value"].shape == (2, 2)
    for name in SECOND:
        assert np.abs(direct[name]).max() > 1e-3
        _close(res["tensors"][name]["value"], direct[name])
    # the first-order names of the request (generated kernels under "auto") agree with the
    # second-order engine's own dependencies
    for name in ("K", "K1", "V"):
        _close(res["tensors"][name]["value"], direct["layers"][3][name])
    assert res["quadrature"]["setting"] == "default"


def test_first_order_unchanged_when_second_order_requested(predicted):
    for backend in ("auto", "numpy"):
        alone = feyntk.predict({**TANH, "tensors": ["K", "K1", "V"]}, backend=backend)
        both = (predicted if backend == "auto" else
                feyntk.predict({**TANH, "tensors": ["K", "K1", "V", "K2"]}, backend=backend))
        for name in ("K", "K1", "V"):
            assert np.array_equal(both["tensors"][name]["value"],
                                  alone["tensors"][name]["value"]), (backend, name)


def test_cli_json_round_trip(tmp_path, predicted, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({**TANH, "tensors": ["V6", "K", "K2", "V1", "V", "K1"]}))
    out = tmp_path / "out.json"
    assert main(["predict", str(cfg), "-o", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 9 and res["layer"] == 3
    assert list(res["tensors"]) == ["K", "K1", "V", "K2", "V1", "V6"]
    for name, entry in res["tensors"].items():
        assert set(entry) == {"value"}
        _close(entry["value"], predicted["tensors"][name]["value"], tol=1e-15)
    assert np.asarray(res["tensors"]["V6"]["value"]).shape == (2,) * 6
    # numpy backend through the CLI: the same numbers
    assert main(["predict", str(cfg), "--backend", "numpy"]) == 0
    res2 = json.loads(capsys.readouterr().out)
    for name in SECOND:
        _close(res2["tensors"][name]["value"], predicted["tensors"][name]["value"], tol=1e-15)


def closed_form(a, c, K, layer):
    """Equal widths, C_b = 0, one input (tests/test_second_order.py ``closed_forms``)."""
    L = layer - 1
    return {"K1": 0.0, "K2": 0.0, "V": a * L * K ** 2, "V1": a ** 2 * math.comb(L, 2) * K ** 2,
            "V6": K ** 3 * (c * L + 6 * a ** 2 * math.comb(L, 2))}


@pytest.mark.parametrize("act,C_W,a,c", [("linear", 1.0, 2, 8), ("relu", 2.0, 5, 44)])
def test_closed_forms_deep_linear_and_relu_at_criticality(act, C_W, a, c, tmp_path):
    cfg = {"widths": [3, 8, 8, 8, 8], "activation": act, "C_W": C_W, "C_b": 0.0,
           "inputs": [[0.7, -0.2, 1.1]], "tensors": ["K", "K1", "V", *SECOND]}
    for layer in (1, 2, 4):
        res = feyntk.predict({**cfg, "layer": layer})["tensors"]
        K = float(res["K"]["value"][0, 0])
        for name, want in closed_form(a, c, K, layer).items():
            got = float(np.asarray(res[name]["value"]).flat[0])
            assert got == pytest.approx(want, rel=1e-10, abs=1e-10 * K ** 3), (act, layer, name)
    # layer 4: V1 = a² C(3,2) K², V6 = (3c + 18a²) K³, both nonzero
    assert float(res["V6"]["value"].flat[0]) == pytest.approx((3 * c + 18 * a * a) * K ** 3,
                                                              rel=1e-10)
    # the CLI gives the same numbers (JSON round trip)
    p = tmp_path / "c.json"
    p.write_text(json.dumps({**cfg, "layer": 4}))
    out = tmp_path / "o.json"
    assert main(["predict", str(p), "-o", str(out)]) == 0
    js = json.loads(out.read_text())["tensors"]
    for name in SECOND:
        assert np.asarray(js[name]["value"]).flat[0] == pytest.approx(
            float(res[name]["value"].flat[0]), rel=1e-15, abs=1e-300)


def test_repeated_inputs_are_evaluated_once(direct):
    res = feyntk.predict({**TANH, "inputs": [TANH["inputs"][0], TANH["inputs"][1],
                                             TANH["inputs"][0]], "tensors": ["V1", "V6"]})
    inv = np.array([0, 1, 0])
    _close(res["tensors"]["V6"]["value"], direct["V6"][np.ix_(*[inv] * 6)])
    _close(res["tensors"]["V1"]["value"], direct["V1"][np.ix_(*[inv] * 4)])


def test_memory_refused_before_allocating():
    x = np.random.default_rng(0).normal(size=(40, 2)).tolist()
    with pytest.raises(MemoryBudgetError, match="rank-6"):
        feyntk.predict({**TANH, "inputs": x, "tensors": ["V6"]})
    # also when a first-order name comes with it (the refusal comes before any evaluation)
    with pytest.raises(MemoryBudgetError, match="V6"):
        feyntk.predict({**TANH, "inputs": x, "tensors": ["K", "V6"]})
    with pytest.raises(MemoryBudgetError, match="max_memory_bytes"):
        feyntk.predict({**TANH, "tensors": ["V6"]}, max_memory_bytes=100)


def test_explicit_generated_backends_refused():
    for backend in ("numba", "jax"):
        with pytest.raises(NotAvailableError, match="read one layer-ℓ tensor.*numpy"):
            feyntk.predict({**TANH, "tensors": ["K", "K2"]}, backend=backend)


def test_names_refused_and_listed(tmp_path, capsys):
    for bad in (["K", "V7"], ["k2"], ["V6", "v1"]):
        with pytest.raises(SpecError, match="known tensors: K, K1, V, .*U, K2, V1, V6"):
            parse_request({**TANH, "tensors": bad})
    assert len(TENSOR_NAMES) == 15 and "K2" not in TENSOR_NAMES and "V6" not in REGISTRY
    assert parse_request({**TANH, "tensors": ["V6", "K", "K2", "K"]}).tensors == ("K", "K2", "V6")
    p = tmp_path / "bad.json"
    p.write_text(json.dumps({**TANH, "tensors": ["V7"]}))
    assert main(["predict", str(p)]) == 2
    assert "K2, V1, V6" in capsys.readouterr().err
    # K2, V1 are width-sweep coefficients: sample refuses them (exit 2), naming the sweep
    for name in ("K2", "V1"):
        with pytest.raises(NotAvailableError, match="second_order_sweep"):
            feyntk.sample({**TANH, "tensors": ["K", name]}, samples=10)
    p.write_text(json.dumps({**TANH, "tensors": ["K2"]}))
    assert main(["sample", str(p), "-q"]) == 2
    assert "at one width" in capsys.readouterr().err
    with pytest.raises(NotAvailableError, match="symmetrized"):
        feyntk.predict({**TANH, "tensors": ["K2"], "group": {"name": "flip"},
                        "symmetrize": True})


def test_help_and_diagram_orders(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "K2, V1, V6" in text and "coefficient of 1/n²" in text
    for name, order in (("K", "1"), ("V", "1/n"), ("K2", "1/n^2"), ("V6", "1/n^2")):
        assert main(["diagrams", name]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.endswith(f"diagrams at order {order}"), first


def test_kinked_activations():
    """relu with two inputs: the engine integrates the distributional derivatives (both forms
    agree); a zero-variance input is refused with the engine's message."""
    cfg = {"widths": [2, 6, 6, 6], "activation": "relu", "C_W": 2.0, "C_b": 0.1,
           "inputs": [[1.0, 0.3], [-0.4, 0.9]], "layer": 3, "tensors": ["K2", "V1"]}
    d = feyntk.predict(cfg, form="derivative")["tensors"]
    h = feyntk.predict(cfg, form="inverse-metric")["tensors"]
    for name in ("K2", "V1"):
        assert np.abs(d[name]["value"]).max() > 1e-4
        _close(h[name]["value"], d[name]["value"], tol=1e-8)
    zero = {**cfg, "widths": [2, 6, 6], "C_b": 0.0, "inputs": [[0.0, 0.0], [1.0, 0.3]],
            "layer": 2, "tensors": ["V6"]}
    for form, match in (("derivative", "perfectly correlated"), ("inverse-metric", "singular")):
        with pytest.raises(DegenerateKernelError, match=match):
            feyntk.predict(zero, form=form)


def test_sample_serves_v6_with_first_order_names():
    """``feyntk sample`` with V6 among first-order names: the same numbers as the two
    estimators called alone on the same networks (V6 from feyntk.validate.six_point), in the
    request's canonical order; the merged result keeps the sample contract."""
    from feyntk.validate.estimators import estimate
    from feyntk.validate.six_point import estimate_v6

    cfg = {**TANH, "inputs": [[1.0, 0.3]], "tensors": ["V6", "K"], "samples": 600, "seed": 3}
    out = feyntk.sample(cfg)
    assert list(out["tensors"]) == ["K", "V6"] and list(out["notes"]) == ["K", "V6"]
    assert out["tensors"]["V6"]["value"].shape == (1,) * 6
    alone_v6 = estimate_v6(cfg)["tensors"]["V6"]
    alone_k = estimate(parse_request({**cfg, "tensors": ["K"]}))["tensors"]["K"]
    for got, ref in ((out["tensors"]["V6"], alone_v6), (out["tensors"]["K"], alone_k)):
        np.testing.assert_array_equal(got["value"], ref["value"])
        np.testing.assert_array_equal(got["se"], ref["se"])
    assert out["samples"] == 600 and out["seed"] == 3 and "triples" in out["notes"]["V6"]
