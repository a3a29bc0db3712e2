"""Trained relu networks against the 1/n theory: which kinked dNTK/ddNTK do they follow?

Real relu networks trained by autodiff (``feyntk.train_sample``; σ' = step is all that gradient
descent needs) are compared with the theory under both definitions of relu's higher derivatives
(:mod:`feyntk.spec.activation`): ``"pointwise"`` (σ'' = 0 almost everywhere, what autodiff sees)
and feyntk's ``"distributional"`` one (σ'' = δ, the β → ∞ limit of softplus_β). Measured
(tanh-like config of ``test_training_mc``, depth 3, n_L = 1, η = 0.5, 8000 networks per width):

* **T = 10 steps: neither.** n·(E[z_T] − μ_T) is not constant in n: it grows like √n
  (entry 0: 0.10, 0.53, 1.10, 1.54 ± 0.04…0.10 at n = 32, 64, 128, 256), so the finite-width
  correction of a trained relu ensemble is O(n^{-1/2}), not O(1/n), and no mean1 (the pointwise
  one is −0.147) can reproduce it. The cause: a hidden preactivation moves by Δz ~ n^{-1/2}
  during training, and the NTK changes by one unit each time a preactivation crosses the kink,
  a change of order P(|z| < |Δz|) ~ |Δz| instead of the Δz² of a smooth σ. The expansion
  signals it: the ddNTK correlators S, T, U contain δ(z)² at one sample under the
  distributional definition (feyntk refuses them; softplus_β's grow with β), and the pointwise
  definition drops the crossings altogether. The same estimator and config with tanh (the
  control) give a constant n·(E[z] − μ) that matches mean1 (``test_training_mc``).
* **T = 1 step**: only K¹/Θ¹, the dNTK (P, Q) and the ddNTK mean R enter; see
  ``test_one_step_relu`` for what the Monte Carlo decides there.
"""

from __future__ import annotations

import numpy as np
import pytest

import feyntk
from feyntk.numbers.infinite import infinite_kernels
from feyntk.training.compare import scaled_config, train_sweep
from feyntk.training.ensemble import parse_training
from feyntk.training.infinite import infinite_ensemble

BASE = {"C_W": [1.2, 1.5, 1.8], "C_b": 0.1, "lambda_W": [1.0, 0.7, 1.3],
        "lambda_b": [0.1, 0.2, 0.05], "inputs": [[0.8, -0.2], [-0.3, 0.7]],
        "train_inputs": [[1.0, 0.2], [-0.3, 1.0], [-0.8, -0.9]],
        "targets": [[0.5], [-0.3], [0.2]], "widths": [2, 32, 32, 1], "eta": 0.5}


def _mu(cfg):
    """Infinite-width trained mean (N_e, n_L) from the closed form (no 1/n tensors needed)."""
    req, xa, y, sched = parse_training(cfg)
    X = np.concatenate([req.inputs, xa])
    K, theta = infinite_kernels(req.network, X)
    ne = len(req.inputs)
    return infinite_ensemble(K, theta, np.arange(ne), np.arange(ne, len(X)), y, sched)[0]


def _sqrt_trend(ns, values, ses, mu):
    """Fit n·(E[z] − μ) = c + d·√n per entry (weighted least squares); returns d and se(d)."""
    ns = np.asarray(ns, float)
    y = ns[:, None, None] * (values - mu)
    s = ns[:, None, None] * ses
    X = np.stack([np.ones_like(ns), np.sqrt(ns)], axis=1)
    d, dse = np.empty(y.shape[1:]), np.empty(y.shape[1:])
    for idx in np.ndindex(*y.shape[1:]):
        w = 1.0 / s[(slice(None),) + idx] ** 2
        A = X.T @ (X * w[:, None])
        cov = np.linalg.inv(A)
        beta = cov @ (X.T @ (w * y[(slice(None),) + idx]))
        d[idx], dse[idx] = beta[1], np.sqrt(cov[1, 1])
    return d, dse


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_trained_relu_correction_is_not_one_over_n(activation):
    """After 10 steps, n·(E[z] − μ) grows like √n for relu (|d|/se > 5 in the largest entry) and
    is flat for tanh, the control with the same estimator and config (|d|/se < 3)."""
    cfg = {**BASE, "activation": activation, "steps": 10}
    ns = (32, 128)
    sweep = train_sweep(cfg, ns, samples=4000, seed=3)
    d, dse = _sqrt_trend(ns, sweep.values, sweep.ses, _mu(scaled_config(cfg, ns[0])))
    z = d / dse
    if activation == "relu":
        assert np.abs(z).max() > 5, z
    else:
        assert np.abs(z).max() < 3, z


def test_train_refuses_relu_with_the_reason():
    from feyntk.errors import NotAvailableError

    with pytest.raises(NotAvailableError, match=r"n\^\(-1/2\)"):
        feyntk.train({**BASE, "activation": "relu", "steps": 10})
    # depth 1 has no hidden kink: nothing to refuse, and the correction vanishes
    out = feyntk.train({**BASE, "activation": "relu", "steps": 10, "widths": [2, 1],
                        "C_W": 1.2, "lambda_W": 1.0, "lambda_b": 0.1})
    assert np.all(out["mean1"]["value"] == 0)


@pytest.mark.slow
def test_one_step_relu_rejects_pointwise():
    """One step: n·(E[z_1] − μ_1) is flat within errors over n = 32, 128 (1/n law), but its level
    is not the pointwise (σ'' = 0) mean1: measured −0.52 ± 0.04 (entry 0, n = 32, 32000 networks)
    against −0.314. Kink crossings move the one-step output by ρ(0)Δz²/2 per hidden unit, which
    σ'' = 0 drops."""
    cfg = {**BASE, "activation": "relu", "steps": 1}
    ns = (32, 128)
    sweep = train_sweep(cfg, ns, samples=32000, seed=5)
    mu = _mu(scaled_config(cfg, ns[0]))
    pw = feyntk.train({**scaled_config(cfg, ns[0]),
                       "activation": {"name": "relu", "derivatives": "pointwise"}})
    np.testing.assert_allclose(pw["mean"]["value"], mu, rtol=1e-10)
    d, dse = _sqrt_trend(ns, sweep.values, sweep.ses, mu)
    assert np.abs(d / dse).max() < 3, d / dse
    nb = np.asarray(ns, float)[:, None, None]
    y, s = nb * (sweep.values - mu), nb * sweep.ses
    w = 1 / s**2
    level, level_se = (w * y).sum(0) / w.sum(0), 1 / np.sqrt(w.sum(0))
    z = (level - pw["mean1"]["value"]) / level_se
    assert np.abs(z).max() > 4, z


@pytest.mark.slow
def test_relu_ddntk_part_of_softplus_limit_grows():
    """The distributional route to relu: softplus_β's ddNTK part of mean1 (one step) keeps
    growing with β (entry 1: 0.014, 0.079, 0.150 at β = 4, 16, 64; one step needs the ddNTK mean
    R, whose relu limit holds δ'(z)·H(z)³ at one sample, ill-defined), while the dNTK part
    converges (to 1e-2); relu itself is refused."""
    parts = []
    for beta in (16, 64):
        cfg = {**BASE, "activation": {"name": "softplus", "beta": beta}, "steps": 1}
        parts.append(feyntk.train(cfg)["mean1_parts"])
    dd = [np.abs(p["ddntk"]).max() for p in parts]
    dn = [p["dntk"] for p in parts]
    assert dd[1] > 1.5 * dd[0], dd
    assert np.abs(dn[1] - dn[0]).max() < 0.1 * np.abs(dn[1]).max(), dn
