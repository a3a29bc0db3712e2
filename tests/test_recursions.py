"""Derived recursions: exact facts of MATH.md, both forms, LaTeX, bad input."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import feyntk
from feyntk.errors import ActivationError, DegenerateKernelError, MemoryBudgetError, SpecError
from feyntk.numbers.evaluate import dependencies, evaluate
from feyntk.numbers.infinite import kernel_layers
from feyntk.recursions.recursion import recursion
from feyntk.spec.network import Network
from feyntk.testing import SMOOTH

ALL = ("K", "Theta", "K1", "V", "Theta1", "A", "B", "D", "F", "P", "Q", "R", "S", "T", "U")
ONE_OVER_N = ALL[2:]


def test_layer_one_all_corrections_vanish():
    net = Network.create([3, 7], "tanh", C_W=1.4, C_b=0.1)
    out = evaluate(net, [[1.0, 0.5, -0.2], [0.3, -1.0, 0.8]], ONE_OVER_N, layer=1)
    for name in ONE_OVER_N:
        assert np.all(out[name] == 0.0), name


@pytest.mark.parametrize("l", [2, 3, 4, 5])
def test_deep_linear_ddntk_values(l):
    """Deep linear, one input: R = U = 0 (σ'' = 0), S = T = l²(l²−1)/12 K², Q = (l+1)l(l−1)/6 K²
    (derived from the paper's recursions in our transcription; Monte Carlo confirms them in
    test_validation_mc)."""
    x = np.array([[0.9, 0.4]])
    K = (x @ x.T / 2).item()
    out = evaluate(Network.create([2] + [5] * l, "linear"), x, ["R", "S", "T", "U", "Q"])
    exact = {"R": 0.0, "U": 0.0, "S": l * l * (l * l - 1) / 12, "T": l * l * (l * l - 1) / 12,
             "Q": (l + 1) * l * (l - 1) / 6}
    for name, v in exact.items():
        assert out[name].item() == pytest.approx(v * K**2, rel=1e-12, abs=1e-14), name


@pytest.mark.parametrize("l", [2, 3, 4, 5])
def test_deep_linear_exact_values(l):
    """REFERENCES.md: σ = z, C_W = 1, C_b = 0, λ_W = 1, λ_b = 0, equal widths, one input."""
    x = np.array([[1.3, -0.4, 0.7]])
    K = (x @ x.T / 3).item()
    T = l * K
    out = evaluate(Network.create([3] + [9] * l, "linear"), x, ALL)
    exact = {"K": K, "Theta": T, "V": 2 * (l - 1) * K**2, "F": (l - 1) / 2 * K * T,
             "D": (l - 1) * K * T, "B": (l - 1) * (2 * l - 1) / (6 * l) * T**2,
             "A": 2 * (l - 1) * (2 * l - 1) / (6 * l) * T**2, "K1": 0.0, "Theta1": 0.0,
             "P": 0.0}
    for name, value in exact.items():
        assert out[name].ravel()[0] == pytest.approx(value, rel=1e-12, abs=1e-12), name


def test_deep_linear_dntk_values_engine_predicts():
    """σ'' = 0 kills P; Q obeys Q^{(l+1)} = Q^{(l)} + F^{(l)} + KΘ (λ_W = C_W = 1, one input):
    the engine's diagrams reduce to this, and Monte Carlo confirms it (test_validation_mc)."""
    x = np.array([[0.9, 0.4]])
    K = (x @ x.T / 2).item()
    Q = 0.0
    for l in range(2, 6):
        out = evaluate(Network.create([2] + [5] * l, "linear"), x, ["Q", "P"])
        F_prev = (l - 2) / 2 * K * (l - 1) * K
        Q = Q + F_prev + K * (l - 1) * K
        assert out["Q"].ravel()[0] == pytest.approx(Q, rel=1e-12)
        assert out["P"].ravel()[0] == 0.0


@pytest.mark.parametrize("l", [2, 3, 4])
def test_relu_at_criticality(l):
    """MATH.md's relu facts on every diagonal entry, with three inputs (so that the off-diagonal
    entries take 3-sample integrals on the conical rule)."""
    x = np.array([[1.0, 0.2], [-0.3, 0.8], [0.5, -0.6]])
    out = evaluate(Network.create([2] + [8] * l, "relu", C_W=2.0, lambda_W=2.0), x,
                   ["K", "V", "K1", "Theta1"])
    K = out["K"]
    for a in range(3):
        assert out["V"][a, a, a, a] == pytest.approx(5 * (l - 1) * K[a, a] ** 2, rel=1e-9)
        assert abs(out["K1"][a, a]) < 1e-10 * K[a, a]
        assert abs(out["Theta1"][a, a]) < 1e-10 * K[a, a]
    if l >= 3:  # off-diagonal corrections do exist once layer-(l-1) V is non-zero
        assert np.abs(out["K1"][0, 1]) > 1e-6


def test_normalised_tensors_grow_linearly_at_criticality():
    x = np.array([[1.1]])
    vals = []
    for l in range(2, 9):
        o = evaluate(Network.create([1] + [4] * l, "relu", C_W=2.0, lambda_W=1.0), x,
                     ["K", "Theta", "V", "A", "D", "F", "B"])
        K, T = o["K"].item(), o["Theta"].item()
        vals.append([o["V"].item() / K**2, o["A"].item() / T**2, o["D"].item() / (K * T),
                     o["F"].item() / (K * T), o["B"].item() / T**2])
    steps = np.diff(np.array(vals), axis=0)
    assert np.all(steps > 0)
    # increments settle to a constant: growth linear in depth (expansion parameter l/n)
    assert np.all(np.abs(steps[-1] - steps[-2]) < 0.05 * np.abs(steps[-1]))


@pytest.mark.parametrize("act", ["tanh", "relu", "erf", "gelu"])
def test_engine_K_Theta_match_closed_form_kernels(act):
    net = Network.create([2, 6, 5, 7], act, C_W=[1.1, 1.7, 1.3], C_b=[0.1, 0.3, 0.0],
                         lambda_W=[0.8, 1.2, 1.0], lambda_b=[0.1, 0.0, 0.2])
    x = np.array([[1.0, 0.3], [-0.5, 0.8], [0.2, 0.1]])
    out = evaluate(net, x, ["K", "Theta"])
    ref = kernel_layers(net, x)[-1]
    np.testing.assert_allclose(out["K"], ref.K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["Theta"], ref.Theta, rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_derivative_and_inverse_metric_forms_agree(data):
    act = data.draw(st.sampled_from(SMOOTH + ("linear",)))
    L = data.draw(st.integers(2, 3))
    N = data.draw(st.integers(1, 2))
    widths = [2] + [data.draw(st.integers(2, 40)) for _ in range(L)]
    hp = {k: [data.draw(st.floats(lo, hi)) for _ in range(L)]
          for k, lo, hi in (("C_W", 0.5, 2.0), ("C_b", 0.0, 0.4), ("lambda_W", 0.2, 1.5),
                            ("lambda_b", 0.0, 0.5))}
    x = np.array([[data.draw(st.floats(-1.5, 1.5)) for _ in range(2)] for _ in range(N)])
    assume(np.linalg.matrix_rank(x @ x.T, tol=1e-3) == N)
    names = data.draw(st.lists(st.sampled_from(ONE_OVER_N), min_size=1, max_size=3, unique=True))
    net = Network.create(widths, act, **hp)
    a = evaluate(net, x, names, form="derivative")
    b = evaluate(net, x, names, form="inverse-metric")
    for n in names:
        np.testing.assert_allclose(a[n], b[n], rtol=1e-8, atol=1e-10)


def test_dependency_closure():
    assert dependencies(["V"]) == ("K", "V")
    assert dependencies(["K1"]) == ("K", "K1", "V")
    assert set(dependencies(["Theta1"])) == {"K", "Theta", "K1", "V", "Theta1", "D", "F"}
    assert set(dependencies(["P"])) == {"K", "Theta", "B", "P"}


def test_latex_golden_and_text():
    rec = recursion("V")
    assert rec.latex() == (
        r"\begin{aligned} {V^{(\ell+1)}}_{\alpha_{1},\alpha_{2},\alpha_{3},\alpha_{4}} &= "
        r"\left(C_W^{(\ell+1)}\right)^{2} \left\langle \sigma_{\alpha_{1}} \sigma_{\alpha_{2}} "
        r"\sigma_{\alpha_{3}} \sigma_{\alpha_{4}} \right\rangle_{K} \\ &\quad - "
        r"\left(C_W^{(\ell+1)}\right)^{2} \left\langle \sigma_{\alpha_{1}} \sigma_{\alpha_{2}} "
        r"\right\rangle_{K} \left\langle \sigma_{\alpha_{3}} \sigma_{\alpha_{4}} \right\rangle_{K}"
        r" \\ &\quad + \frac{\left(C_W^{(\ell+1)}\right)^{2} \frac{n_{\ell}}{n_{\ell-1}} "
        r"\sum_{\gamma_{1}\gamma_{2}\gamma_{3}\gamma_{4}} \left\langle \partial_{\gamma_{1}}"
        r"\partial_{\gamma_{2}}\left(\sigma_{\alpha_{1}} \sigma_{\alpha_{2}}\right) "
        r"\right\rangle_{K} \left\langle \partial_{\gamma_{3}}\partial_{\gamma_{4}}\left("
        r"\sigma_{\alpha_{3}} \sigma_{\alpha_{4}}\right) \right\rangle_{K} "
        r"{V^{(\ell)}}_{\gamma_{1},\gamma_{2},\gamma_{3},\gamma_{4}}}{4} \end{aligned}")
    assert rec._repr_latex_().startswith("$\\displaystyle")
    inv = recursion("F", "inverse-metric")
    assert "mathcal{H}" in inv.latex() and "He[gamma_1]" in str(inv)


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["relu", {"name": "leaky_relu", "slope": 0.2}])
def test_kinked_activation_both_forms_agree(act):
    """σ'' = δ: the derivative form integrates the deltas (lower-dimensional Gaussian
    integrals), the inverse-metric form needs none; on distinct inputs they agree."""
    net = Network.create([2, 5, 6, 5], act, C_W=1.8, C_b=0.1, lambda_b=0.2)
    x = [[1.0, 0.2], [-0.3, 0.8]]
    names = ["K1", "V", "Theta1", "A", "B", "D", "F", "P", "Q"]
    a = evaluate(net, x, names, form="derivative")
    b = evaluate(net, x, names, form="inverse-metric")
    for n in names:
        np.testing.assert_allclose(a[n], b[n], rtol=1e-9, atol=1e-11)


def test_relu_is_the_limit_of_sharp_softplus():
    """softplus_β(z) = log(1 + e^{βz})/β → relu as β → ∞; every tensor converges to the relu
    prediction (K, K¹, V like 1/β², the others like 1/β)."""
    x = [[1.0, 0.2], [-0.3, 0.8]]
    names = ["K", "Theta", "K1", "V", "Theta1", "A", "B", "D", "F", "P", "Q"]
    hp = dict(C_W=1.8, C_b=0.1, lambda_b=0.2)
    relu = evaluate(Network.create([2, 8, 8, 8], "relu", **hp), x, names)
    gaps = []
    for beta in (4, 8, 32):
        sp_ = evaluate(Network.create([2, 8, 8, 8], {"name": "softplus", "beta": beta}, **hp), x,
                       names, form="inverse-metric")
        gaps.append([np.abs(sp_[n] - relu[n]).max() / np.abs(relu[n]).max() for n in names])
    gaps = np.array(gaps)
    assert np.all(gaps[2] < 0.5 * gaps[1]) and np.all(gaps[1] < gaps[0]), gaps
    assert np.all(gaps[2] < 0.25), gaps


def test_ill_defined_kinked_entries_are_named():
    """R needs ⟨σ‴σ'⟩ at one sample on its diagonal: δ'·H is not defined (it diverges for
    softplus_β), so the entry is refused with its index, not returned as a number."""
    net = Network.create([2, 5, 5, 5], "relu", C_W=2.0)
    with pytest.raises(ActivationError, match=r"R\[0, 0, 0, 0\] is not defined for 'relu'"):
        evaluate(net, [[1.0, 0.0]], ["R"])
    with pytest.raises(ActivationError, match="not defined"):  # σ' = δ: δ² in ⟨σ'σ'⟩
        evaluate(Network.create([2, 5, 5, 5], "Heaviside(z)", C_W=2.0), [[1.0, 0.0]], ["Theta1"])


def test_duplicate_inputs_singular_K():
    net = Network.create([2, 5, 5, 5], "relu", C_W=2.0)
    x = [[1.0, 0.5], [1.0, 0.5]]
    # exact duplicates are evaluated once (tests/test_repeated_inputs.py); collinear inputs
    # (C_b = 0, relu is homogeneous) keep a singular K at every layer
    with pytest.raises(DegenerateKernelError, match="duplicate or collinear"):
        evaluate(net, [[1.0, 0.5], [2.0, 1.0]], ["V"], form="inverse-metric")
    # the derivative form needs no inverse and gives the limit: duplicates act as one input
    # (relu: a kink at exactly coinciding samples turns rounding of K, 1e-16, into ~√1e-16)
    for act, rtol in (("relu", 1e-7), ("tanh", 1e-10)):
        out = evaluate(Network.create([2, 5, 5, 5], act, C_W=2.0), x, ["V"])
        np.testing.assert_allclose(out["V"][0, 0, 0, 0], out["V"][1, 0, 0, 1], rtol=rtol)


def test_predict_contract_errors():
    cfg = {"widths": [2, 4, 4], "inputs": [[1.0, 0.0]], "tensors": ["R"]}
    assert feyntk.predict(cfg)["tensors"]["R"]["value"].shape == (1, 1, 1, 1)
    with pytest.raises(SpecError, match="unknown tensor"):
        feyntk.predict({**cfg, "tensors": ["X"]})
    big = {"widths": [1, 4, 4], "inputs": [[float(i)] for i in range(60)], "tensors": ["A"]}
    with pytest.raises(MemoryBudgetError, match="GiB"):
        feyntk.predict(big, max_memory_bytes=10**6)


def test_declared_index_symmetries_hold():
    """The symmetries in the statistic registry (used to skip duplicate entries) hold exactly
    for the engine's predictions."""
    from feyntk.spec.statistic import REGISTRY, symmetry_group

    net = Network.create([2, 5, 6, 7], "tanh", C_W=[1.2, 1.5, 1.1], C_b=0.1, lambda_b=0.2)
    x = [[1.0, 0.2], [-0.3, 0.8]]
    out = evaluate(net, x, list(REGISTRY))
    for name, arr in out.items():
        for g in symmetry_group(name):
            np.testing.assert_allclose(np.transpose(arr, g), arr, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} {g}")
