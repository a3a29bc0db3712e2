"""Trained ensembles (feyntk.training): infinite-width closed forms and the O(1/n) mean.

Oracles: the infinite-width mean and covariance are recomputed here independently (the linear
step map iterated T times on the affine map z_T = M z₀ + b, and scipy's expm for gradient flow);
the O(1/n) mean is computed by two independent routes (the iterated step map with exact forward
derivatives, and the closed-form time sums at T = ∞), whose agreement and limits are tested.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.linalg

from feyntk.errors import DegenerateKernelError, SpecError
from feyntk.numbers.result import InputSet, evaluate_statistics
from feyntk.spec.network import Network
from feyntk.training.converged import converged_correction
from feyntk.training.dynamics import mean_correction
from feyntk.training.ensemble import NEEDS, EXAMPLE_TRAIN_CONFIG, train
from feyntk.training.infinite import infinite_ensemble, spectrum
from feyntk.training.schedule import parse_schedule

XE = np.array([[1.0, 0.3], [-0.4, 0.9]])
XA = np.array([[1.0, 0.2], [-0.3, 1.0], [-0.8, -0.9]])
Y = np.array([[1.0, 0.2], [-0.5, 0.1], [0.3, -0.4]])


@pytest.fixture(scope="module")
def stats():
    net = Network.create([2, 16, 16, 2], "tanh", C_W=[1.2, 1.5, 1.8], C_b=0.1,
                         lambda_W=[1.0, 0.7, 1.3], lambda_b=[0.1, 0.2, 0.05])
    return evaluate_statistics(net, InputSet.of(eval=XE, train=XA), NEEDS)


def _blocks(stats):
    E, A = stats.block("eval"), stats.block("train")
    return stats["K"], stats["Theta"], E, A


def _correction(stats, sched):
    s = parse_schedule(sched)
    lam = spectrum(stats["Theta"][np.ix_(stats.block("train"), stats.block("train"))], s).lam
    if s.converged:
        return converged_correction(stats, s, Y, 2)
    return mean_correction(stats, s, Y, lam[-1], 2)


@pytest.mark.parametrize("sched", [{"steps": 0, "eta": 0.3}, {"steps": 7, "eta": 0.3},
                                   {"steps": 40, "eta": 0.6}, {"time": 2.5}, {"time": 0}])
def test_infinite_width_matches_iterated_linear_dynamics(stats, sched):
    K, Th, E, A = _blocks(stats)
    mean, cov = infinite_ensemble(K, Th, E, A, Y, parse_schedule(sched))
    # independent: z_T = M z0 + b with z0 ~ N(0, K) on E ∪ A, per output neuron
    idx = np.concatenate([E, A])
    nE, nA = len(E), len(A)
    Tfull = Th[np.ix_(idx, idx)]
    if "steps" in sched:
        M, b = np.eye(nE + nA), np.zeros((nE + nA, 2))
        for _ in range(sched["steps"]):           # z ← z − η Θ_{·A} (z_A − y)
            M = M - sched["eta"] * Tfull[:, nE:] @ M[nE:]
            b = b - sched["eta"] * Tfull[:, nE:] @ (b[nE:] - Y)
    else:                                         # ż = −Θ_{·A}(z_A − y): linear ODE, expm
        G = np.zeros((nE + nA + 2, nE + nA + 2))
        G[:nE + nA, nE:nE + nA] = -Tfull[:, nE:]
        G[:nE + nA, nE + nA:] = Tfull[:, nE:] @ Y
        Phi = scipy.linalg.expm(G * sched["time"])
        M, b = Phi[:nE + nA, :nE + nA], Phi[:nE + nA, nE + nA:]
    Kf = K[np.ix_(idx, idx)]
    assert np.abs(mean - b[:nE]).max() < 1e-10
    assert np.abs(cov - (M @ Kf @ M.T)[:nE, :nE]).max() < 1e-10


@pytest.mark.parametrize("sched", [{"steps": "inf", "eta": 0.5}, {"time": "inf"}])
def test_converged_mean_interpolates_and_covariance_vanishes_on_training_inputs(stats, sched):
    K, Th, E, A = _blocks(stats)
    mean, cov = infinite_ensemble(K, Th, A, A, Y, parse_schedule(sched))
    assert np.abs(mean - Y).max() < 1e-12
    assert np.abs(cov).max() < 1e-12
    # many steps approach the converged form
    many = infinite_ensemble(K, Th, E, A, Y, parse_schedule({"steps": 20000, "eta": 0.5}))[0]
    assert np.abs(many - infinite_ensemble(K, Th, E, A, Y, parse_schedule(sched))[0]).max() < 1e-10


def test_mean1_two_routes_agree_at_convergence(stats):
    """Closed form at T = ∞ (route 2) vs the iterated step map at large T (route 1)."""
    lam = np.linalg.eigvalsh(stats["Theta"][np.ix_(stats.block("train"), stats.block("train"))])
    eta = 0.9 / lam[-1]
    # slowest mode decays like (1 − ηλ_min)^T; the secular terms like T²(1 − ηλ_min)^T
    T = int(math.ceil(45 / -math.log(1 - eta * lam[0])))
    conv = _correction(stats, {"steps": "inf", "eta": eta})
    fin = _correction(stats, {"steps": T, "eta": eta})
    for part in ("theta1", "ntk_fluctuations", "dntk", "ddntk"):
        a, b = getattr(conv, part), getattr(fin, part)
        assert np.abs(a - b).max() < 1e-10 * max(1.0, np.abs(a).max()), part
    # the η dependence is real: another step size moves the converged dNTK/ddNTK parts
    other = _correction(stats, {"steps": "inf", "eta": 0.3 * eta})
    assert np.abs(other.dntk - conv.dntk).max() > 1e-3
    # frozen-NTK parts (Θ¹, A, B) of the converged mean do not depend on η
    assert np.abs(other.theta1 - conv.theta1).max() < 1e-12
    assert np.abs(other.ntk_fluctuations - conv.ntk_fluctuations).max() < 1e-12


def test_mean1_small_step_limit_is_gradient_flow(stats):
    """GD with ηT = t fixed approaches gradient flow linearly in η; at t = ∞ in closed form."""
    t = 1.5
    flow = _correction(stats, {"time": t}).total
    gd = [_correction(stats, {"steps": int(round(t / eta)), "eta": eta}).total
          for eta in (0.05, 0.025, 0.0125)]
    errs = [np.abs(g - flow).max() for g in gd]
    assert 0.4 < errs[1] / errs[0] < 0.6 and 0.4 < errs[2] / errs[1] < 0.6   # first order in η
    # Richardson: the O(η) term cancels, leaving O(η²), which falls by 4 when η halves
    rich = [np.abs(2 * gd[k + 1] - gd[k] - flow).max() for k in (0, 1)]
    assert rich[1] < 0.35 * rich[0] and rich[1] < 0.1 * errs[2]
    # converged flow: the closed form is the small-step limit of converged gradient descent
    conv = _correction(stats, {"time": "inf"}).total
    assert np.abs(_correction(stats, {"steps": "inf", "eta": 1e-3}).total - conv).max() \
        < 1e-2 * np.abs(conv).max()


@pytest.mark.slow
def test_converged_flow_closed_form_matches_long_rk4(stats):
    """t = ∞ closed form vs RK4 of the truncated flow to t = 25/λ_min (RK4 at hλ_max = 0.05
    leaves ~2e-7 relative once the secular terms t²e^{−λt} have grown it)."""
    lam = np.linalg.eigvalsh(stats["Theta"][np.ix_(stats.block("train"), stats.block("train"))])
    conv = _correction(stats, {"time": "inf"}).total
    long = _correction(stats, {"time": 25 / lam[0]}).total
    assert np.abs(conv - long).max() < 1e-6 * np.abs(conv).max()


def test_mean1_vanishes_where_it_must():
    base = dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 16, 16, 1], steps="inf")
    conv = train(dict(base, inputs=base["train_inputs"]))
    # converged training interpolates at every width: mean1 = 0 on the training inputs
    assert np.abs(conv["mean"]["value"] - np.array(base["targets"])).max() < 1e-12
    assert np.abs(conv["mean1"]["value"]).max() < 1e-8
    # depth 1: the network is linear in its parameters, nothing is O(1/n)
    shallow = train(dict(base, widths=[2, 1], steps=5))
    assert np.all(shallow["mean1"]["value"] == 0)


def test_train_contract_and_json(tmp_path):
    from feyntk.api import dumps
    from feyntk.cli import main

    res = train(dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 16, 16, 1]))
    assert set(res) >= {"n", "layer", "mean", "mean1", "cov"}
    assert res["n"] == 16 and res["layer"] == 3
    assert res["mean"]["value"].shape == (2, 1) and res["mean1"]["value"].shape == (2, 1)
    assert res["cov"]["value"].shape == (2, 2)
    total = sum(res["mean1_parts"].values())
    assert np.allclose(total, res["mean1"]["value"], atol=1e-15)
    cfg = tmp_path / "t.json"
    cfg.write_text(json.dumps(dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 16, 16, 1])))
    out = tmp_path / "o.json"
    assert main(["train", str(cfg), "-o", str(out)]) == 0
    back = json.loads(out.read_text())
    assert np.allclose(back["mean1"]["value"], res["mean1"]["value"], rtol=1e-12)
    assert json.loads(dumps(res))["cov"]["value"] == back["cov"]["value"]


@pytest.mark.parametrize("change, match", [
    ({"eta": 5.0}, "stability limit"),
    ({"time": 1.0}, "both 'steps' and 'time'"),
    ({"steps": None}, "neither"),
    ({"train_inputs": [[1.0, 0.3], [1.0, 0.3], [0.5, -1.0]]}, "singular"),
    ({"targets": [[0.5, 1.0], [-0.3, 1.0], [0.2, 1.0]]}, r"shape \(N_A, n_L\) = \(3, 1\)"),
    ({"targets": [[0.5], [float("nan")], [0.2]]}, "finite"),
    ({"train_inputs": [[1.0, 0.3], [float("nan"), 1.0], [0.5, -1.0]]},
     r"train_inputs \[1\] contain NaN"),
    ({"train_inputs": [[1.0, 0.3, 0.0]]}, "each of the train_inputs must have n0"),
    ({"layer": 2}, "layer must be L"),
    ({"steps": -1}, "integer >= 0"),
    ({"eta": 0}, "eta must be"),
])
def test_bad_training_configs_are_refused(change, match):
    cfg = dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 8, 8, 1])
    for k, v in change.items():
        if v is None:
            cfg.pop(k)
            cfg.pop("eta", None)
        else:
            cfg[k] = v
    with pytest.raises((SpecError, DegenerateKernelError), match=match):
        train(cfg)


def test_cli_train_help_and_example(capsys):
    from feyntk.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    assert "train_inputs" in text and "steps" in text and "2/λ_max" in text
    assert main(["example", "--train"]) == 0
    assert json.loads(capsys.readouterr().out) == EXAMPLE_TRAIN_CONFIG


def test_too_large_training_request_is_refused_before_allocating():
    from feyntk.errors import MemoryBudgetError

    cfg = dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 8, 8, 1])
    with pytest.raises(MemoryBudgetError, match="max_memory_bytes"):
        train(cfg, max_memory_bytes=10_000)
    big = dict(cfg, widths=[2, 8, 8, 10], inputs=[[0.1 * k, 1.0] for k in range(40)],
               targets=[[0.0] * 10] * 3)
    with pytest.raises(MemoryBudgetError, match="GiB"):
        train(big)
