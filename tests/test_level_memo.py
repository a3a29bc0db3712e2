"""The integrals memo of the generated kernels (feyntk.kernels.memo): the error estimate's re-runs
take every integral from the first run, and nothing changes (values, estimates)."""

import numpy as np
import pytest

import feyntk
from feyntk.kernels import memo as memo_mod
from feyntk.kernels import tables


def _config(N=4):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N, 3))
    x *= np.sqrt(3) / np.linalg.norm(x, axis=1, keepdims=True)
    return {"widths": [3, 16, 16, 16], "activation": "tanh", "C_W": 1.0, "C_b": 0.0,
            "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": ["V", "A"]}


def _counting(monkeypatch):
    calls = []
    orig = tables._run_numba

    def run(*args):
        calls.append(args[6])  # the level m
        return orig(*args)

    monkeypatch.setattr(tables, "_run_numba", run)
    return calls


def test_reruns_reuse_every_integral(monkeypatch):
    cfg = _config()
    feyntk.predict(cfg, backend="numba")  # kernels compiled
    calls = _counting(monkeypatch)
    with_memo = feyntk.predict(cfg, backend="numba")
    n_memo = len(calls)
    assert with_memo["quadrature"]["max_rel_error_estimate"] > 1e-10  # the re-runs ran
    calls.clear()
    monkeypatch.setattr(memo_mod.LevelMemo, "run",
                        lambda self, key, m, rows, C, nout, compute: compute(rows, m))
    without = feyntk.predict(cfg, backend="numba")
    assert len(calls) > n_memo  # without the memo the re-runs integrate again
    for t in cfg["tensors"]:
        np.testing.assert_allclose(with_memo["tensors"][t]["value"],
                                   without["tensors"][t]["value"], rtol=0, atol=1e-15)
    a, b = with_memo["quadrature"], without["quadrature"]
    for k in ("max_rel_error_estimate", "tensor_rel_error_estimates", "capped_integrals"):
        assert a[k] == pytest.approx(b[k], rel=1e-9), k


def test_memo_bound_and_rows():
    m = memo_mod.LevelMemo(limit=10 * 9 * 2)
    seen = []

    def compute(rows, lev):
        seen.append(rows.copy())
        return np.stack([rows * 1.0, rows + lev * 1.0], 1)

    key = memo_mod.key_of(4, [((0, 0),), 0], False, np.eye(2), np.zeros((3, 4)))
    out = m.run(key, 12, np.array([1, 3]), 10, 2, compute)
    np.testing.assert_array_equal(out, [[1, 13], [3, 15]])
    out = m.run(key, 12, np.array([0, 1, 3]), 10, 2, compute)  # only row 0 is new
    np.testing.assert_array_equal(seen[-1], [0])
    np.testing.assert_array_equal(out[:, 1], [12, 13, 15])
    assert m.nbytes == 10 * 17
    m.run(key, 24, np.array([0]), 10, 2, compute)  # past the bound: computed, not kept
    assert (key, 24) not in m.store and m.nbytes == 10 * 17



def test_memo_stays_within_the_memory_budget(monkeypatch):
    """The memo keeps integrals only within what max_memory_bytes leaves after the evaluation's
    own need (the refusal model): at a budget 1 byte above that need it keeps nothing, and the
    results are the same bit for bit."""
    from feyntk.numbers import driver

    cfg = _config()
    needs, memos = [], []
    check, distinct = driver.check_memory, driver.on_distinct

    def spy_check(need, *a, **k):
        needs.append(need)
        return check(need, *a, **k)

    def spy_distinct(x, stepper, *a, **k):
        out = distinct(x, stepper, *a, **k)
        memos.append(stepper.memo)
        return out

    monkeypatch.setattr(driver, "check_memory", spy_check)
    monkeypatch.setattr(driver, "on_distinct", spy_distinct)
    free = feyntk.predict(cfg, backend="numba")
    assert memos[-1].nbytes > 0 and memos[-1].limit == memo_mod.MEMO_BYTES
    tight = feyntk.predict(cfg, backend="numba", max_memory_bytes=needs[-1] + 1)
    assert memos[-1].limit == 1 and memos[-1].nbytes == 0
    for t in cfg["tensors"]:
        np.testing.assert_array_equal(free["tensors"][t]["value"], tight["tensors"][t]["value"])
