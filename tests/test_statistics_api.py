"""feyntk.statistics: predict and sample results as a Statistics that knows its inputs and axes."""

import numpy as np
import pytest

import feyntk
from feyntk.errors import SpecError
from feyntk.numbers.result import InputSet, Statistics, evaluate_statistics
from feyntk.spec.config import parse_request

CFG = {"widths": [2, 8, 8, 2], "activation": "tanh", "C_W": [1.2, 1.5, 1.3], "C_b": 0.1,
       "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[0.8, -0.2], [-0.3, 0.7]],
       "tensors": ["K", "Theta", "P", "Q"]}


def test_theory_statistics_equal_predict_and_the_training_route():
    stats = feyntk.statistics(CFG)
    out = feyntk.predict(CFG)
    assert stats.layer == out["layer"] == 3 and stats.n == out["n"] == 8
    assert stats.inputs.N == 2 and list(stats.inputs.index("inputs")) == [0, 1]
    assert stats.axes("P") == ("a0", "a1", "a2", "a3") and not stats.errors
    for name in CFG["tensors"]:
        np.testing.assert_array_equal(stats[name], out["tensors"][name]["value"])
    # the expectation of fields with explicit neuron labels, summing the declared δ-terms, is
    # the one the training code uses (evaluate_statistics), here n E[dĤ_{i0 i1 i2} z_{i3}]
    req = parse_request(CFG)
    ref = evaluate_statistics(req.network, InputSet.of(inputs=req.inputs), ["K", "Theta", "P",
                                                                           "Q"], 3)
    np.testing.assert_allclose(stats.cumulant("PQ", 2), ref.cumulant("PQ", 2), rtol=1e-12,
                               atol=1e-15)
    # δ-structure (MATH.md §3: E[dĤ_{i0i1i2} z_{i3}] = (1/n)[δ_{i0i3}δ_{i1i2} P + δ_{i0i1}δ_{i2i3} Q
    # + δ_{i0i2}δ_{i1i3} Q_{α0α2α1α3}]): Σ_j n E[dĤ_{iij} z_j] = P + n_L Q + Q_{α0α2α1α3}
    pq = stats.cumulant("PQ", 2)
    summed = sum(pq[0, 0, j, j] for j in range(2))
    expect = stats["P"] + 2 * stats["Q"] + stats["Q"].transpose(0, 2, 1, 3)
    np.testing.assert_allclose(summed, expect, rtol=1e-12, atol=1e-15)


def test_sampled_statistics_carry_standard_errors():
    stats = feyntk.statistics({**CFG, "tensors": ["K", "P"]}, samples=200, seed=3)
    assert set(stats.errors) == {"K", "P"}
    assert stats.errors["P"].shape == stats["P"].shape and np.all(stats.errors["P"] >= 0)
    with pytest.raises(SpecError, match="standard error of K"):
        Statistics(stats.inputs, 3, 8, {"K": stats["K"]}, {"K": np.zeros(3)})
