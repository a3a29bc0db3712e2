"""The Monte Carlo estimators: definitions and index orders, calibration, exact facts."""

import itertools

import jax
import numpy as np
import pytest

from feyntk.errors import ActivationError, MemoryBudgetError, SpecError
from feyntk.numbers.infinite import infinite_kernels
from feyntk.spec.config import Request, parse_request
from feyntk.spec.network import Network
from feyntk.spec.statistic import TENSOR_NAMES, get_statistic
from feyntk.validate.estimators import (ESTIMATORS, NetworkAverages, estimate,
                                        estimate_from_fields, finalize, mean_and_cov,
                                        offdiagonal_ntk_mean, update_moments)

ALL_AVERAGES = ("z[i]z[i]", "H[ii]", "H[ij]", "z[i]z[i]z[j]z[j]", "H[ii]H[jj]", "H[ii]z[j]z[j]",
                "H[ij]H[ij]", "H[ij]z[i]z[j]", "dH[ijj]z[i]", "dH[iij]z[j]", "ddI[iijj]",
                "ddII[iijj]", "ddII[ijij]", "ddII[ijji]")


def random_fields(rng, S, M, N):
    return {"z": rng.normal(size=(S, M, N)), "H": rng.normal(size=(S, M, M, N, N)),
            "dH": rng.normal(size=(S,) + (M,) * 3 + (N,) * 3),
            "ddI": rng.normal(size=(S,) + (M,) * 4 + (N,) * 4),
            "ddII": rng.normal(size=(S,) + (M,) * 4 + (N,) * 4)}


def loop_definitions(f, M, N):
    """Per-network correlators of MATH.md §3 by explicit loops over i != j, in stored order."""
    z, H, dH, ddI, ddII = (f[k] for k in ("z", "H", "dH", "ddI", "ddII"))
    pairs = [(i, j) for i in range(M) for j in range(M) if i != j]
    out = {k: np.zeros((N,) * 4) for k in "V A B D F P Q R S T U".split()}
    for (i, j), a in itertools.product(pairs, itertools.product(range(N), repeat=4)):
        a1, a2, a3, a4 = a
        out["V"][a] += z[i, a1] * z[i, a2] * z[j, a3] * z[j, a4]
        out["A"][a] += H[i, i, a1, a2] * H[j, j, a3, a4]
        out["B"][a1, a3, a2, a4] += H[i, j, a1, a2] * H[i, j, a3, a4]
        out["D"][a] += H[i, i, a1, a2] * z[j, a3] * z[j, a4]
        out["F"][a1, a3, a2, a4] += H[i, j, a1, a2] * z[i, a3] * z[j, a4]
        out["P"][a] += dH[i, j, j, a1, a2, a3] * z[i, a4]
        out["Q"][a] += dH[i, i, j, a1, a2, a3] * z[j, a4]
        out["R"][a] += ddI[i, i, j, j][a]
        out["S"][a] += ddII[i, i, j, j][a]
        out["T"][a] += ddII[i, j, i, j][a]
        out["U"][a] += ddII[i, j, j, i][a]
    out = {k: v / len(pairs) for k, v in out.items()}
    out["K"] = np.einsum("ia,ib->ab", z, z) / M
    out["Theta"] = np.einsum("iiab->ab", H) / M
    return out


def test_estimators_match_loop_definitions_and_stored_order():
    rng = np.random.default_rng(0)
    S, M, N, n = 3, 3, 2, 7
    fields = random_fields(rng, S, M, N)
    got = estimate_from_fields(fields, TENSOR_NAMES, n,
                               offsets={"K": np.eye(N), "Theta": 2 * np.eye(N)})
    per = [loop_definitions({k: v[s] for k, v in fields.items()}, M, N) for s in range(S)]
    mean = {k: np.mean([p[k] for p in per], axis=0) for k in per[0]}
    zz = np.array([np.einsum("ia,ib->ab", f, f) / M for f in fields["z"]])
    hd = np.array([np.einsum("iiab->ab", h) / M for h in fields["H"]])

    def ustat(x, y):   # Σ_{s≠t} x_s ⊗ y_t / (S(S-1))
        return (np.einsum("sab,tcd->abcd", x, y) - np.einsum("sab,scd->abcd", x, y)) / (S * S - S)

    want = {"K": mean["K"], "Theta": mean["Theta"], "K1": n * (mean["K"] - np.eye(N)),
            "Theta1": n * (mean["Theta"] - 2 * np.eye(N)), "V": n * (mean["V"] - ustat(zz, zz)),
            "A": n * (mean["A"] - ustat(hd, hd)), "D": n * (mean["D"] - ustat(hd, zz))}
    want.update({k: n * mean[k] for k in "B F P Q R S T U".split()})
    for name in TENSOR_NAMES:
        np.testing.assert_allclose(got[name]["value"], want[name], atol=1e-12, err_msg=name)
        assert got[name]["se"].shape == want[name].shape and np.all(got[name]["se"] > 0)


def test_network_averages_cover_all():
    f = {k: v[0] for k, v in random_fields(np.random.default_rng(1), 1, 2, 2).items()}
    out = jax.jit(NetworkAverages(ALL_AVERAGES))(f)
    assert set(out) == set(ALL_AVERAGES)
    assert {a for e in ESTIMATORS.values() for a in e.averages} <= set(ALL_AVERAGES)
    assert set(ESTIMATORS) == set(TENSOR_NAMES)


def scale_mixture(rng, S, M, tau, cov):
    """z_i = sqrt(g) ξ_i, g = exp(τη − τ²/2) per network: E[zz] = Σ, Cov = (e^{τ²} − 1) Σ⊗Σ."""
    g = np.exp(tau * rng.normal(size=(S, 1, 1)) - tau ** 2 / 2)
    xi = rng.multivariate_normal(np.zeros(len(cov)), cov, size=(S, M))
    return np.sqrt(g) * xi


def repeated_experiments(R, S, M=4, tau=0.4, seed=2):
    """R independent estimates of K and V from S scale-mixture networks each: (runs, truth)."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.4], [0.4, 0.7]])
    z = scale_mixture(rng, R * S, M, tau, cov)
    avg = jax.device_get(jax.jit(jax.vmap(NetworkAverages(("z[i]z[i]", "z[i]z[i]z[j]z[j]"))))({"z": z}))
    avg = {k: np.asarray(v).reshape((R, S) + v.shape[1:]) for k, v in avg.items()}
    truth = {"K": cov, "V": np.expm1(tau ** 2) * np.einsum("ab,cd->abcd", cov, cov)}
    runs = {"K": [], "V": [], "naive V": []}
    for r in range(R):
        zz, zzzz = avg["z[i]z[i]"][r], avg["z[i]z[i]z[j]z[j]"][r]
        stack_v = np.stack([zzzz, np.broadcast_to(zz[:, :, :, None, None], zzzz.shape),
                            np.broadcast_to(zz[:, None, None], zzzz.shape)], 1)
        for name, stack, prod in (("K", zz[:, None], False), ("V", stack_v, True)):
            m = update_moments(update_moments(None, stack[:2]), stack[2:])  # two chunks
            runs[name].append(finalize(m, prod))
        mean = mean_and_cov(m)[0]
        runs["naive V"].append((mean[0] - mean[1] * mean[2], None))
    truth["naive V"] = truth["V"]
    return {k: np.array([v - truth[k] for v, _ in res]) for k, res in runs.items()}, runs


def test_product_of_expectations_is_unbiased():
    """The U-statistic has no 1/S bias; the naive x̄ȳ has (and this test would see it)."""
    R = 2000
    err, _ = repeated_experiments(R, S=5)
    sem = {k: e.std(0) / np.sqrt(R) for k, e in err.items()}
    assert np.all(np.abs(err["K"].mean(0)) < 4 * sem["K"])
    assert np.all(np.abs(err["V"].mean(0)) < 4 * sem["V"])
    assert np.max(np.abs(err["naive V"].mean(0)) / sem["naive V"]) > 5


def test_standard_errors_are_calibrated():
    """Delta-method se: rms(se) over repeated experiments ≈ the actual spread of the values."""
    err, runs = repeated_experiments(300, S=30)
    for name in ("K", "V"):
        se = np.array([s for _, s in runs[name]])
        ratio = np.sqrt((se ** 2).mean(0)) / err[name].std(0)
        assert np.all(np.abs(ratio - 1) < 0.15), (name, ratio)


def test_layer_one_corrections_vanish():
    req = parse_request(dict(widths=[3, 4, 5], activation="tanh", C_W=[1.2, 0.9],
                             C_b=[0.2, 0.1], lambda_W=[0.8, 1.1], lambda_b=[0.3, 0.5],
                             inputs=[[1.0, 0.3, -0.2], [-0.4, 0.9, 0.5]], layer=1,
                             tensors=list(TENSOR_NAMES), samples=300, seed=3))
    out = estimate(req)
    assert out["n"] == 3 and out["layer"] == 1 and out["samples"] == 300
    assert set(out["tensors"]) == set(out["notes"]) == set(TENSOR_NAMES)
    K, Theta = infinite_kernels(req.network, req.inputs, 1)
    for name, res in out["tensors"].items():
        v, se = res["value"], res["se"]
        assert v.shape == se.shape == (2,) * get_statistic(name).rank
        if name in "PQRSTU":
            assert not np.any(v), name              # dH = ddI = ddII = 0 identically
        elif name == "K":
            assert np.all(np.abs(v - K) <= 4 * se)
        elif name == "Theta":
            np.testing.assert_allclose(v, Theta, atol=1e-13)
        else:
            assert np.all(np.abs(v) <= 4 * se + 1e-11), (name, v, se)


def test_relu_diagonal_kernels_have_no_finite_width_correction():
    """Scale-invariant σ: E[z_a z_a] = K_aa and E[H_aa] = Θ_aa exactly (MATH.md §4)."""
    req = parse_request(dict(widths=[2, 8, 6, 5], activation="relu", C_W=[1.5, 2.0, 1.2],
                             C_b=[0.3, 0.1, 0.2], lambda_W=[1.0, 0.5, 2.0],
                             lambda_b=[0.3, 0.2, 0.1], inputs=[[1.0, 0.3], [-0.4, 0.9]],
                             layer=3, tensors=["K", "K1", "Theta", "Theta1", "B"],
                             samples=4000, seed=0))
    out = estimate(req)
    K, Theta = infinite_kernels(req.network, req.inputs, 3)
    t = out["tensors"]
    for name, inf in (("K", K), ("Theta", Theta)):
        d = np.diag(t[name]["value"] - inf) / np.diag(t[name]["se"])
        assert np.all(np.abs(d) < 4), (name, d)
        d1 = np.diag(t[name + "1"]["value"]) / np.diag(t[name + "1"]["se"])
        np.testing.assert_allclose(d1, d, rtol=1e-10)
    off = out["diagnostics"]["offdiagonal_ntk_mean"]
    assert np.all(np.abs(off["value"]) < 4 * off["se"])


def test_offdiagonal_ntk_mean_is_zero():
    req = parse_request(dict(widths=[2, 6, 4], activation="tanh", C_W=1.6, C_b=0.2,
                             lambda_b=0.3, inputs=[[1.0, 0.3], [-0.4, 0.9]], samples=400))
    off = offdiagonal_ntk_mean(req)
    assert off["value"].shape == (2, 2)
    assert np.all(np.abs(off["value"]) < 4 * off["se"])


DEEP_LINEAR = dict(activation="linear", C_W=1.0, C_b=0.0, lambda_W=1.0, lambda_b=0.0,
                   inputs=[[1.0, 0.5, -0.8]], layer=3)
K_LIN = (1 + 0.25 + 0.64) / 3                             # x·x/n0


def wls_intercept(widths, values, ses):
    """Weighted least squares value(n) = X + c/n: (X, se of X)."""
    X = np.stack([np.ones(len(widths)), 1 / np.asarray(widths, float)], 1)
    w = 1 / np.asarray(ses) ** 2
    cov = np.linalg.inv(X.T @ (w[:, None] * X))
    return (cov @ X.T @ (w * np.asarray(values)))[0], np.sqrt(cov[0, 0])


def deep_linear(widths, samples, tensors):
    """{name: (values, ses)} over widths for the deep linear network at layer 3."""
    out = {t: ([], []) for t in tensors}
    for n in widths:
        res = estimate(parse_request(dict(DEEP_LINEAR, widths=[3, n, n, n], tensors=tensors,
                                          samples=samples, seed=n)))["tensors"]
        for t in tensors:
            out[t][0].append(res[t]["value"].item())
            out[t][1].append(res[t]["se"].item())
    return out


def test_deep_linear_V_extrapolates_to_2_l_minus_1_K_squared():
    """V = 2(l−1)K² (MATH.md §4); at finite n exactly n·Cov = K²(4 + 4/n) for l = 3 (χ²)."""
    widths = [4, 8, 16]
    vals, ses = deep_linear(widths, 3000, ["V"])["V"]
    for n, v, se in zip(widths, vals, ses):
        assert abs(v - K_LIN ** 2 * (4 + 4 / n)) < 4 * se, (n, v, se)
    V, se = wls_intercept(widths, vals, ses)
    assert abs(V - 4 * K_LIN ** 2) < 3 * se, (V, se)


@pytest.mark.slow
def test_deep_linear_tensors_extrapolate_to_exact_values():
    """V, A, B, D, F of the deep linear network (REFERENCES.md) from n = 8..64."""
    l, theta = 3, 3 * K_LIN
    B = (l - 1) * (2 * l - 1) / (6 * l) * theta ** 2
    exact = {"V": 2 * (l - 1) * K_LIN ** 2, "A": 2 * B, "B": B, "D": (l - 1) * K_LIN * theta,
             "F": (l - 1) / 2 * K_LIN * theta}
    widths = [8, 16, 32, 64]
    for name, (vals, ses) in deep_linear(widths, 20000, list(exact)).items():
        X, se = wls_intercept(widths, vals, ses)
        assert abs(X - exact[name]) < 3 * se, (name, X, se, exact[name])


def test_reproducible_and_chunk_invariant():
    cfg = dict(widths=[2, 5, 4], activation="tanh", C_W=1.4, C_b=0.1, lambda_b=0.2,
               inputs=[[1.0, 0.3], [-0.4, 0.9]], tensors=["K", "V", "A", "F"], samples=40,
               seed=7)
    a = estimate(cfg, chunk=5)
    b = estimate(cfg, chunk=17)
    c = estimate(cfg, chunk=5)
    for name in a["tensors"]:
        for key in ("value", "se"):
            np.testing.assert_allclose(a["tensors"][name][key], b["tensors"][name][key],
                                       rtol=1e-10, atol=1e-13)
            assert np.array_equal(a["tensors"][name][key], c["tensors"][name][key])


def test_refusals():
    net = Network.create([2, 3, 3], "tanh")
    x = np.array([[1.0, 0.5]])
    with pytest.raises(SpecError, match="at least 2"):
        estimate(Request(net, x, 2, ("K",), samples=1))
    with pytest.raises(SpecError, match="samples"):
        parse_request(dict(widths=[2, 3], inputs=[[1.0, 0.5]], samples=1))
    narrow = Network.create([2, 3, 1], "tanh")
    with pytest.raises(SpecError, match="two different neurons"):
        estimate(Request(narrow, x, 2, ("V",), samples=10))
    assert estimate(Request(narrow, x, 2, ("K",), samples=10))["neurons"] == 1
    with pytest.raises(MemoryBudgetError, match="MiB"):
        estimate(Request(net, x, 2, ("R",), samples=10), max_memory_bytes=1000)
    relu = Network.create([2, 3, 3], "relu")
    with pytest.raises(ActivationError):
        estimate(Request(relu, x, 2, ("P",), samples=10))
    with pytest.raises(SpecError, match="offsets"):
        estimate_from_fields({"z": np.zeros((3, 2, 1))}, ["K1"], 3)
