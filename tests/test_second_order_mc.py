"""Second order against Monte Carlo of real networks (issue 18 item 4): V6 by the distinct-triple
estimator (:mod:`feyntk.validate.six_point`), K² and V¹ from width sweeps
(:func:`feyntk.validate.compare.second_order_sweep`). tanh, depth 3, one input."""

import itertools

import numpy as np
import pytest

import feyntk
from feyntk.validate.compare import Sweep, agreement, extrapolate, second_order_sweep
from feyntk.validate.sample import plan_sampling, sample_fields
from feyntk.validate.six_point import estimate_v6, triple_averages, v6_from_z

CFG = {"widths": [2, 8, 8, 8], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
       "inputs": [[1.0, 0.3]]}


def test_v6_estimator_equals_its_loop_definition():
    """Per-network power sums = means over ordered distinct triples/pairs (loops); across
    networks the U-statistics = means over distinct networks (loops); N = 2 inputs."""
    rng = np.random.default_rng(0)
    S, M, N, n = 7, 4, 2, 5
    z = rng.normal(size=(S, M, N)) + 0.3
    X = np.einsum("sia,sib->siab", z, z)
    A = np.array([np.mean([np.einsum("ab,cd,ef->abcdef", x[i], x[j], x[k])
                           for i, j, k in itertools.permutations(range(M), 3)], 0) for x in X])
    B = np.array([np.mean([np.einsum("ab,cd->abcd", x[i], x[j])
                           for i, j in itertools.permutations(range(M), 2)], 0) for x in X])
    C = X.mean(1)
    for s in range(S):
        got = triple_averages(z[s], np)
        np.testing.assert_allclose(got["A"], A[s], atol=1e-13)
        np.testing.assert_allclose(got["B"], B[s], atol=1e-13)
    BC = np.mean([np.einsum("abcd,ef->abcdef", B[s], C[t])
                  for s, t in itertools.permutations(range(S), 2)], 0)
    CCC = np.mean([np.einsum("ab,cd,ef->abcdef", C[s], C[t], C[u])
                   for s, t, u in itertools.permutations(range(S), 3)], 0)
    # κ(X1, X2, X3) = E[X1X2X3] − E[X1X2]E[X3] − E[X1X3]E[X2] − E[X2X3]E[X1] + 2E[X1]E[X2]E[X3]
    k3 = (A.mean(0) - BC - np.einsum("abefcd->abcdef", BC) - np.einsum("cdefab->abcdef", BC)
          + 2 * CCC)
    out = v6_from_z(z, n, blocks=3)
    np.testing.assert_allclose(out["value"], n * n * k3, atol=1e-12)
    assert out["se"].shape == (N,) * 6 and np.all(out["se"] > 0)


def test_estimate_v6_reads_the_sampled_networks():
    """estimate_v6 on sampled networks = v6_from_z on the same networks' z."""
    cfg = {**CFG, "widths": [2, 5, 5, 5], "inputs": [[1.0, 0.3], [-0.2, 0.8]], "samples": 300,
           "seed": 4}
    got = estimate_v6(cfg, blocks=10)
    req = feyntk.spec.config.parse_request(cfg)
    plan = plan_sampling(req.network, req.inputs, req.layer, ("z",))
    z = np.concatenate([a["z"] for _, a in sample_fields(plan, 300, 4)])
    want = v6_from_z(z, 5, blocks=10)
    np.testing.assert_allclose(got["tensors"]["V6"]["value"], want["value"], rtol=1e-10)
    np.testing.assert_allclose(got["tensors"]["V6"]["se"], want["se"], rtol=1e-10)
    assert got["neurons"] == 5 and got["n"] == 5


def _check(ns, samples, samples_v6, corrections):
    pred = {k: float(np.ravel(v["value"])[0]) for k, v in
            feyntk.predict({**CFG, "tensors": ["K2", "V1", "V6"]})["tensors"].items()}
    # V6 at every width (= V6 + O(1/n)) and its 1/n extrapolation
    vals, ses = [], []
    for k, n in enumerate(ns[:3] if samples_v6 is None else ns):
        out = estimate_v6({**CFG, "widths": [2, n, n, n], "samples": samples_v6 or samples,
                           "seed": 11 + k})["tensors"]["V6"]
        vals.append(float(out["value"].flat[0]))
        ses.append(float(out["se"].flat[0]))
    z6 = [(v - pred["V6"]) / s for v, s in zip(vals, ses)]
    assert max(map(abs, z6)) < 3, (vals, ses, pred["V6"])
    sw = Sweep("V6", np.array(ns[:len(vals)], float), np.array(vals), np.array(ses))
    z6fit = agreement(np.array(pred["V6"]), extrapolate(sw))["max_abs_z"]
    assert z6fit < 3, (z6fit, vals, ses)
    # K² and V¹ from the width sweep of E[zz] and n Cov
    r = second_order_sweep(CFG, ns, samples=samples, seed=3, corrections=corrections)
    zK, zV = float(r["K2"]["z"].flat[0]), float(r["V1"]["z"].flat[0])
    assert abs(zV) < 3 and abs(zK) < 3, (zK, zV)
    return {"V6": (vals, ses, z6, z6fit),
            "K2": (float(r["K2"]["fit"].value.flat[0]), float(r["K2"]["fit"].se.flat[0]), zK),
            "V1": (float(r["V1"]["fit"].value.flat[0]), float(r["V1"]["fit"].se.flat[0]), zV)}


def test_second_order_against_real_networks_reduced():
    """Default, reduced: n = 4, 6, 8, 12 (1.5·10⁵ networks each for K, V; V6 at n = 4, 6, 8 with
    1.5·10⁵). Predictions K² = −0.01156, V¹ = −0.01384, V6 = 0.07791. Measured (this seed):
    V6 0.145 ± 0.039, 0.042 ± 0.023, 0.060 ± 0.024 (z 1.70, −1.58, −0.72; the 1/n intercept
    |z| 1.86); V¹ fitted −0.057 ± 0.044 (z −0.98), K² 0.044 ± 0.075 (z 0.75): consistent at
    that precision, neither coefficient resolved (second_order_sweep states the networks that
    would take)."""
    out = _check((4, 6, 8, 12), 150_000, None, corrections=1)
    print(out)


@pytest.mark.slow
def test_second_order_against_real_networks_full():
    """Slow: n = 8, 12, 16, 24, 2·10⁶ networks per width for K, V and for V6 (4.4 min on 2 shared
    cores). Measured: V6 0.0781 ± 0.0068, 0.0837 ± 0.0083, 0.0711 ± 0.0106, 0.0668 ± 0.0093
    (z 0.03, 0.69, −0.64, −1.20; 1/n intercept |z| 1.02); V¹ 0.0004 ± 0.022 (z 0.65), K²
    0.018 ± 0.057 (z 0.52): consistent, K² and V¹ not resolved (their se is 4–5× their size)."""
    out = _check((8, 12, 16, 24), 2_000_000, 2_000_000, corrections=1)
    print(out)
