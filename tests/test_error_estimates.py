"""Honesty of the quadrature error estimate (issue 17, item 3): per integral, the rate-based
extrapolation bounds the true error of the accepted level and is within 100× of it; per tensor,
predict's propagated estimate brackets the error measured against a much finer rule
(measured ≤ estimate ≤ 100 × measured, or both at rounding) on a reduced set of the
configurations of ``benchmarks/bench_error_estimates.py``; the warning stays silent where the
measured tensor error is far below QUAD_WARN."""

import warnings

import numpy as np
import pytest

import feyntk
from feyntk.errors import QuadratureWarning
from feyntk.numbers.driver import evaluate
from feyntk.numbers.gaussian import QUAD_WARN, QuadratureReport, expect
from feyntk.numbers.gaussian import relu as relu_closed
from feyntk.spec.config import parse_request

REF_FINE = 3
"""The reference: the caps 2^3 = 8× the default (4-d: 384 nodes per direction, 3-d: 1024)."""
ROUNDING = 1e-13
"""Measured relative error at or below which a tensor is exact to rounding."""
BRACKET = 100.0
TANH = ["K", "K1", "V", "Theta", "Theta1", "A", "B", "D", "F", "P", "Q", "R", "S", "T", "U"]


def _tanh4(kind):
    t = np.tanh
    if kind == 0:
        return lambda z: t(z[:, 0]) * t(z[:, 1]) * t(z[:, 2]) * t(z[:, 3])
    return lambda z: ((1 - t(z[:, 0])**2) * (1 - t(z[:, 1])**2) * t(z[:, 2]) * t(z[:, 3]))


@pytest.mark.parametrize("scale,kind", [(1.0, 0), (2.0, 1), (4.0, 1)])
def test_capped_integral_estimate_brackets_the_true_error(scale, kind):
    """4-sample tanh integrands stopped at m = 48 (levels 12-24-48): the true error (against
    m = 192) ≤ the reported estimate ≤ 100 × the true error."""
    x = np.random.default_rng(0).normal(size=(4, 10))
    K = scale * x @ x.T / 10
    f = _tanh4(kind)
    ref = float(expect(f, K, m=192, m_max=192, rtol=0, atol=0).value)
    rep = QuadratureReport()
    got = expect(f, K, m=12, m_max=48, rtol=0, atol=0, report=rep)
    true = abs(float(got.value) - ref) / abs(float(got.value))
    assert rep.capped == 1 and true > 1e-13
    assert true <= rep.max_rel_error <= 100 * true, (true, rep)


def test_no_warning_where_the_measured_error_is_small():
    """tanh, N = 4, depth 3 (C_W = 1): integrals stop at the cap, yet the tensors move by
    < 1e-8 under doubled caps; the estimate stays below QUAD_WARN (no warning) and above that
    move."""
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(4, 3))
    x *= np.sqrt(3) / np.linalg.norm(x, axis=1, keepdims=True)
    cfg = {"widths": [3, 64, 64, 64], "activation": "tanh", "C_W": 1.0, "C_b": 0.0,
           "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": ["V", "A", "U"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuadratureWarning)
        out = feyntk.predict(cfg)
    fine = feyntk.predict(cfg, quadrature="fine")
    q = out["quadrature"]
    moved = max(np.abs(np.asarray(out["tensors"][t]["value"]) -
                       np.asarray(fine["tensors"][t]["value"])).max() /
                np.abs(np.asarray(fine["tensors"][t]["value"])).max() for t in cfg["tensors"])
    assert q["capped_integrals"] > 0 and moved < 1e-8
    assert moved <= q["max_rel_error_estimate"] < QUAD_WARN


def _config(act: str, N: int, depth: int, tensors) -> dict:
    """The benchmark's configuration: N inputs on the sphere of radius √3 in 3 dimensions."""
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(N, 3))
    x *= np.sqrt(3) / np.linalg.norm(x, axis=1, keepdims=True)
    C_W = 2.0 if act == "relu" else 1.0
    return {"widths": [3] + [64] * depth, "activation": act, "C_W": C_W, "C_b": 0.0,
            "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": list(tensors)}


def dishonest(out: dict, ref: dict, fired: bool) -> list[str]:
    """Where predict's per-tensor estimates fail the bracket against the reference tensors
    (measured ≤ estimate ≤ BRACKET × measured above rounding; estimate ≤ BRACKET × ROUNDING
    where measured is at rounding), or where the warning disagrees with the estimates."""
    est = out["quadrature"]["tensor_rel_error_estimates"]
    bad = []
    for t, r in ref.items():
        scale = np.abs(r).max()
        meas = np.abs(np.asarray(out["tensors"][t]["value"]) - r).max() / scale
        e = est[t]
        if meas > ROUNDING and not meas <= e <= BRACKET * meas:
            bad.append(f"{t}: estimate {e:.2e}, measured {meas:.2e}")
        if meas <= ROUNDING and e > BRACKET * ROUNDING:
            bad.append(f"{t}: measured at rounding ({meas:.1e}), estimate {e:.2e}")
    if fired != (max(est.values()) > QUAD_WARN):
        bad.append(f"warning fired: {fired}, largest estimate {max(est.values()):.1e}")
    return bad


@pytest.mark.parametrize("act, N, depth, quadrature, tensors, conical", [
    ("tanh", 4, 3, "default", TANH, False),  # capped 4-sample integrals, ratios 8-35
    ("tanh", 4, 3, "fine", TANH, False),  # at rounding (the per-integral 6e-11 was not)
    ("tanh", 4, 10, "default", ["V", "A", "D", "U"], False),  # later layers damp the errors
    ("gelu", 4, 3, "default", ["V", "A", "R", "U"], False),  # capped, yet exact to rounding
    ("relu", 4, 3, "default", ["V"], True),  # the conical rule's capped 4-d integrals
])
def test_tensor_estimates_bracket_the_measured_error(act, N, depth, quadrature, tensors,
                                                     conical, monkeypatch):
    """Rows of the benchmark's table, reduced: predict's ``tensor_rel_error_estimates`` against
    the same recursion with 8× the caps (relu on the conical rule: against its closed forms)."""
    cfg = _config(act, N, depth, tensors)
    req = parse_request(cfg)
    ref = evaluate(req.network, req.inputs, req.tensors, req.layer, fine=REF_FINE)
    if conical:
        monkeypatch.setattr(relu_closed, "ENABLED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QuadratureWarning)
        out = feyntk.predict(cfg, quadrature=quadrature)
    fired = any("stopped at the largest" in str(w.message) for w in caught)
    assert out["quadrature"]["capped_integrals"] > 0  # the estimate has work to do
    assert not dishonest(out, ref, fired), (dishonest(out, ref, fired), out["quadrature"])


def test_the_bracket_check_fails_a_dishonest_estimate():
    """The check above can fail: the same tensors with an estimate 1000× too large, too small,
    or a silent loud estimate."""
    ref = {"V": np.array([1.0, 2.0])}
    out = {"tensors": {"V": {"value": np.array([1.0, 2.0 + 2e-8])}},
           "quadrature": {"tensor_rel_error_estimates": {"V": 1e-8}}}
    assert not dishonest(out, ref, False)
    for e in (1e-5, 1e-11):
        out["quadrature"]["tensor_rel_error_estimates"]["V"] = e
        assert dishonest(out, ref, False)
    out["quadrature"]["tensor_rel_error_estimates"]["V"] = 1e-3
    assert dishonest(out, ref, False)
    out["tensors"]["V"]["value"] = ref["V"]
    out["quadrature"]["tensor_rel_error_estimates"]["V"] = 1e-10
    assert dishonest(out, ref, False)
