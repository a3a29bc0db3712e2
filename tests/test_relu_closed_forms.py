"""The relu family's closed forms (numbers/gaussian/orthant.py, numbers/gaussian/relu.py) against
the conical rule (refined past its default cap) and against Gaussian integration by parts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import feyntk
from feyntk.numbers.distributions import blob_expectation
from feyntk.numbers.evaluate import _hermite
from feyntk.numbers.gaussian import conical, expect
from feyntk.numbers.gaussian import relu as relu_closed
from feyntk.numbers.gaussian.orthant import orthant4, orthant_from_vectors, plackett_nodes
from feyntk.numbers.gaussian.relu import ReluBlobs
from feyntk.spec.activation import get_activation

TOL = 1e-10
ACTS = ["relu", {"name": "leaky_relu", "slope": 0.2}]


@pytest.fixture
def fine_cones(monkeypatch):
    """The conical rule refined to m = 24 in 3 and 4 dimensions (its default cap, m = 12 in
    4-d, leaves errors up to ~4e-10 on degree-4 integrands)."""
    monkeypatch.setitem(conical.CONE_LEVELS, 3, (24, 48))
    monkeypatch.setitem(conical.CONE_LEVELS, 4, (24, 24))


def kernel(N, n0, seed, shift=0.1):
    x = np.random.default_rng(seed).normal(size=(N, n0))
    return x @ x.T / n0 + shift


def covariances():
    rng = np.random.default_rng(7)
    out = {"generic": kernel(4, 6, 1), "rank 3": kernel(4, 3, 2, 0.0)}
    X = rng.normal(size=(4, 6))
    X[1:] = X[0] + 0.05 * rng.normal(size=(3, 6))
    out["near collinear"] = X @ X.T
    return out


@pytest.mark.parametrize("name", ["generic", "rank 3", "near collinear"])
def test_orthant4_against_conical_rule(name, fine_cones):
    K = covariances()[name]
    s = np.sqrt(np.diag(K))
    mine = orthant4((K / s[:, None] / s[None])[None])[0]
    ref = expect(lambda z: np.prod(z > 0, axis=1).astype(float), K, kinks=(0.0,),
                 rtol=1e-13).value
    assert abs(mine - ref) < TOL
    # converged in its own nodes
    finer = orthant4((K / s[:, None] / s[None])[None], plackett_nodes(60, 24))[0]
    assert abs(mine - finer) < 1e-13


def test_orthant4_duplicate_and_antipodal_pairs():
    """Exact duplicates (ρ_01 = 1: the Plackett node t rounds to 1 near s = 0, where the old
    conditional covariance was 0/0) and antipodes (ρ_01 = −1): P(z0, z0, z2, z3 > 0) is the
    3-variable orthant 1/8 + Σ arcsin ρ/(4π); P(z0, −z0, ·, ·) = 0."""
    K = kernel(3, 5, 7)
    s = np.sqrt(np.diag(K))
    R3 = K / s[:, None] / s[None]
    idx = [0, 0, 1, 2]
    R = R3[np.ix_(idx, idx)]
    r = R3[np.triu_indices(3, 1)]
    assert abs(orthant4(R[None])[0] - (0.125 + np.arcsin(r).sum() / (4 * np.pi))) < 1e-13
    sign = np.array([1.0, -1.0, 1.0, 1.0])
    assert abs(orthant4((R * sign[:, None] * sign[None])[None])[0]) < 1e-13


def test_orthant_probabilities_exact_cases():
    p2 = lambda r: 0.25 + np.arcsin(r) / (2 * np.pi)  # noqa: E731
    R = np.eye(4)
    R[0, 1] = R[1, 0] = 0.6
    R[2, 3] = R[3, 2] = -0.3
    assert abs(orthant4(R[None])[0] - p2(0.6) * p2(-0.3)) < 1e-14
    # equicorrelated ρ = 1/2: P_4 = 1/5 (the orthant of the regular simplex's cone)
    R = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    assert abs(orthant4(R[None])[0] - 0.2) < 1e-14
    # 3 samples: 1/8 + Σ arcsin ρ / (4π)
    K = kernel(3, 5, 3)
    L = np.linalg.cholesky(K)
    W = L / np.linalg.norm(L, axis=1, keepdims=True)
    s = np.sqrt(np.diag(K))
    r = (K / s[:, None] / s[None])[np.triu_indices(3, 1)]
    assert abs(orthant_from_vectors(W[None])[0] - (0.125 + np.arcsin(r).sum() / (4 * np.pi))) \
        < 1e-15


PATTERNS = {
    1: [(((0, 0, 0, 0), 0),), (((1, 1), 2),), (((0, 0), 4),), (((0, 1, 1, 2), 0),),
        (((0, 0), 3),)],
    2: [(((0,), 0), ((0,), 0)), (((1,), 0), ((1,), 0)), (((0,), 2), ((0,), 2)),
        (((1,), 2), ((1,), 2)), (((0,), 1), ((1,), 2)), (((0,), 4), ((0,), 0)),
        (((0, 0), 2), ((1, 1), 2)), (((0,), 3), ((0,), 1))],
    3: [(((0,), 0), ((1,), 0), ((2,), 0)), (((0,), 0), ((0,), 0), ((1, 1), 0)),
        (((0,), 0), ((1,), 0), ((1,), 1)), (((0,), 1), ((1,), 1), ((0,), 1))],
    4: [(((0,), 0),) * 4, (((0,), 0), ((0,), 0), ((1,), 0), ((1,), 0)),
        (((0,), 0), ((1,), 0), ((1,), 0), ((2,), 0)), (((1,), 0),) * 4,
        (((2,), 0), ((1,), 0), ((1,), 0), ((0,), 0))],
}
WEIGHTED = [((((0,), 0), ((0,), 0)), (0, 1)), ((((1,), 0), ((1,), 0)), (0, 1, 1, 1)),
            ((((2,), 0), ((0,), 0), ((1,), 0)), (0, 2))]


@pytest.mark.parametrize("act", ACTS, ids=["relu", "leaky"])
def test_blobs_against_conical_rule(act, fine_cones):
    act = get_activation(act)
    K = kernel(5, 6, 3)
    rb = ReluBlobs(act, K)
    cases = [(g, None) for d in PATTERNS for g in PATTERNS[d]] + WEIGHTED
    for groups, w in cases:
        d = len(groups)
        vals, bad = rb.value(groups, w)
        assert not bad.any()
        for r in (0, len(vals) - 1):
            sub = rb.subsets(d)[r]
            gr = tuple((int(sub[s]), ks, j) for s, (ks, j) in enumerate(groups))
            if w is None:
                ref = blob_expectation(act, K, gr)
            else:
                P = np.linalg.inv(K[np.ix_(sub, sub)])
                arr = blob_expectation(act, K, gr, lambda z: _hermite(
                    np.einsum("ij,bjp->bip", P, z), P, len(w)))
                ref = np.asarray(arr).reshape((d,) * len(w))[tuple(w)]
            assert abs(vals[r] - ref) < TOL * max(1.0, abs(ref)), (groups, w)


@pytest.mark.parametrize("act", ACTS, ids=["relu", "leaky"])
def test_integration_by_parts(act):
    """E[z_a F] = Σ_b K_ab E[∂_b F]: the relu family is scale invariant, σ(z) = z σ'(z), so
    E[σ_a σ_b σ_c σ_d] = Σ_e K_ae E[∂_e(σ'_a σ_b σ_c σ_d)] (distributional: ∂σ' = σ'' holds
    the delta), for every 4-, 3- and 2-subset; and the derivative form equals the
    inverse-metric form, ⟨∂_{g1}…∂_{gk} F⟩ = ⟨F He_{g1…gk}⟩."""
    act = get_activation(act)
    K = kernel(5, 6, 4)
    rb = ReluBlobs(act, K)
    for d in (2, 3, 4):
        S = rb.subsets(d)
        KS = K[S[:, :, None], S[:, None, :]]
        lhs = rb.value((((0,), 0),) * d)[0]
        rhs = KS[:, 0, 0] * rb.value((((2,), 0),) + (((0,), 0),) * (d - 1))[0]
        for e in range(1, d):
            g = [((1,), 0)] + [((0,), 0)] * (d - 1)
            g[e] = ((1,), 0)
            rhs = rhs + KS[:, 0, e] * rb.value(tuple(g))[0]
        assert np.max(np.abs(lhs - rhs)) < TOL * max(1.0, np.max(np.abs(lhs)))
    # legs as distributional derivatives vs Hermite weights
    for base in ((((0,), 0), ((0,), 0)), (((1,), 0), ((0,), 0)), (((0,), 0), ((1,), 0),
                                                                  ((0,), 0))):
        d = len(base)
        for legs in itertools.chain.from_iterable(
                itertools.combinations_with_replacement(range(d), k) for k in (1, 2, 4)):
            if len(legs) == 4 and d == 3:
                continue
            diff = tuple((ks, legs.count(s)) for s, (ks, _) in enumerate(base))
            try:
                a, bad = rb.value(diff)
            except feyntk.errors.ActivationError:  # δ·δ at one sample: refused, as the oracle
                continue
            b, bad2 = rb.value(base, legs)
            assert not (bad.any() or bad2.any())
            assert np.max(np.abs(a - b)) < TOL * max(1.0, np.max(np.abs(a))), (base, legs)


def _predict(cfg, backend, closed, monkeypatch):
    monkeypatch.setattr(relu_closed, "ENABLED", closed)
    return feyntk.predict(cfg, backend=backend)["tensors"]


@pytest.mark.parametrize("n0, x_extra", [(4, None), (2, "collinear")])
def test_predict_equals_conical_rule(n0, x_extra, monkeypatch):
    """All relu tensors, N = 3, depth 3, numba and numpy with closed forms against the numpy
    path on the conical rule; collinear inputs (x₃ = x₁ + x₂) send the rows the closed forms
    refuse to the quadrature."""
    x = np.random.default_rng(5).normal(size=(3, n0))
    if x_extra == "collinear":
        x[2] = x[0] + x[1]
    tensors = ["K", "K1", "V", "Theta", "Theta1", "A", "B", "D", "F", "P", "Q"]
    cfg = {"widths": [n0, 32, 32, 32], "activation": "relu", "C_W": 2.0, "C_b": 0.0,
           "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": tensors}
    ref = _predict(cfg, "numpy", False, monkeypatch)
    for backend in ("numpy", "numba"):
        out = _predict(cfg, backend, True, monkeypatch)
        for t in tensors:
            a, b = out[t]["value"], ref[t]["value"]
            assert np.max(np.abs(a - b)) < TOL * max(1.0, np.max(np.abs(b))), (backend, t)
