"""Predictions against Monte Carlo of real sampled networks (MATH.md §5).

Each check samples networks at several widths with the width ratios fixed, extrapolates the
estimates with ``value(n) = T + c/n`` and compares T with the engine's prediction in units of its
standard error. Every distinct tensor entry must lie within 3.5 se (3 se per entry with a
margin for the ~10-40 entries tested jointly). Default runs are reduced but still resolve the
1/n effects; the ``slow`` ones use more widths and networks and also check that the residual
``MC − (leading + 1/n term)`` falls like 1/n².
"""

import numpy as np
import pytest

import feyntk
from feyntk.validate.compare import agreement, extrapolate, residuals, width_sweep

Z_MAX = 3.5


def _distinct(a: np.ndarray) -> np.ndarray:
    """Entries up to exact floating-point duplicates (symmetric copies are not independent)."""
    flat = np.round(a.ravel(), 12)
    _, idx = np.unique(flat, return_index=True)
    return np.sort(idx)


def _check(cfg, ns, samples, names, *, slope_of=None):
    pred = feyntk.predict({**cfg, "tensors": sorted(set(names) | set((slope_of or {}).values()))})
    sweeps = width_sweep({**cfg, "tensors": list(names)}, ns, samples=samples)
    report = {}
    for name in names:
        fit = extrapolate(sweeps[name])
        p = np.asarray(pred["tensors"][name]["value"])
        slope = None
        if slope_of and name in slope_of:
            slope = np.asarray(pred["tensors"][slope_of[name]]["value"])
        a = agreement(p, fit, slope_prediction=slope)
        keep = _distinct(p)
        report[name] = float(np.abs(a["z"].ravel()[keep]).max())
        assert report[name] < Z_MAX, (name, a["z"], fit.intercept, p)
        if slope is not None:
            zs = float(np.abs(a["z_slope"].ravel()[keep]).max())
            assert zs < Z_MAX, (name, "slope", a["z_slope"])
    return report, sweeps, pred


TANH = {"widths": [2, 20, 30, 24], "activation": "tanh", "C_W": [1.2, 1.6, 1.4],
        "C_b": [0.1, 0.0, 0.2], "lambda_W": [1.0, 0.5, 1.5], "lambda_b": [0.2, 0.1, 0.0],
        "inputs": [[1.0, 0.3], [-0.4, 0.9]], "layer": 3, "seed": 11}


def test_tanh_default():
    _check(TANH, [10, 20, 40], 3000, ["K", "Theta", "V", "A", "B", "D", "F"],
           slope_of={"K": "K1", "Theta": "Theta1"})


def test_deep_linear_dntk_default():
    """σ'' = 0: P = 0 exactly; Q as the engine predicts (deep linear, single input)."""
    cfg = {"widths": [2, 10, 10, 10], "activation": "linear", "inputs": [[0.9, 0.4]],
           "layer": 3, "seed": 5}
    _check(cfg, [8, 16], 3000, ["P", "Q", "F", "D"])


@pytest.mark.slow
@pytest.mark.parametrize("act, extra", [
    ("tanh", {}), ("gelu", {}), ("erf", {}), ("relu", {"C_W": 2.0, "C_b": 0.0}),
])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_all_tensors_slow(act, extra, depth):
    widths = [2, 24, 36, 30, 24][: depth + 1]
    cfg = {"widths": widths, "activation": act, "C_W": [1.3, 1.5, 1.2, 1.4][:depth],
           "C_b": [0.1, 0.0, 0.2, 0.1][:depth], "lambda_W": [1.0, 0.6, 1.4, 1.0][:depth],
           "lambda_b": [0.2, 0.1, 0.0, 0.3][:depth],
           "inputs": [[1.0, 0.3], [-0.4, 0.9], [0.5, -0.7]][: 3 if depth < 4 else 2],
           "layer": depth, "seed": 100 + depth, **extra}
    names = ["K", "Theta", "V", "A", "B", "D", "F"] + (["P", "Q"] if act != "relu" else [])
    _check(cfg, [16, 32, 64], 6000, names, slope_of={"K": "K1", "Theta": "Theta1"})


@pytest.mark.slow
def test_residual_falls_like_one_over_n_squared():
    cfg = {**TANH, "tensors": ["V", "F"]}
    ns = [16, 32, 64, 128]
    pred = feyntk.predict(cfg)
    sweeps = width_sweep(cfg, ns, samples=20000)
    for name in ("V", "F"):
        res, se = residuals(sweeps[name], np.asarray(pred["tensors"][name]["value"]))
        r = np.abs(res[:, 0, 0, 0, 0])
        # n² · residual stays bounded while n grows eightfold (1/n would grow it 8x)
        scaled = r * np.array(ns) ** 2
        assert scaled[-1] < 4 * max(scaled[0], 4 * se[0, 0, 0, 0, 0] * ns[0] ** 2), scaled
