"""Unit tests of the theory-vs-sampling comparison tools (feyntk.validate.compare, MATH.md §5).

All data are synthetic ``Sweep`` objects (seeded Gaussian noise of the stated standard error);
no network is sampled. Conventions: a 1/n tensor's sweep stores ``n·cumulant``, so
``value(n) = T + c/n + d/n² + ...`` and the residual ``cumulant − T/n = c/n² + d/n³ + ...``;
a residual falling only like 1/n is a term ``e`` constant in ``value``.
"""

import numpy as np
import pytest

import feyntk
from feyntk.validate.compare import (Sweep, _exact, _wls, agreement, extrapolate,
                                     residual_scaling, residuals, rounding_shift, scaled_widths)

NS = np.array([16.0, 32.0, 64.0, 128.0])
SHAPE = (200,)  # entries tested jointly
SE = 0.01  # standard error of every n·cumulant estimate


def _sweep(values, ses, ns=NS, name="V"):
    return Sweep(name, np.asarray(ns, float), np.asarray(values, float), np.asarray(ses, float))


def _synthetic(seed, *, c_scale=1.0, d_scale=1.0, e=None, noise=True, ns=NS):
    """value(n) = T + e + c/n + d/n² (+ N(0, SE²) noise) for SHAPE entries; returns (sweep, T)."""
    rng = np.random.default_rng(seed)
    T = rng.normal(size=SHAPE)
    c = c_scale * rng.normal(size=SHAPE)
    d = d_scale * rng.normal(size=SHAPE)
    nb = np.asarray(ns, float)[:, None]
    vals = T + c / nb + d / nb**2
    if e is not None:
        vals = vals + e
    if noise:
        vals = vals + SE * rng.normal(size=vals.shape)
    return _sweep(vals, np.full(vals.shape, SE), ns), T


# ---------------------------------------------------------------- residuals and _wls


def test_residuals_formula_both_modes():
    """residuals() is (value − T)/n with se/n for a 1/n tensor, value − (K0 + K1/n) with se for K."""
    rng = np.random.default_rng(0)
    vals, ses = rng.normal(size=(4, 3)), rng.uniform(0.1, 1, size=(4, 3))
    T, K0 = rng.normal(size=3), rng.normal(size=3)
    s = _sweep(vals, ses)
    r, sr = residuals(s, T)
    np.testing.assert_allclose(r, (vals - T) / NS[:, None], rtol=1e-14)
    np.testing.assert_allclose(sr, ses / NS[:, None], rtol=1e-14)
    r, sr = residuals(s, T, leading=K0)
    np.testing.assert_allclose(r, vals - (K0 + T / NS[:, None]), rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(sr, ses)


def test_wls_exact_polynomial_and_weighted_mean():
    """_wls recovers exact coefficients (chi2 ≈ 0) and, for a constant, the weighted mean and its se."""
    x = 1.0 / NS
    coef_true = np.array([[0.3, -2.0], [1.5, 4.0], [-7.0, 0.5]])  # powers (-1, 0, 1), 2 entries
    y = sum(coef_true[k] * x[:, None] ** p for k, p in enumerate((-1, 0, 1)))
    se = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.4], [1.0, 2.0]])
    coef, cse, chi2 = _wls(x, y, se, (-1, 0, 1))
    np.testing.assert_allclose(coef, coef_true, rtol=1e-9, atol=1e-9)
    assert np.all(chi2 < 1e-16) and np.all(cse > 0)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(4, 2))
    coef, cse, chi2 = _wls(x, y, se, (0,))
    w = 1 / se**2
    mean = (w * y).sum(0) / w.sum(0)
    np.testing.assert_allclose(coef[0], mean, rtol=1e-12)
    np.testing.assert_allclose(cse[0], 1 / np.sqrt(w.sum(0)), rtol=1e-12)
    np.testing.assert_allclose(chi2, (w * (y - mean) ** 2).sum(0), rtol=1e-12)


# ---------------------------------------------------------------- residual_scaling


def test_residual_scaling_noise_free_law_is_exact():
    """Noise-free T + c/n + d/n²: the 1/n² law (+1/n³) fits exactly, recovers c, d; no 1/n term."""
    s, T = _synthetic(2, noise=False)
    res = residual_scaling(s, T, corrections=1)
    assert res.dof == 2 and res.coefficients.shape == (2,) + SHAPE
    rng = np.random.default_rng(2)
    rng.normal(size=SHAPE)
    c, d = rng.normal(size=SHAPE), rng.normal(size=SHAPE)
    np.testing.assert_allclose(res.coefficients[0], c, atol=1e-9)
    np.testing.assert_allclose(res.coefficients[1], d, atol=1e-7)
    assert np.all(res.chi2 < 1e-12) and np.all(res.p > 1 - 1e-6)
    assert np.abs(res.slower_z).max() < 1e-6


def test_residual_scaling_accepts_one_over_n_squared_law_with_noise():
    """Under the 1/n² law with noise of the stated se, p-values look uniform and slower_z ~ N(0,1)."""
    s, T = _synthetic(3)
    res = residual_scaling(s, T)  # default: 1 correction with four widths
    assert res.dof == 2
    assert res.p.min() > 1e-3, res.p.min()
    assert 0.4 < res.p.mean() < 0.6  # uniform p-values: the chi² has the stated dof
    assert np.abs(res.slower_z).max() < 4.0
    assert abs(res.slower_z.mean()) < 0.25 and 0.8 < res.slower_z.std() < 1.2


def test_residual_scaling_large_c_is_not_flagged():
    """A 1/n term in value (residual ∝ 1/n²) far above the noise is the allowed law, not a failure."""
    s, T = _synthetic(3, c_scale=1e3)  # c/n ≫ SE at every width; same noise as c_scale = 1
    res = residual_scaling(s, T, corrections=1)
    assert res.p.min() > 1e-3 and np.abs(res.slower_z).max() < 4.0
    small = residual_scaling(*_synthetic(3), corrections=1)  # the law is linear in c: no effect
    np.testing.assert_allclose(res.p, small.p, atol=1e-9)
    np.testing.assert_allclose(res.slower_z, small.slower_z, atol=1e-9)


def test_residual_scaling_flags_one_over_n_residual():
    """A constant e in n·cumulant (residual e/n, 1/n law) of 50 se is flagged, with the sign of e."""
    rng = np.random.default_rng(5)
    e = 50 * SE * rng.choice([-1.0, 1.0], size=SHAPE)
    s, T = _synthetic(5, e=e)
    res = residual_scaling(s, T, corrections=1)
    assert np.all((res.p < 1e-6) | (np.abs(res.slower_z) > 5))
    assert np.all(np.abs(res.slower_z) > 5), np.abs(res.slower_z).min()
    np.testing.assert_array_equal(np.sign(res.slower_z), np.sign(e))
    # equivalently: a wrong tensor T' = T − e leaves the same 1/n residual
    s0, _ = _synthetic(5)
    res_wrong = residual_scaling(s0, T - e, corrections=1)
    np.testing.assert_allclose(res_wrong.slower_z, res.slower_z, rtol=1e-6)


def test_residual_scaling_slower_z_is_the_one_over_n_coefficient():
    """Noise-free T + e + c/n + d/n²: slower_z is exactly e over the se of the n·residual ∝ n term."""
    e = np.linspace(-0.5, 0.5, SHAPE[0])
    s, T = _synthetic(11, e=e, noise=False)
    res = residual_scaling(s, T, corrections=1)
    # se of the coefficient of y ∝ n (y = n²·residual, se n·SE) in the fit (n, 1, 1/n)
    _, cse, _ = _wls(1.0 / NS, np.zeros((4, 1)), (NS * SE)[:, None], (-1, 0, 1))
    np.testing.assert_allclose(res.slower_z, e / cse[0, 0], rtol=1e-6, atol=1e-6)
    assert res.p[np.abs(e) > 0.1].max() < 1e-6  # the 1/n² law cannot fit it


def test_residual_scaling_corrections_absorb_one_over_n_cubed():
    """A large 1/n³ residual (d/n² in value) fails the bare 1/n² law but passes with one correction."""
    s, T = _synthetic(6, d_scale=2e3)
    bare = residual_scaling(s, T, corrections=0)
    assert bare.dof == 3 and np.median(bare.p) < 1e-6
    corr = residual_scaling(s, T, corrections=1)
    assert corr.p.min() > 1e-3 and np.abs(corr.slower_z).max() < 4.0


def test_residual_scaling_kernel_mode_flags_wrong_K1():
    """For K (leading given): K0 + K1/n + d/n² passes; the same data against K1 + δ are flagged."""
    rng = np.random.default_rng(7)
    K0, K1, d = rng.normal(size=SHAPE), rng.normal(size=SHAPE), rng.normal(size=SHAPE)
    ses = np.full((4,) + SHAPE, 1e-5)
    nb = NS[:, None]
    vals = K0 + K1 / nb + d / nb**2 + ses * rng.normal(size=ses.shape)
    s = _sweep(vals, ses, name="K")
    ok = residual_scaling(s, K1, K0, corrections=1)
    assert ok.p.min() > 1e-3 and np.abs(ok.slower_z).max() < 4.0
    bad = residual_scaling(s, K1 + 0.05, K0, corrections=1)  # residual −0.05/n
    assert np.all(bad.slower_z < -5)


def test_residual_scaling_needs_enough_widths():
    """Too few widths for the law raises; the default correction count follows the number of widths."""
    s, T = _synthetic(8, ns=NS[:3])
    assert residual_scaling(s, T).coefficients.shape[0] == 1  # 3 widths: no correction
    with pytest.raises(ValueError):
        residual_scaling(s, T, corrections=2)
    s2, T2 = _synthetic(8, ns=NS[:1])
    with pytest.raises(ValueError):
        residual_scaling(s2, T2)


# ---------------------------------------------------------------- extrapolate and agreement


def test_extrapolate_noise_free_recovers_intercept_and_slope():
    """Noise-free T + c/n (unequal se): extrapolate returns T and c to 1e-10 and chi2/dof ≈ 0."""
    rng = np.random.default_rng(9)
    T, c = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    ses = rng.uniform(0.01, 0.1, size=(4, 3, 4))
    vals = T + c / NS[:, None, None]
    fit = extrapolate(_sweep(vals, ses))
    np.testing.assert_allclose(fit.intercept, T, atol=1e-10)
    np.testing.assert_allclose(fit.slope, c, atol=1e-10)
    assert np.all(fit.chi2_dof < 1e-16)
    # its standard errors are those of the general weighted least squares
    _, cse, _ = _wls(1.0 / NS, vals, ses, (0, 1))
    np.testing.assert_allclose(fit.intercept_se, cse[0], rtol=1e-8)
    np.testing.assert_allclose(fit.slope_se, cse[1], rtol=1e-8)


def test_agreement_z_scores_are_standard_normal_under_noise():
    """With noise, z of the intercept and slope against the truth are ~N(0,1); a shifted T gives large z."""
    rng = np.random.default_rng(10)
    T, c = rng.normal(size=(2000,)), rng.normal(size=(2000,))
    ses = np.full((4, 2000), SE)
    vals = T + c / NS[:, None] + SE * rng.normal(size=ses.shape)
    fit = extrapolate(_sweep(vals, ses))
    a = agreement(T, fit, slope_prediction=c)
    for z in (a["z"], a["z_slope"]):
        assert abs(z.mean()) < 0.1 and 0.9 < z.std() < 1.1
    assert a["max_abs_z"] < 5 and a["max_abs_z_slope"] < 5
    assert a["max_abs_z"] == pytest.approx(np.abs(a["z"]).max())
    assert 0.85 < fit.chi2_dof.mean() < 1.15  # dof = 4 − 2
    # sign convention z = (fit − prediction)/se: a prediction too high by 10 se gives z ≈ −10
    shifted = agreement(T + 10 * fit.intercept_se, fit)
    assert abs(shifted["z"].mean() + 10) < 0.1
    assert "z_slope" not in shifted


# ---------------------------------------------------------------- scaled_widths and rounding_shift

CFG = {"widths": [2, 20, 30, 24], "activation": "tanh", "C_W": [1.2, 1.6, 1.4],
       "C_b": [0.1, 0.0, 0.2], "lambda_W": [1.0, 0.5, 1.5], "lambda_b": [0.2, 0.1, 0.0],
       "inputs": [[1.0, 0.3], [-0.4, 0.9]], "layer": 3, "tensors": ["V", "K"]}


@pytest.mark.parametrize("n", [2, 5, 15, 16, 17, 30, 45, 64, 127, 1000])
def test_scaled_widths_keeps_input_width_and_ratios(n):
    """n0 is kept, n_{layer-1} = n, widths are integers ≥ 1 and the ratios move by ≤ rounding."""
    widths, layer = CFG["widths"], CFG["layer"]
    w = scaled_widths(widths, layer, n)
    assert len(w) == len(widths) and w[0] == widths[0] and w[layer - 1] == n
    assert all(isinstance(v, int) and v >= 1 for v in w)
    base = widths[layer - 1]
    for v, v0 in zip(w[1:], widths[1:]):
        exact = v0 * n / base
        assert v == max(2, v) and (abs(v - exact) <= 0.5 or v == 2)
    if _exact(widths, layer, n):
        assert all(v * base == v0 * n for v, v0 in zip(w[1:layer], widths[1:layer]))


def test_scaled_widths_exact_multiple_and_input_layer():
    """An exact multiple scales every hidden width exactly; layer 1 leaves the widths unchanged."""
    assert scaled_widths([2, 20, 30, 24], 3, 45) == [2, 30, 45, 36]
    assert scaled_widths([2, 20, 30, 24], 3, 60) == [2, 40, 60, 48]
    assert scaled_widths([3, 10, 20], 1, 7) == [3, 10, 20]


def test_rounding_shift_zero_for_exact_ratios():
    """Widths scaled exactly (ratios preserved) give a zero shift for the 1/n tensor and for K."""
    for n in (15, 45, 60):
        w = scaled_widths(CFG["widths"], CFG["layer"], n)
        assert _exact(CFG["widths"], CFG["layer"], n)
        sh = rounding_shift(CFG, w, n)
        assert set(sh) == {"V", "K"}
        for v in sh.values():
            assert np.abs(v).max() <= 1e-14


def test_rounding_shift_conventions_and_decay():
    """Rounded ratios: shift = T(widths) − T(config) for V, ΔK1/n for K; finite, nonzero, → 0 with n."""
    ref = feyntk.predict({**CFG, "tensors": ["V", "K1"]})["tensors"]
    mags = {"V": [], "K": []}
    ns = [16, 64, 256, 1024]
    for n in ns:
        w = scaled_widths(CFG["widths"], CFG["layer"], n)
        assert not _exact(CFG["widths"], CFG["layer"], n)
        sh = rounding_shift(CFG, w, n)
        new = feyntk.predict({**CFG, "widths": w, "tensors": ["V", "K1"]})["tensors"]
        dV = np.asarray(new["V"]["value"]) - np.asarray(ref["V"]["value"])
        dK1 = np.asarray(new["K1"]["value"]) - np.asarray(ref["K1"]["value"])
        np.testing.assert_allclose(sh["V"], dV, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(sh["K"], dK1 / n, rtol=1e-12, atol=1e-18)
        for t in ("V", "K"):
            assert np.all(np.isfinite(sh[t])) and np.abs(sh[t]).max() > 0
            mags[t].append(np.abs(sh[t]).max())
    # the ratio moves by O(1/n): V's shift falls like 1/n, K's (ΔK1/n) like 1/n²
    assert all(a > b for a, b in zip(mags["V"], mags["V"][1:]))
    assert all(a > b for a, b in zip(mags["K"], mags["K"][1:]))
    assert mags["V"][-1] < 0.05 * mags["V"][0] and mags["K"][-1] < 1e-3 * mags["K"][0]
    # n·shift stays bounded: the ratio moves by at most the rounding of n_1, ~0.5/n_1
    assert all(m * n < 0.5 for m, n in zip(mags["V"], ns))


def test_rounding_shift_sign_follows_rounding_direction():
    """Rounding n_1 up (n=16) or down (n=17) by the same relative amount flips the sign of V's shift."""
    w16 = scaled_widths(CFG["widths"], CFG["layer"], 16)  # n1 = 11 > 10.67
    w17 = scaled_widths(CFG["widths"], CFG["layer"], 17)  # n1 = 11 < 11.33
    assert w16[1] == 11 and w17[1] == 11
    s16, s17 = rounding_shift(CFG, w16, 16)["V"], rounding_shift(CFG, w17, 17)["V"]
    big = np.abs(s16) > 1e-6
    assert big.any()
    assert np.all(np.sign(s16[big]) == -np.sign(s17[big]))
