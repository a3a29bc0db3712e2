"""The layer driver (issue 19 item 3): one loop, one hyperparameter mapping, one memory model,
with the numpy oracle, the generated kernels and the infinite-width kernels behind one
interface."""

import numpy as np
import pytest

from feyntk.errors import MemoryBudgetError
from feyntk.kernels.engine import KernelStep
from feyntk.numbers import driver
from feyntk.numbers.evaluate import OracleStep
from feyntk.numbers.infinite import InfiniteStep, kernel_layers
from feyntk.numbers.repeated import expand_samples
from feyntk.spec.network import Network

NET = Network.create([2, 3, 6, 4], "tanh", C_W=[1.1, 1.6, 1.3], C_b=[0.2, 0.1, 0.0],
                     lambda_W=[1.0, 0.5, 2.0], lambda_b=[0.3, 0.0, 0.1])
X = np.array([[1.0, 0.3], [-0.4, 0.9]])


def test_hyper_is_the_layer_and_its_width_ratio():
    for l in (1, 2, 3):
        hp, lay = driver.hyper(NET, l), NET.layer(l)
        assert (hp.index, hp.C_W, hp.C_b, hp.lambda_W, hp.lambda_b) == \
            (l, lay.C_W, lay.C_b, lay.lambda_W, lay.lambda_b)
    assert driver.hyper(NET, 1).ratio == 1.0
    assert driver.hyper(NET, 2).ratio == 3 / 2 and driver.hyper(NET, 3).ratio == 6 / 3
    K, T = driver.first_kernels(NET, X)
    gram = X @ X.T / 2
    np.testing.assert_array_equal(K, 0.2 + 1.1 * gram)
    np.testing.assert_array_equal(T, 0.3 + 1.0 * gram)


class Recorder:
    """A toy LayerStep: records the maps it is asked for; the state is the layer's K."""

    originals = None

    def __init__(self, copies=1):
        self.calls, self.copies = [], copies

    def memory(self, N):
        return 8 * self.copies * N * N, "kernels"

    def start(self, network, x):
        return driver.first_kernels(network, x)[0]

    def step(self, state, hp):
        self.calls.append((hp.index, hp.ratio))
        return hp.C_b + hp.C_W * state


def test_run_visits_every_layer_map_once_in_order():
    rec = Recorder()
    states = driver.run(NET, X, 3, rec, keep=True)
    assert rec.calls == [(2, 1.5), (3, 2.0)] and len(states) == 3
    np.testing.assert_allclose(states[2], 0.0 + 1.3 * (0.1 + 1.6 * states[0]))


def test_on_distinct_dedups_names_originals_and_checks_memory():
    rec = Recorder()
    x = X[[0, 1, 0]]
    out = driver.on_distinct(x, rec, lambda u: driver.run(NET, u, 2, rec),
                             lambda a, rep: expand_samples(a, rep.inverse), what="toy",
                             output_ranks=(2,))
    assert out.shape == (3, 3) and rec.originals == (0, 1)
    np.testing.assert_array_equal(out[0], out[2])
    with pytest.raises(MemoryBudgetError, match=r"toy for N = 3 inputs \(2 distinct\)"):
        driver.on_distinct(x, Recorder(), None, None, what="toy", output_ranks=(2,),
                           budget=8 * 3 * 3 - 1)
    with pytest.raises(MemoryBudgetError, match=r"toy for N = 2 distinct inputs .*kernels"):
        driver.on_distinct(x, Recorder(copies=3), None, None, what="toy", output_ranks=(2,),
                           budget=8 * 3 * 3)


def test_backends_are_layer_steps_behind_one_rule():
    closure = ("K", "V")
    assert isinstance(driver.make_step("numpy", closure, "derivative", NET.activation),
                      OracleStep)
    assert isinstance(driver.make_step("numba", closure, "derivative", NET.activation),
                      KernelStep)
    assert driver.choose_backend("auto") in driver.available_backends()
    out = {b: driver.evaluate(NET, X, ["V", "Theta"], backend=b) for b in ("numpy", "numba")}
    for n in ("V", "Theta"):
        np.testing.assert_allclose(out["numba"][n], out["numpy"][n], rtol=1e-10, atol=1e-12)


def test_infinite_kernels_are_a_layer_step_with_the_same_memory_model():
    step = InfiniteStep(NET.activation, True, "auto", 3)
    assert step.memory(5)[0] == driver.array_bytes((2,) * 4, 5, copies=3)
    lay = kernel_layers(NET, X)
    np.testing.assert_allclose(lay[-1].K, driver.evaluate(NET, X, ["K"], backend="numpy")["K"],
                               rtol=1e-10)
    with pytest.raises(MemoryBudgetError, match="infinite-width kernels up to layer 3"):
        kernel_layers(NET, np.random.default_rng(0).standard_normal((20, 2)),
                      max_memory_bytes=1000)
