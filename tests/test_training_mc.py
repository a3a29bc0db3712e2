"""The trained-ensemble theory against real networks trained by gradient descent.

Monte Carlo (feyntk.train_sample: real finite networks, JAX autodiff, the variance-reduced
estimator f_T − f_0 + P f_0(A)) at several widths n = n_{L−1}, fitted per entry as
E[z](n) = T + c/n + d/n²: the intercept must match the infinite-width ``mean`` and the slope
``mean1`` within 3 standard errors, and the residual after subtracting both must fall like 1/n².
At n = 16 the 1/n² term is as large as the 1/n one (MATH.md §5: the expansion is in ℓ/n), which is
why the fit carries d/n² and why ``z_slope_fixed`` (n(E[z] − μ) = c + d/n, intercept held at the
exactly known μ) is the sharper test with few widths. ηλ_max(Θ_AA) ≤ 1 (MATH.md §7: near the
stability edge the expansion needs larger n).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import feyntk
from feyntk.training.compare import check_mean, scaled_config, train_sweep

BASE = {"C_W": [1.2, 1.5, 1.8], "C_b": 0.1, "lambda_W": [1.0, 0.7, 1.3],
        "lambda_b": [0.1, 0.2, 0.05], "inputs": [[0.8, -0.2], [-0.3, 0.7]],
        "train_inputs": [[1.0, 0.2], [-0.3, 1.0], [-0.8, -0.9]]}
TARGETS = [[0.5, -0.2], [-0.3, 0.4], [0.2, 0.1]]


def _config(activation, depth, nL, sched):
    return {**BASE, "activation": activation, "widths": [2] + [32] * (depth - 1) + [nL],
            "C_W": BASE["C_W"][:depth], "lambda_W": BASE["lambda_W"][:depth],
            "lambda_b": BASE["lambda_b"][:depth],
            "targets": [t[:nL] for t in TARGETS], **sched}


def _run(cfg, ns, samples, seed=0):
    theory = feyntk.train(scaled_config(cfg, ns[0]))
    sweep = train_sweep(cfg, ns, samples=samples, seed=seed)
    return theory, sweep, check_mean(sweep, theory["mean"]["value"], theory["mean1"]["value"],
                                     order=2 if len(ns) >= 4 else 1)


def test_trained_tanh_ensemble_mean_reduced():
    """Default-suite version: tanh, depth 3, n_L = 1, T = 10 steps, n = 32, 64, 128 (at n = 16
    the 1/n³ part of E[z] is still visible in the fixed-intercept fit: z ≈ 4 there)."""
    cfg = _config("tanh", 3, 1, {"steps": 10, "eta": 0.5})
    theory, sweep, res = _run(cfg, (32, 64, 128), samples=8000)
    assert np.abs(theory["mean1"]["value"]).max() > 0.05     # a visible 1/n effect
    assert np.abs(res["z_slope_fixed"]).max() < 3, res["z_slope_fixed"]
    # intercept of value = T + c/n over the three widths (its 1/n² bias is below its error)
    assert np.abs(res["z_intercept"]).max() < 3, res["z_intercept"]


T1, T5, T40, TINF = ({"steps": 1, "eta": 0.5}, {"steps": 5, "eta": 0.5},
                     {"steps": 40, "eta": 0.5}, {"steps": "inf", "eta": 0.5})
SLOW_CASES = [  # every activation meets every T; every (depth, n_L) meets both activations
    ("tanh", 3, 1, T1), ("tanh", 2, 2, T5), ("tanh", 3, 2, T40), ("tanh", 3, 1, TINF),
    ("gelu", 2, 2, T1), ("gelu", 3, 2, T5), ("gelu", 3, 1, T40), ("gelu", 2, 2, TINF),
]


@pytest.mark.slow
@pytest.mark.parametrize("activation, depth, nL, sched", SLOW_CASES,
                         ids=[f"{a}-d{d}-nL{m}-T{s['steps']}" for a, d, m, s in SLOW_CASES])
def test_trained_ensemble_mean_against_real_networks(activation, depth, nL, sched):
    ns = (16, 32, 64, 128)
    cfg = _config(activation, depth, nL, sched)
    theory, sweep, res = _run(cfg, ns, samples=16000, seed=7)
    assert np.abs(res["z_intercept"]).max() < 3, res["z_intercept"]
    assert np.abs(res["z_slope"]).max() < 3, res["z_slope"]
    assert np.abs(res["z_slope_fixed"]).max() < 3, res["z_slope_fixed"]
    # residual after μ + mean1/n: O(1/n²), so n²·residual stays bounded (no 1/n trend left)
    n2r = sweep.ns[:, None, None] ** 2 * res["residual"]
    n2se = sweep.ns[:, None, None] ** 2 * res["residual_se"]
    assert np.all(np.abs(n2r[-1]) < np.abs(n2r[0]) + 3 * (n2se[-1] + n2se[0]))


# -- the linear-response control variate (feyntk.training.control) -----------------------------
# The plain estimator's n-scaled error grows like √n (its per-network fluctuation is the network's
# own O(n^{-1/2}) NTK and dNTK); subtracting each network's linear response L to its initial
# fields leaves O(1/n) per network. Measured for tanh, depth 3, n_L = 2, T = 40 with 4000
# networks per width, n(E[z] − μ) − mean1 for the four entries:
#   n =  64: −0.092 ± 0.020, −0.012 ± 0.012, +0.008 ± 0.019, +0.000 ± 0.012
#   n = 128: −0.013 ± 0.018, −0.002 ± 0.009, +0.035 ± 0.016, −0.016 ± 0.009
#   n = 256: −0.014 ± 0.016, +0.001 ± 0.010, +0.022 ± 0.015, −0.010 ± 0.009
# (plain estimator at n = 256: se 0.098 on the first entry, 6× larger). The plain estimator's
# residual trend in this case (−0.108 … −0.055 over n = 16…128, README) was its heavy-tailed
# noise, not the theory: the controlled one sits on mean1 within 1–2 se from n = 128 on.

def _controlled_sweep(cfg, ns, samples, seed):
    from feyntk.training.control import controlled_mean1

    theory = feyntk.train(scaled_config(cfg, ns[0]))
    outs = [controlled_mean1(scaled_config(cfg, n), samples=samples, seed=seed + n,
                             theory=theory) for n in ns]
    return theory, outs


def test_controlled_trained_mean_reduced():
    """Default-suite version: tanh, depth 3, n_L = 2, T = 40 (the case the plain estimator left
    open), n = 64, 128, 1000 networks each. Checks: (1) the control variate's mean n·E[L]
    matches its theory (theta1 + dntk parts: Θ¹ and P, Q only) within 3 se on the same networks;
    (2) the controlled n(E[z] − μ) at n = 128 agrees with mean1 within 3 se (its 1/n² bias,
    ≈ 0.01 here, is below the se ≈ 0.035); (3) the control variate pays: its se is at least
    2× below the plain estimator's at n = 128 (measured ≈ 4×)."""
    cfg = _config("tanh", 3, 2, T40)
    theory, (o64, o128) = _controlled_sweep(cfg, (64, 128), samples=1000, seed=11)
    m1 = theory["mean1"]["value"]
    for o in (o64, o128):
        z_resp = (o["response"] - o["response_theory"]) / o["response_se"]
        assert np.abs(z_resp).max() < 3, z_resp
    z = (o128["mean1"] - m1) / o128["mean1_se"]
    assert np.abs(z).max() < 3, z
    assert np.all(o128["plain_se"] > 2 * o128["mean1_se"]), (o128["plain_se"], o128["mean1_se"])


@pytest.mark.slow
@pytest.mark.parametrize("activation, depth, nL", [("tanh", 3, 2), ("gelu", 3, 1)])
def test_controlled_trained_mean_long_training(activation, depth, nL):
    """The two T = 40 cases of the slow matrix with the control variate, n = 64, 128, 256 and
    4000 networks each: n(E[z] − μ) = c + d/n fitted over the three widths, c against mean1
    within 3 se, and at the two larger widths each point within 3 se of mean1 (the residual
    falls like 1/n²: no 1/n trend left)."""
    cfg = _config(activation, depth, nL, T40)
    ns = (64, 128, 256)
    theory, outs = _controlled_sweep(cfg, ns, samples=4000, seed=23)
    m1 = theory["mean1"]["value"]
    v = np.array([o["mean1"] for o in outs])
    s = np.array([o["mean1_se"] for o in outs])
    X = np.stack([np.ones(3), 1.0 / np.asarray(ns, float)], axis=1)
    for idx in np.ndindex(m1.shape):
        w = 1.0 / s[(slice(None),) + idx]
        coef, *_ = np.linalg.lstsq(X * w[:, None], v[(slice(None),) + idx] * w, rcond=None)
        cov = np.linalg.inv((X * w[:, None] ** 2).T @ X)
        assert abs(coef[0] - m1[idx]) < 3 * math.sqrt(cov[0, 0]), (idx, coef, m1[idx])
    z = (v[1:] - m1) / s[1:]
    assert np.abs(z).max() < 3, z


@pytest.mark.slow
def test_step_map_truncation_is_second_order():
    """The step map (feyntk.training.dynamics) drops the fourth derivatives of z and the ddNTK's
    change, claimed O(1/n²) in the mean. Each real network trained T = 40 steps is compared with
    F applied to its own initial fields (z, Ĥ, dĤ, ddÎ, ddÎÎ by autodiff): n·E[f_T − F] must
    fall like 1/n. Measured (tanh, depth 3, n_L = 2, 1200 networks, first entry): −0.066 ± 0.044
    at n = 64, −0.015 ± 0.009 at n = 128. A network whose truncated polynomial map diverges
    (1 of 1200 at n = 64, 3% at n = 32: F is a polynomial iterated 40 times) is dropped."""
    import jax
    import jax.numpy as jnp

    from feyntk.training import sample as ts
    from feyntk.training.dynamics import trained_outputs
    from feyntk.training.ensemble import parse_training
    from feyntk.validate.sample import (FieldSpec, forward, network_fields, network_key,
                                        sample_parameters)

    cfg = _config("tanh", 3, 2, T40)
    got = {}
    for n in (64, 128):
        req, xa, y, _ = parse_training(scaled_config(cfg, n))
        Ne, Na = len(req.inputs), len(xa)
        X = jnp.asarray(np.concatenate([req.inputs, xa]))
        F = trained_outputs("steps", 40, np.arange(Ne, Ne + Na), np.arange(Ne),
                            jnp.asarray(y.T), 0.5)
        fz = FieldSpec(req.network, 2, ("z",))
        ff = FieldSpec(req.network, 2, ("z", "H", "dH", "ddI", "ddII"))
        step = ts._step(fz, "gd", X[Ne:], jnp.asarray(y.T), 0.5)

        def one(key):
            th0 = sample_parameters(fz, key)
            fl = network_fields(ff, th0, X)
            g = F(fl["z"], fl["H"], fl["dH"], fl["ddI"], fl["ddII"])
            thT = jax.lax.fori_loop(0, 40, lambda _, t: step(t), th0)
            return forward(fz, thT, X)[:, :Ne] - g

        chunk = jax.jit(jax.vmap(one))
        d = np.concatenate([np.asarray(chunk(jax.vmap(lambda i: network_key(1000 + n, i))(
            jnp.arange(s, s + 8, dtype=jnp.uint32)))) for s in range(0, 1200, 8)])
        d = d[np.isfinite(d).all(axis=(1, 2))]
        assert len(d) > 1180
        got[n] = (n * d.mean(0), n * d.std(0, ddof=1) / math.sqrt(len(d)))
    (m64, s64), (m128, s128) = got[64], got[128]
    assert np.all(np.abs(m128) < 3 * s128 + 0.05 * 0.322), (m128, s128)   # ≤ 5% of mean1's scale
    # consistent with halving from n = 64 to 128 (1/n), not with staying flat
    assert np.all(np.abs(m128 - m64 / 2) < 3 * np.hypot(s128, s64 / 2)), (m64, m128)
