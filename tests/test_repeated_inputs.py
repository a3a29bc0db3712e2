"""Repeated inputs (issue 17, item 4): exact duplicates are evaluated once, rows repeated.

Checked: the tensors over inputs with a duplicate equal those over the distinct inputs expanded
(every tensor, both forms, numpy / numba / JAX), and — where the direct evaluation at the
singular K works (tanh, derivative form) — they equal it to quadrature accuracy, an
independent check that every axis is a sample axis expanded in MATH.md's index order; so does
the equivariance of every derivable tensor under a permutation of the inputs. Configurations
refused today only for their duplicates (relu's δ-terms, the inverse-metric form's K⁻¹) now
work; merely collinear inputs are refused as before, naming the original input indices; the
memory check counts the distinct inputs; every consumer (predict, evaluate_statistics,
infinite_kernels, train) sees the expanded results.
"""

import numpy as np
import pytest

import feyntk
from feyntk.api import derivable
from feyntk.diagrams.diagram import correlator
from feyntk.errors import ActivationError, DegenerateKernelError, MemoryBudgetError
from feyntk.kernels import engine
from feyntk.numbers import evaluate as oracle_mod
from feyntk.numbers.infinite import infinite_kernels, kernel_layers
from feyntk.numbers.repeated import expand_samples, find_repeats, relabel
from feyntk.numbers.result import InputSet, evaluate_statistics
from feyntk.spec.network import Network
from feyntk.spec.statistic import get_statistic

RELU = ("K", "K1", "V", "Theta", "Theta1", "A", "B", "D", "F", "P", "Q")
"""Everything relu defines (R, S, T, U need δ'·H at coinciding samples)."""

DISTINCT = np.array([[1.0, 0.3], [-0.4, 0.9], [0.2, -0.7]])
WITH_REPEAT = DISTINCT[[0, 1, 0, 2]]  # N = 3 distinct + 1 duplicate, not at the end
INVERSE = np.array([0, 1, 0, 2])


def _net(act, C_b=0.1):
    return Network.create([2, 8, 6, 7], act, C_W=[1.4, 1.6, 1.5], C_b=C_b,
                          lambda_W=[1.0, 0.7, 1.2], lambda_b=0.1)


def _expanded(values, inverse=INVERSE):
    return {k: v[np.ix_(*[inverse] * v.ndim)] for k, v in values.items()}


def _assert_close(a, b, names, rtol):
    for n in names:
        scale = max(1.0, float(np.max(np.abs(b[n]))))
        np.testing.assert_allclose(a[n], b[n], rtol=0, atol=rtol * scale, err_msg=n)


# -- the two functions -----------------------------------------------------------------------
def test_find_repeats_keeps_first_occurrence_order():
    x = np.array([[1.0, 2.0], [0.0, 1.0], [1.0, 2.0], [-0.0, 1.0], [3.0, 0.0]])
    rep = find_repeats(x)
    assert rep.repeated and (rep.N, rep.M) == (5, 3)
    np.testing.assert_array_equal(rep.unique, x[[0, 1, 4]])
    np.testing.assert_array_equal(rep.inverse, [0, 1, 0, 1, 2])
    np.testing.assert_array_equal(rep.first, [0, 1, 4])
    np.testing.assert_array_equal(rep.unique[rep.inverse], x)
    assert rep.labels() == ["x[0]", "x[1]", "x[4]"]
    # merely collinear or one ulp apart: distinct, nothing changes
    for y in (np.array([[1.0, 2.0], [2.0, 4.0], [-1.0, -2.0]]),
              np.array([[1.0, 2.0], [np.nextafter(1.0, 2.0), 2.0]])):
        rep = find_repeats(y)
        assert not rep.repeated
        np.testing.assert_array_equal(rep.unique, y)
        np.testing.assert_array_equal(rep.inverse, np.arange(len(y)))


def test_expand_samples_repeats_every_axis_and_refuses_other_axes():
    a = np.arange(27.0).reshape(3, 3, 3)
    out = expand_samples(a, INVERSE)
    assert out.shape == (4, 4, 4)
    assert out[2, 3, 1] == a[0, 2, 1] and out[0, 2, 0] == a[0, 0, 0]
    with pytest.raises(ValueError, match="sample axes"):
        expand_samples(np.zeros((3, 2)), INVERSE)
    assert relabel("samples [0, 2] and x[1]", np.array([0, 1, 3])) == "samples [0, 3] and x[1]"


def test_every_derivable_tensor_has_only_sample_axes():
    """Registry rank = number of output samples of the derived correlator; and the tensors are
    equivariant under permuting the inputs (each axis is a sample axis, same order)."""
    names = list(derivable())
    for n in names:
        assert get_statistic(n).rank == len(correlator(n).output), n
    net = _net("tanh")
    ref = engine.evaluate(net, DISTINCT, names, form="derivative", backend="numba")
    perm = np.array([2, 0, 1])
    out = engine.evaluate(net, DISTINCT[perm], names, form="derivative", backend="numba")
    for n in names:
        assert ref[n].shape == (3,) * get_statistic(n).rank, n
    _assert_close(out, _expanded(ref, perm), names, 1e-10)


# -- duplicates equal the expanded distinct results ------------------------------------------
TANH_NUMPY = ("K1", "V", "A", "D", "P", "R")  # one of each kind; all fifteen take ~30 s here


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("form", ["derivative", "inverse-metric"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_duplicates_equal_expanded_distinct(act, form, backend):
    names = RELU if act == "relu" else (TANH_NUMPY if backend == "numpy" else derivable())
    net = _net(act)
    rep = engine.evaluate(net, WITH_REPEAT, names, form=form, backend=backend)
    ref = engine.evaluate(net, DISTINCT, names, form=form, backend=backend)
    for n in names:
        assert rep[n].shape == (4,) * ref[n].ndim
    _assert_close(rep, _expanded(ref), names, 1e-12)


def test_jax_duplicates_equal_expanded_distinct():
    net = Network.create([2, 5, 4], "tanh", C_W=1.3, C_b=0.1)
    rep = engine.evaluate(net, WITH_REPEAT, ["K1"], form="derivative", backend="jax")
    ref = engine.evaluate(net, DISTINCT, ["K1"], form="derivative", backend="jax")
    _assert_close(rep, _expanded(ref), ["K1"], 1e-12)


def test_expansion_equals_direct_evaluation_at_the_singular_kernel():
    """tanh, derivative form: the direct evaluation integrates at the rank-deficient K of the
    duplicate (the path every input took before); the expansion agrees with it entry by entry."""
    names = list(derivable())
    net = _net("tanh")
    closure = oracle_mod.dependencies(names)
    direct = engine._evaluate(net, WITH_REPEAT, names, 3, closure, "derivative", "numba", None,
                              False, None, None, False)
    out = engine.evaluate(net, WITH_REPEAT, names, form="derivative", backend="numba")
    _assert_close(out, direct, names, 1e-10)
    # relu: tensors the direct path could already integrate and got right (K1, Theta1, A, D, Q
    # it refused; P it returned inconsistent: P[0,0,2,1] ≠ P[0,0,0,1] by 16% for x2 = x0, the
    # perfectly correlated δ(z0)·H(z2) taking H(0) where the coinciding-sample rule applies)
    net = _net("relu")
    names = ["K", "Theta", "V", "B", "F"]
    direct = oracle_mod._evaluate(net, WITH_REPEAT, names, form="derivative")
    out = oracle_mod.evaluate(net, WITH_REPEAT, names, form="derivative")
    _assert_close(out, direct, names, 1e-7)  # relu's kink at coinciding samples: ~√rounding


def test_relu_config_with_a_duplicate_no_longer_raises():
    cfg = {"widths": [2, 16, 16, 16], "activation": "relu", "C_W": 2.0, "C_b": 0.1,
           "lambda_W": 1.0, "lambda_b": 0.1, "inputs": WITH_REPEAT.tolist(), "layer": 3,
           "tensors": list(RELU)}
    for form in ("auto", "inverse-metric", "derivative"):
        out = feyntk.predict(cfg, form=form)["tensors"]
        for n in RELU:
            v = out[n]["value"]
            assert v.shape == (4,) * v.ndim and np.all(np.isfinite(v))
            np.testing.assert_array_equal(v[2], v[0])  # the duplicate's row is the original's
            np.testing.assert_array_equal(v[..., 2], v[..., 0])
    # numpy oracle too, and the order of the repeat does not matter
    x = DISTINCT[[0, 1, 2, 2]]
    out = oracle_mod.evaluate(_net("relu"), x, ["V", "F", "Q"])
    ref = oracle_mod.evaluate(_net("relu"), DISTINCT, ["V", "F", "Q"])
    _assert_close(out, _expanded(ref, np.array([0, 1, 2, 2])), ["V", "F", "Q"], 1e-12)


# -- merely collinear inputs behave as today -------------------------------------------------
COLLINEAR = np.array([[1.0, 0.5], [2.0, 1.0]])  # with C_b = 0: singular K at every relu layer


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_collinear_pair_is_refused_as_today(backend):
    net = _net("relu", C_b=0.0)
    with pytest.raises(DegenerateKernelError, match=r"samples \[0, 1\].*duplicate or collinear"):
        engine.evaluate(net, COLLINEAR, ["V"], form="inverse-metric", backend=backend)
    # the derivative form's δ-terms at perfectly correlated samples
    with pytest.raises(DegenerateKernelError, match="perfectly correlated|invertible"):
        engine.evaluate(net, COLLINEAR, ["A"], form="derivative", backend=backend)
    # with an exact repeat besides, the same refusal names the original indices
    x = COLLINEAR[[0, 0, 1]]
    with pytest.raises(DegenerateKernelError, match=r"samples \[0, 2\]"):
        engine.evaluate(net, x, ["V"], form="inverse-metric", backend=backend)
    # the smooth tables path (numba) names them too
    with pytest.raises(DegenerateKernelError, match=r"samples \[0, 2\]"):
        engine.evaluate(_net("tanh", C_b=0.0), x, ["K1"], form="inverse-metric",
                        backend=backend)


def test_collinear_inputs_take_the_unchanged_path():
    """No exact repeat: the entry does nothing (same numbers as the inner evaluation)."""
    net = _net("relu")  # C_b > 0: collinear inputs are fine at layer 1
    x = np.array([[1.0, 0.5], [2.0, 1.0], [-1.0, -0.5]])
    out = oracle_mod.evaluate(net, x, ["V", "A"])
    direct = oracle_mod._evaluate(net, x, ["V", "A"])
    for n in ("V", "A"):
        np.testing.assert_array_equal(out[n], direct[n])


def test_refusals_name_original_indices():
    """A zero input with C_b = 0 puts relu's z on its kink: the infinite-width kernels' refusal
    names input 3 (the third distinct input)."""
    net = Network.create([2, 5, 5, 5], "relu", C_W=2.0)
    x = [[1.0, 0.0], [1.0, 0.0], [0.3, 0.8], [0.0, 0.0]]
    with pytest.raises(DegenerateKernelError, match=r"inputs \['x\[3\]'\] have zero"):
        infinite_kernels(net, x)


# -- memory ----------------------------------------------------------------------------------
def test_memory_check_counts_distinct_inputs():
    x = np.repeat(DISTINCT[:2], 20, axis=0)  # N = 40, two distinct
    net = Network.create([2, 6, 6], "tanh")
    closure = oracle_mod.dependencies(["A"])
    expanded = 8 * 40 ** 4
    budget = 2 * expanded
    assert oracle_mod.state_bytes(closure, 40) > budget  # refused before this change
    for backend in ("numpy", "numba"):
        out = engine.evaluate(net, x, ["A"], backend=backend, max_memory_bytes=budget)["A"]
        assert out.shape == (40,) * 4
        with pytest.raises(MemoryBudgetError, match="2 distinct"):
            engine.evaluate(net, x, ["A"], backend=backend, max_memory_bytes=expanded // 2)


# -- consumers -------------------------------------------------------------------------------
def test_infinite_kernels_expand():
    net = _net("relu")
    K, T = infinite_kernels(net, WITH_REPEAT)
    K0, T0 = infinite_kernels(net, DISTINCT)
    np.testing.assert_array_equal(K, K0[np.ix_(INVERSE, INVERSE)])
    np.testing.assert_array_equal(T, T0[np.ix_(INVERSE, INVERSE)])
    lay = kernel_layers(net, WITH_REPEAT)
    assert [k.layer for k in lay] == [1, 2, 3] and lay[-1].K_error.shape == (4, 4)


def test_statistics_with_an_eval_input_equal_to_a_training_input():
    net = _net("relu")
    inputs = InputSet.of(eval=DISTINCT[:1], train=DISTINCT)
    stats = evaluate_statistics(net, inputs, ["K", "Theta", "A", "P"])
    ref = evaluate_statistics(net, InputSet.of(train=DISTINCT), ["K", "Theta", "A", "P"])
    inv = np.array([0, 0, 1, 2])
    for n in ("K", "Theta", "A", "P"):
        np.testing.assert_array_equal(stats[n], expand_samples(ref[n], inv))


def _train_cfg(act):
    from feyntk.training.ensemble import EXAMPLE_TRAIN_CONFIG

    cfg = dict(EXAMPLE_TRAIN_CONFIG, widths=[2, 8, 8, 1], activation=act)
    cfg["inputs"] = [cfg["train_inputs"][1], [0.3, -0.2]]
    return cfg


def test_train_with_an_eval_input_equal_to_a_training_input():
    """tanh in the inverse-metric form was refused (singular K of the pair); now it equals the
    derivative form, and trained to convergence the ensemble interpolates the repeated point:
    mean = its target, no 1/n correction, no variance."""
    cfg = dict(_train_cfg("tanh"), steps="inf")
    inv = feyntk.train(cfg, form="inverse-metric")
    der = feyntk.train(cfg, form="derivative")
    for key in ("mean", "mean1", "cov"):
        np.testing.assert_allclose(inv[key]["value"], der[key]["value"], rtol=1e-8, atol=1e-10)
    target = cfg["targets"][1][0]
    assert abs(inv["mean"]["value"][0, 0] - target) < 1e-10
    assert abs(inv["mean1"]["value"][0, 0]) < 1e-10 and abs(inv["cov"]["value"][0, 0]) < 1e-10


def test_train_relu_with_a_repeat_is_not_refused_for_the_repeat():
    """relu's trained 1/n mean needs R, S, T, U, which relu does not define (δ²): that is the
    remaining refusal (NotAvailableError, see tests/test_training_relu.py), not the duplicate."""
    from feyntk.errors import NotAvailableError

    with pytest.raises(NotAvailableError) as info:
        feyntk.train(_train_cfg("relu"))
    assert "duplicate" not in str(info.value) and "ddNTK" in str(info.value)
