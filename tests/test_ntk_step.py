"""``predict_ntk_step`` through the result type against an independent, hand-typed route.

:mod:`feyntk.numbers.training` takes its neuron structure from the vertices declared in
:data:`feyntk.diagrams.vertices.INSERTIONS` (via :meth:`Statistics.cumulant`). The reference below
is the formula written out by hand (the δ-patterns of P…U typed with ``np.ix_`` slicing over the
concatenated inputs, as the module computed it before it moved onto the result type), evaluated
on the same tensors; the two must agree to 1e-12 for tanh and gelu, depth 2 and 3, n_L = 1 and 2.
"""

import numpy as np
import pytest

from feyntk.kernels.engine import evaluate
from feyntk.numbers.result import InputSet, evaluate_statistics
from feyntk.numbers.training import NEEDS, predict_ntk_step
from feyntk.spec.network import Network


def hand_typed_step(v, ne: int, nt: int, nL: int, y: np.ndarray, n: int):
    """(first, second) from tensors ``v`` on [eval; train] inputs, δ-patterns typed by hand."""
    e, t = np.arange(ne), ne + np.arange(nt)
    P, Q, R, S, T, U = (v[k] for k in ("P", "Q", "R", "S", "T", "U"))
    Kt = v["K"][np.ix_(t, t)]
    d = np.eye(nL)
    g = P[np.ix_(e, e, t, t)].diagonal(axis1=2, axis2=3).sum(-1) \
        + nL * Q[np.ix_(e, e, t, t)].diagonal(axis1=2, axis2=3).sum(-1) \
        + np.einsum("dafa->df", Q[np.ix_(e, t, e, t)])
    first = -np.einsum("ij,de->ijde", d, g + g.T) / n
    M = np.einsum("jk,ab->jakb", d, Kt) + np.einsum("ja,kb->jakb", y.T, y.T)

    def ddI(sw):
        out = (np.einsum("ij,kl,deab->ijdekalb", d, d, R[np.ix_(e, e, t, t)])
               + np.einsum("ik,jl,dabe->ijdekalb", d, d, R[np.ix_(e, t, t, e)])
               + np.einsum("il,jk,dbea->ijdekalb", d, d, R[np.ix_(e, t, e, t)]))
        return out.transpose(1, 0, 3, 2, 4, 5, 6, 7) if sw else out

    def ddII(swap_j):
        out = (np.einsum("ij,kl,deab->ijdekalb", d, d, S[np.ix_(e, e, t, t)])
               + np.einsum("ik,jl,deab->ijdekalb", d, d, T[np.ix_(e, e, t, t)])
               + np.einsum("il,jk,deab->ijdekalb", d, d, U[np.ix_(e, e, t, t)]))
        return out.transpose(0, 1, 2, 3, 6, 7, 4, 5) if swap_j else out

    X2 = ddI(False) + ddI(True) + ddII(False) + ddII(True)
    return first, 0.5 * np.einsum("ijdekalb,kalb->ijde", X2, M) / n


XE = np.array([[1.0, 0.3], [0.2, -0.8], [-1.1, 0.5]])
XT = np.array([[-0.4, 0.9], [0.7, 0.1]])
CASES = {
    "tanh-depth2-nL1": (Network.create([2, 20, 1], "tanh", C_W=1.4, C_b=0.2, lambda_W=0.9,
                                       lambda_b=0.3), XE, XT, [[0.5], [-0.3]]),
    "gelu-depth2-nL2": (Network.create([2, 24, 2], "gelu", C_W=[1.1, 1.6], C_b=0.05,
                                       lambda_W=[1.0, 0.5], lambda_b=0.2),
                        XE, XT, [[0.5, 0.1], [-0.3, 0.9]]),
    "tanh-depth3-nL2": (Network.create([2, 16, 16, 2], "tanh", C_W=[1.2, 1.5, 1.3], C_b=0.1,
                                       lambda_W=1.0, lambda_b=[0.2, 0.1, 0.3]),
                        XE[:1], XT[:1], [[0.8, -0.5]]),
    "gelu-depth3-nL1": (Network.create([2, 16, 24, 1], "gelu", C_W=1.3, C_b=0.1,
                                       lambda_W=[1.0, 0.7, 1.2], lambda_b=0.2),
                        XE[:2], XT, [[0.5], [-0.3]]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_step_through_declared_vertices_matches_hand_typed_formula(case):
    net, xe, xt, y = CASES[case]
    y = np.asarray(y, float)
    nL = net.widths[-1]
    step = predict_ntk_step(net, xe, xt, y)
    v = evaluate(net, np.concatenate([xe, xt]), NEEDS, backend="numba")
    first, second = hand_typed_step(v, len(xe), len(xt), nL, y, net.expansion_width(net.L))
    assert step.first.shape == step.second.shape == (nL, nL, len(xe), len(xe))
    assert step.n == net.expansion_width(net.L)
    np.testing.assert_allclose(step.first, first, rtol=0, atol=1e-12)
    np.testing.assert_allclose(step.second, second, rtol=0, atol=1e-12)
    assert np.abs(first).max() > 1e-3 and np.abs(second).max() > 1e-3  # not a trivial zero
    if nL > 1:  # off-diagonal output pairs carry only the ddNTK cross terms of the η² part
        assert np.abs(step.second[0, 1]).max() > 1e-6
        np.testing.assert_array_equal(step.first[0, 1], 0.0)


def test_fastest_backend_agrees_with_the_numpy_oracle():
    """The default (fastest) backend gives the numbers of the numpy oracle to 1e-12."""
    net, xe, xt, y = CASES["tanh-depth3-nL2"]
    fast = predict_ntk_step(net, xe, xt, y)
    oracle = predict_ntk_step(net, xe, xt, y, backend="numpy")
    np.testing.assert_allclose(fast.first, oracle.first, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.second, oracle.second, rtol=0, atol=1e-12)


def test_cumulant_on_input_blocks_is_the_full_cumulant_restricted():
    net = Network.create([2, 8, 8], "tanh", C_W=1.3, C_b=0.1, lambda_W=1.0, lambda_b=0.2)
    inputs = InputSet.of(eval=XE[:2], train=XT)
    stats = evaluate_statistics(net, inputs, ["V", "P", "Q", "R", "S", "T", "U", "D", "F"])
    e, t = stats.block("eval"), stats.block("train")
    rows = {"eval": e, "train": t}
    for vertex, on in (("PQ", ("eval", "train", "eval", "train")),
                       ("R", ("eval", "eval", "train", "train")),
                       ("STU", ("train", "eval", "eval", "train")),
                       ("DF", ("eval", "train", "train", "eval")),
                       ("V", ("train",) * 4)):
        full = stats.cumulant(vertex, 2)
        part = stats.cumulant(vertex, 2, on)
        k = full.ndim - len(on)
        want = full[np.ix_(*[np.arange(2)] * k, *(rows[b] for b in on))]
        np.testing.assert_array_equal(part, want)
    with pytest.raises(Exception, match="sample axes"):
        stats.cumulant("R", 2, ("eval", "train"))
