"""One gradient-descent step: predicted mean NTK change vs real networks taking the step."""

import numpy as np
import pytest

from feyntk.errors import SpecError
from feyntk.numbers.training import predict_ntk_step
from feyntk.spec.network import Network
from feyntk.validate.training import measure_ntk_step

XE = np.array([[1.0, 0.3]])
XT = np.array([[-0.4, 0.9]])
Y = np.array([[0.8, -0.5]])


def _net(n, act="tanh"):
    return Network.create([2, n, n, 2], act, C_W=[1.2, 1.5, 1.3], C_b=0.1, lambda_W=1.0,
                          lambda_b=[0.2, 0.1, 0.3])


def test_first_layer_and_bad_targets():
    net = Network.create([2, 3], "tanh")
    p = predict_ntk_step(net, XE, XT, [[0.1, 0.2, 0.3]])
    assert np.all(p.first == 0) and np.all(p.second == 0)
    with pytest.raises(SpecError, match="targets"):
        predict_ntk_step(_net(8), XE, XT, [[0.1]])


@pytest.mark.parametrize("n", [16, 32])
def test_one_step_matches_monte_carlo(n):
    net = _net(n)
    pred = predict_ntk_step(net, XE, XT, Y)
    mc = measure_ntk_step(net, XE, XT, Y, samples=3000, seed=n, etas=(0.1, 0.2))
    for p, m, se in ((pred.first, mc.first, mc.first_se), (pred.second, mc.second, mc.second_se)):
        z = (m - p) / se
        assert np.abs(z).max() < 3.5, z
        assert np.abs(m / se).max() > 4  # the O(η) and the O(η²) parts are each resolved
    for k, eta in enumerate(mc.etas):
        z = (mc.change[k] - pred.change(eta)) / mc.change_se[k]
        assert np.abs(z).max() < 3.5, (eta, z)


@pytest.mark.slow
@pytest.mark.parametrize("act", ["tanh", "gelu"])
def test_one_step_extrapolated_over_widths_slow(act):
    """High statistics resolve the O(1/n) correction to the 1/n coefficient at a single width,
    so the slow check fits n·(measured change) = T + c/n over three widths and compares T."""
    from feyntk.validate.compare import Sweep, agreement, extrapolate

    ns = [16, 32, 64]
    pred = predict_ntk_step(_net(16, act), XE, XT, Y)
    mcs = [measure_ntk_step(_net(n, act), XE, XT, Y, samples=20000, seed=n) for n in ns]
    for attr in ("first", "second"):
        vals = np.stack([getattr(m, attr) * n for m, n in zip(mcs, ns)])
        ses = np.stack([getattr(m, attr + "_se") * n for m, n in zip(mcs, ns)])
        fit = extrapolate(Sweep(attr, np.array(ns, float), vals, ses))
        z = agreement(getattr(pred, attr) * pred.n, fit)["z"]
        assert np.abs(z).max() < 3.5, (attr, z)
