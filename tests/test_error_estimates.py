"""Honesty of the quadrature error estimate (issue 17, item 3): per integral, the rate-based
extrapolation bounds the true error of the accepted level and is within 100× of it; the
predict-level warning stays silent where the measured tensor error is far below QUAD_WARN."""

import warnings

import numpy as np
import pytest

import feyntk
from feyntk.errors import QuadratureWarning
from feyntk.numbers.gaussian import QUAD_WARN, QuadratureReport, expect


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
