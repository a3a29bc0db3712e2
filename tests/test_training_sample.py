"""Monte Carlo of trained finite-width ensembles (feyntk.training.sample, MATH.md §7)."""

import math

import numpy as np
import pytest

from feyntk.errors import FeyntkError, MemoryBudgetError, SpecError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.network import Network
from feyntk.training.infinite import infinite_ensemble
import feyntk.training.sample as sample_module
from feyntk.training.sample import train_sample_network
from feyntk.training.schedule import Schedule

XA = np.array([[1.0, 0.2], [-0.5, 0.8], [0.3, -1.1]])
XE = np.array([[0.4, 0.5], [-0.9, -0.3]])
Y = np.array([[0.7], [-0.4], [0.2]])


def _kernels(net, xe, xa):
    K, th = infinite_kernels(net, np.concatenate([xe, xa]))
    e, a = np.arange(len(xe)), len(xe) + np.arange(len(xa))
    return K, th, e, a


def _lmax(net, xa):
    return np.linalg.eigvalsh(infinite_kernels(net, xa)[1])[-1]


def _deep(n, act="tanh", depth=2):
    return Network.create([2] + [n] * depth + [1], act, C_W=1.5, C_b=0.1, lambda_b=0.1)


def test_deterministic_and_independent_of_chunk(monkeypatch):
    net = _deep(16)
    eta = 1.0 / _lmax(net, XA)
    for sch in (Schedule("steps", steps=30, eta=eta), Schedule("steps", steps=None, eta=eta)):
        r1 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=3, chunk=3)
        r2 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=3, chunk=3)
        r3 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=3, chunk=8)
        for k in ("mean", "mean_se", "cov", "cov_se", "plain_mean", "plain_mean_se"):
            assert np.array_equal(r1[k], r2[k]), k
            np.testing.assert_allclose(r1[k], r3[k], rtol=0, atol=1e-12, err_msg=k)
    sch = Schedule("steps", steps=30, eta=eta)
    r1 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=3, chunk=8)
    monkeypatch.setattr(sample_module, "FIXED_BLOCK", 7)   # T = 30 run as 7+7+7+7+2 steps
    r3 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=3, chunk=8)
    np.testing.assert_allclose(r1["plain_mean"], r3["plain_mean"], rtol=0, atol=1e-12)
    r4 = train_sample_network(net, XE, XA, Y, sch, samples=10, seed=4, chunk=8)
    assert not np.allclose(r4["plain_mean"], r3["plain_mean"])
    assert r1["samples"] == 10 and r1["seed"] == 3 and r1["n"] == 16
    assert r1["mean"].shape == (2, 1) and r1["cov"].shape == (2, 2)


def test_variance_reduction_is_unbiased_and_smaller():
    net = _deep(64)
    sch = Schedule("steps", steps=40, eta=1.0 / _lmax(net, XA))
    r = train_sample_network(net, XE, XA, Y, sch, samples=600, seed=1)
    z = (r["mean"] - r["plain_mean"]) / np.hypot(r["mean_se"], r["plain_mean_se"])
    assert np.abs(z).max() < 4, z
    assert np.all(r["mean_se"] < 0.5 * r["plain_mean_se"]), (r["mean_se"], r["plain_mean_se"])
    # the finite-width mean is near the infinite-width one (an O(1/n) shift)
    mu, _ = infinite_ensemble(*_kernels(net, XE, XA), Y, sch)
    assert np.abs(r["mean"] - mu).max() < 0.1


LINEAR = Network.create([3, 2], "tanh", C_W=1.3, C_b=0.2, lambda_W=1.0, lambda_b=0.5)
XA3 = np.array([[1.0, 0.2, -0.3], [-0.5, 0.8, 0.4], [0.3, -1.1, 0.9]])
XE3 = np.array([[0.4, 0.5, 0.1], [-0.9, -0.3, 0.6]])
Y3 = np.array([[0.7, -0.2], [-0.4, 0.5], [0.2, 0.9]])


@pytest.mark.parametrize("kind", ["steps", "steps_inf", "flow", "flow_inf"])
def test_depth_one_is_exactly_linear_dynamics(kind):
    """At depth 1 z is linear in θ with the constant NTK Θ: every network's g equals P y."""
    lmax = _lmax(LINEAR, XA3)
    sch = {"steps": Schedule("steps", steps=7, eta=1.0 / lmax),
           "steps_inf": Schedule("steps", steps=None, eta=1.0 / lmax),
           "flow": Schedule("flow", time=1.3 / lmax),
           "flow_inf": Schedule("flow", time=math.inf)}[kind]
    r = train_sample_network(LINEAR, XE3, XA3, Y3, sch, samples=400, seed=2)
    mu, cov = infinite_ensemble(*_kernels(LINEAR, XE3, XA3), Y3, sch)
    tol = 1e-7 if kind == "flow" else 1e-10        # RK4 at h·λ_max = 0.05: error ≲ 2e-8
    np.testing.assert_allclose(r["mean"], mu, rtol=0, atol=tol)
    assert r["mean_se"].max() < tol
    assert np.abs((r["cov"] - cov) / r["cov_se"]).max() < 4
    if sch.converged:
        assert r["max_residual"] < 1e-12


def test_zero_steps_is_the_prior():
    net = _deep(64)
    r = train_sample_network(net, XE, XA, Y, Schedule("steps", steps=0, eta=0.1), samples=800)
    assert np.all(r["mean"] == 0) and np.all(r["mean_se"] == 0)
    K, _, e, _ = _kernels(net, XE, XA)
    assert np.abs((r["cov"] - K[np.ix_(e, e)]) / r["cov_se"]).max() < 4
    r = train_sample_network(net, XE, XA, Y, Schedule("flow", time=0.0), samples=4)
    assert np.all(r["mean"] == 0)


def test_converged_networks_interpolate():
    net = _deep(32, depth=1)
    for sch in (Schedule("steps", steps=None, eta=1.0 / _lmax(net, XA)),
                Schedule("flow", time=math.inf)):
        r = train_sample_network(net, XA, XA, Y, sch, samples=6)
        np.testing.assert_allclose(r["mean"], Y, rtol=0, atol=1e-8)
        np.testing.assert_allclose(r["plain_mean"], Y, rtol=0, atol=1e-8)
        assert np.abs(r["cov"]).max() < 1e-16
        assert r["max_residual"] < 1e-12 and r["steps"] % 256 == 0


def test_bad_input():
    net = _deep(8)
    sch = Schedule("steps", steps=5, eta=0.1)
    with pytest.raises(SpecError, match=r"targets must have shape \(N_A, n_L\) = \(3, 1\)"):
        train_sample_network(net, XE, XA, np.zeros((3, 2)), sch, samples=4)
    with pytest.raises(SpecError, match="NaN"):
        train_sample_network(net, XE, XA, [[0.1], [np.nan], [0.2]], sch, samples=4)
    for s in (1, 2.5, True):
        with pytest.raises(SpecError, match="samples must be an integer >= 2"):
            train_sample_network(net, XE, XA, Y, sch, samples=s)
    with pytest.raises(SpecError, match="stability limit"):
        train_sample_network(net, XE, XA, Y, Schedule("steps", steps=5, eta=2.5 / _lmax(net, XA)),
                             samples=4)
    with pytest.raises(MemoryBudgetError, match="chunk = 64"):
        train_sample_network(net, XE, XA, Y, sch, samples=100, chunk=64, max_memory_bytes=10**5)
    with pytest.raises(MemoryBudgetError):
        train_sample_network(net, XE, XA, Y, sch, samples=100, max_memory_bytes=1000)
    with pytest.raises(SpecError, match="Schedule"):
        train_sample_network(net, XE, XA, Y, {"steps": 5, "eta": 0.1}, samples=4)


def test_divergence_and_the_step_cap_are_reported(monkeypatch):
    net = _deep(4, act="linear")   # tanh networks at the edge are caught back (catapult)
    for steps in (None, 1000):
        sch = Schedule("steps", steps=steps, eta=1.99 / _lmax(net, XA))
        with pytest.raises(FeyntkError, match="stability edge"):
            train_sample_network(net, XE, XA, Y, sch, samples=64, seed=0)
    monkeypatch.setattr(sample_module, "MAX_STEPS", 512)
    sch = Schedule("steps", steps=None, eta=0.01 / _lmax(net, XA))
    with pytest.warns(RuntimeWarning, match="not converged after 512 steps"):
        r = train_sample_network(net, XE, XA, Y, sch, samples=4)
    assert r["steps"] == 512 and r["max_residual"] > 1e-6
