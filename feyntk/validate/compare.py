"""Theory vs real sampled networks across widths (MATH.md §5).

A finite network's statistics differ from the order-1/n prediction by O(1/n²). For each
entry of a tensor, :func:`width_sweep` samples networks at several widths with the width
*ratios* held fixed, and :func:`extrapolate` fits ``value(n) = T + c/n`` by weighted least
squares on the Monte Carlo estimates:

* for a 1/n tensor the sampler reports ``n · cumulant``, so the intercept T is the tensor and
  the residual ``cumulant − T/n`` must shrink like 1/n²;
* for K and Θ the sampler reports the full E[zz], E[Ĥ_ii]: the intercept is the
  infinite-width kernel and the slope c is K¹ (Θ¹).

:func:`agreement` turns a sweep and a prediction into z-scores; :func:`plot_sweep` draws theory
against sampling with error bars.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from feyntk.spec.config import parse_request


@dataclass(frozen=True)
class Sweep:
    """Monte Carlo estimates of one tensor at several expansion widths n = n_{layer-1}.

    Attributes:
        name: tensor name.
        ns: the widths n.
        values, ses: arrays ``(len(ns), *shape)`` of estimates and standard errors.
        shift: what was subtracted from the raw estimates to undo the rounding of the hidden
            widths to integers (see :func:`width_sweep`); zeros where the ratios were exact.
    """

    name: str
    ns: np.ndarray
    values: np.ndarray
    ses: np.ndarray
    shift: np.ndarray | None = None


@dataclass(frozen=True)
class Fit:
    """Weighted least-squares fit ``value(n) = intercept + slope / n (+ …)`` for every entry."""

    intercept: np.ndarray
    intercept_se: np.ndarray
    slope: np.ndarray
    slope_se: np.ndarray
    chi2_dof: np.ndarray


def scaled_widths(widths: Sequence[int], layer: int, n: int) -> list[int]:
    """Scale hidden widths so that n_{layer-1} = n, keeping ratios (n0 unchanged); each is
    rounded to an integer and at least 2 (the estimators need two neurons)."""
    base = widths[layer - 1] if layer > 1 else None
    if base is None:
        return list(widths)
    return [widths[0]] + [max(2, int(round(w * n / base))) for w in widths[1:]]


def _exact(widths: Sequence[int], layer: int, n: int) -> bool:
    base = widths[layer - 1] if layer > 1 else None
    return base is None or all(w * n % base == 0 for w in widths[1:layer])


def rounding_shift(config: Mapping[str, Any], widths: Sequence[int], n: float) -> dict:
    """Theory's change of each sampled quantity between ``widths`` (rounded) and the config's
    own width ratios: ``T(widths) − T(config)`` for a 1/n tensor (the sampler reports
    n·cumulant), ``(K¹(widths) − K¹(config))/n`` for K (Θ¹ for Θ). Rounding n_ℓ·n/n_{l-1} to an
    integer changes the ratios n_ℓ/n_{ℓ-1} that the 1/n tensors depend on by up to ~1/n_ℓ,
    an O(1) change of n·cumulant that a fit in 1/n cannot absorb."""
    from feyntk.api import predict

    req = parse_request(config)
    first = {"K": "K1", "Theta": "Theta1"}
    need = sorted({first.get(t, t) for t in req.tensors})
    cfg = {**dict(config), "tensors": need}
    new = predict({**cfg, "widths": list(widths)})["tensors"]
    ref = predict(cfg)["tensors"]
    out = {}
    for t in req.tensors:
        d = np.asarray(new[first.get(t, t)]["value"]) - np.asarray(ref[first.get(t, t)]["value"])
        out[t] = d / n if t in first else d
    return out


def width_sweep(config: Mapping[str, Any], ns: Sequence[int], *, samples: int | None = None,
                seed: int | None = None, progress: bool = False, exact_ratios: bool = True,
                **options) -> dict[str, Sweep]:
    """Sample the config's tensors at each expansion width in ``ns`` (ratios fixed).

    Hidden widths are scaled by n/n_{layer-1} and rounded to integers. With ``exact_ratios``
    (default), where rounding changed a ratio n_ℓ/n_{ℓ-1} below the layer, the theory's
    :func:`rounding_shift` is subtracted from the estimates (recorded in ``Sweep.shift``), so
    that every width measures the config's own ratios; choose ns that scale the widths exactly
    to avoid it. Width k is sampled with seed ``seed + 1000·k``; ``seed`` defaults to the
    config's own ``"seed"`` (0 if it has none).
    """
    from feyntk.api import sample

    req = parse_request(config)
    if seed is None:
        seed = int(config.get("seed") or 0)
    per_width, shifts = [], []
    for k, n in enumerate(ns):
        widths = scaled_widths(req.network.widths, req.layer, n)
        cfg = {**dict(config), "widths": widths, "seed": seed + 1000 * k}
        if samples is not None:
            cfg["samples"] = samples
        per_width.append(sample(cfg, progress=progress, **options))
        exact = not exact_ratios or _exact(req.network.widths, req.layer, n)
        shifts.append(None if exact else rounding_shift(config, widths, per_width[-1]["n"]))
    out = {}
    for name in req.tensors:
        vals = np.stack([np.asarray(r["tensors"][name]["value"]) for r in per_width])
        ses = np.stack([np.asarray(r["tensors"][name]["se"]) for r in per_width])
        shift = np.stack([np.zeros(vals.shape[1:]) if sh is None else sh[name] for sh in shifts])
        ns_eff = np.array([r["n"] for r in per_width], dtype=float)
        out[name] = Sweep(name, ns_eff, vals - shift, ses, shift)
    return out


def extrapolate(sweep: Sweep, order: int = 1) -> Fit:
    """Fit ``value = T + c/n (+ d/n² + …)`` per entry (weights 1/se²).

    ``order`` is the number of 1/n powers: 1 (default) fits the leading law and needs two
    widths; 2 also absorbs the 1/n³ part of the residual (``d/n²`` in the sampler's n·cumulant),
    which matters where it is large at the smallest width (deep networks, ddNTK tensors), at
    the price of a wider intercept error; it needs three widths (four to leave a dof).
    """
    if order < 1 or len(sweep.ns) < order + 1:
        raise ValueError(f"extrapolate(order={order}) needs order >= 1 and at least {order + 1} "
                         f"widths, got {len(sweep.ns)}")
    coef, se, chi2 = _wls(1.0 / sweep.ns, sweep.values, sweep.ses, tuple(range(order + 1)))
    dof = max(len(sweep.ns) - order - 1, 1)
    return Fit(coef[0], se[0], coef[1], se[1], chi2 / dof)


def agreement(prediction: np.ndarray, fit: Fit, *, slope_prediction=None) -> dict[str, Any]:
    """z-scores of the extrapolated intercept (and slope) against the prediction."""
    z = (fit.intercept - prediction) / fit.intercept_se
    out = {"z": z, "max_abs_z": float(np.max(np.abs(z)))}
    if slope_prediction is not None:
        zs = (fit.slope - slope_prediction) / fit.slope_se
        out.update(z_slope=zs, max_abs_z_slope=float(np.max(np.abs(zs))))
    return out


def residuals(sweep: Sweep, tensor: np.ndarray, leading: np.ndarray | None = None):
    """``MC − (leading + tensor/n)`` in units of the statistic itself, and its se.

    For a 1/n tensor (``leading`` None) the sampler's value is ``n·cumulant``, so the residual is
    ``value/n − tensor/n``; for K/Θ pass the infinite-width kernel as ``leading`` and K¹/Θ¹ as
    ``tensor``. The residual should fall like 1/n².
    """
    nb = sweep.ns.reshape((-1,) + (1,) * (sweep.values.ndim - 1))
    if leading is None:
        return (sweep.values - tensor) / nb, sweep.ses / nb
    return sweep.values - (leading + tensor / nb), sweep.ses


def plot_sweep(sweep: Sweep, prediction: np.ndarray, index: tuple, ax=None, fit: Fit | None = None):
    """Monte Carlo estimates with error bars against 1/n, the fit and the predicted intercept."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    x = 1.0 / sweep.ns
    ax.errorbar(x, sweep.values[(slice(None),) + index], yerr=sweep.ses[(slice(None),) + index],
                fmt="o", capsize=3, label="Monte Carlo ± se")
    ax.axhline(prediction[index], color="tab:red", ls="--", label="prediction (n → ∞)")
    if fit is not None:
        xs = np.linspace(0, x.max() * 1.05, 50)
        ax.plot(xs, fit.intercept[index] + fit.slope[index] * xs, color="0.4", lw=1,
                label="fit T + c/n")
        ax.errorbar([0], [fit.intercept[index]], yerr=[fit.intercept_se[index]], fmt="s",
                    color="0.2", capsize=3)
    ax.set_xlabel("1/n")
    ax.set_ylabel(f"{sweep.name}{list(index)}")
    ax.legend(fontsize=7)
    return ax


@dataclass(frozen=True)
class ResidualFit:
    """How ``residual(n) = MC − (leading + tensor/n)`` falls with n, entry by entry.

    ``y = n²·residual`` is fitted by ``Σ_k c_k / n^(k-1)`` over ``powers`` (k = 2: the 1/n²
    law; k = 3 adds its 1/n³ correction). ``p`` is the goodness-of-fit p-value of that law;
    ``slower_z`` is the z-score of an extra 1/n term in the residual (a law of 1/n would give
    |slower_z| ≫ 1), i.e. of the intercept of ``y`` when it is fitted freely.
    """

    coefficients: np.ndarray  # (len(powers), ...)
    chi2: np.ndarray
    dof: int
    p: np.ndarray
    slower_z: np.ndarray


def _wls(x: np.ndarray, y: np.ndarray, se: np.ndarray, powers: Sequence[int]):
    """Weighted least squares of y on x**p (p in powers) for every trailing entry."""
    X = np.stack([x**p for p in powers], axis=1)  # (W, k)
    flat_y = y.reshape(len(x), -1)
    flat_s = np.maximum(se.reshape(len(x), -1), 1e-150)  # 1/se² must not overflow
    coef = np.empty((len(powers), flat_y.shape[1]))
    cov_diag = np.empty_like(coef)
    chi2 = np.empty(flat_y.shape[1])
    for j in range(flat_y.shape[1]):
        A = X / flat_s[:, j, None]
        b = flat_y[:, j] / flat_s[:, j]
        sol, *_ = np.linalg.lstsq(A, b, rcond=None)
        coef[:, j] = sol
        cov_diag[:, j] = np.diag(np.linalg.pinv(A.T @ A))
        chi2[j] = float(np.sum((A @ sol - b) ** 2))
    shape = y.shape[1:]
    return (coef.reshape((len(powers),) + shape), np.sqrt(cov_diag).reshape((len(powers),) + shape),
            chi2.reshape(shape))


def residual_scaling(sweep: Sweep, tensor: np.ndarray, leading: np.ndarray | None = None, *,
                     corrections: int | None = None) -> ResidualFit:
    """Test that the residual after the 1/n term falls like 1/n² (MATH.md §5).

    ``corrections``: 1/n³ terms allowed in the residual (default: 1 when the sweep has four or
    more widths, else 0). Needs at least ``2 + corrections`` widths.
    """
    from scipy.stats import chi2 as chi2_dist

    W = len(sweep.ns)
    if corrections is None:
        corrections = 1 if W >= 4 else 0
    if W < 2 + corrections:
        raise ValueError(f"residual_scaling needs at least {2 + corrections} widths, got {W}")
    r, se = residuals(sweep, tensor, leading)
    nb = sweep.ns.reshape((-1,) + (1,) * (r.ndim - 1))
    y, sy = r * nb**2, se * nb**2
    x = 1.0 / sweep.ns
    law = tuple(range(corrections + 1))  # y = c0 + c1 x + ...: residual c0/n² + c1/n³ + ...
    coef, _, chi2 = _wls(x, y, sy, law)
    dof = W - len(law)
    # the slower alternative: residual ∝ 1/n, i.e. y ∝ n (x^-1), fitted together with the law
    coef_alt, se_alt, _ = _wls(x, y, sy, (-1,) + law)
    return ResidualFit(coef, chi2, dof, chi2_dist.sf(chi2, dof), coef_alt[0] / se_alt[0])


# -- second order (MATH.md §7): K² and V¹ from width sweeps -----------------------------------
@dataclass(frozen=True)
class SecondOrderFit:
    """A second-order coefficient fitted from a width sweep, entry by entry.

    ``y(n)`` is the sampled quantity with everything predicted below the coefficient
    subtracted and rescaled so that ``y(n) = coefficient + slope/n (+ …)``:

    * K²: ``y = n² (E[z_i z_i] − K − K¹/n)`` (the sampler's K is the full finite-width E[zz]);
    * V¹: ``y = n (n Cov[z_i z_i, z_j z_j] − V)`` (the sampler's V is n·Cov).

    ``value``/``se`` are the fitted coefficient and its standard error; ``y``/``y_se`` the
    points, ``chi2_dof`` the fit's χ²/dof (dof ≥ 1 only with more widths than parameters).
    """

    name: str
    ns: np.ndarray
    y: np.ndarray
    y_se: np.ndarray
    value: np.ndarray
    se: np.ndarray
    slope: np.ndarray | None
    slope_se: np.ndarray | None
    chi2_dof: np.ndarray


_SECOND = {"K2": ("K", 2), "V1": ("V", 1)}


def second_order_fit(sweep: Sweep, predicted: Mapping[str, np.ndarray], *,
                     corrections: int = 1) -> SecondOrderFit:
    """Fit K² (from a sweep of ``K``) or V¹ (from a sweep of ``V``), see :class:`SecondOrderFit`.

    Args:
        sweep: from :func:`width_sweep` (its rounding shift already removed).
        predicted: ``{"K": K∞, "K1": K¹}`` for a K sweep, ``{"V": V}`` for a V sweep, at the
            config's width ratios (``predict``'s values).
        corrections: 1/n terms fitted beside the coefficient (default 1: ``y = c + e/n``, which
            absorbs the next order; needs ``2 + corrections`` widths, four leave a dof).
    """
    name = {v[0]: k for k, v in _SECOND.items()}.get(sweep.name)
    if name is None:
        raise ValueError(f"second_order_fit takes a sweep of K or V, got {sweep.name!r}")
    W = len(sweep.ns)
    if corrections < 0 or W < 1 + corrections + (corrections > 0):
        raise ValueError(f"second_order_fit(corrections={corrections}) needs at least "
                         f"{1 + corrections + (corrections > 0)} widths, got {W}")
    nb = sweep.ns.reshape((-1,) + (1,) * (sweep.values.ndim - 1))
    if name == "K2":
        r = sweep.values - (np.asarray(predicted["K"]) + np.asarray(predicted["K1"]) / nb)
        y, ys = r * nb ** 2, sweep.ses * nb ** 2
    else:
        y, ys = (sweep.values - np.asarray(predicted["V"])) * nb, sweep.ses * nb
    coef, se, chi2 = _wls(1.0 / sweep.ns, y, ys, tuple(range(corrections + 1)))
    dof = max(W - corrections - 1, 1)
    return SecondOrderFit(name, sweep.ns, y, ys, coef[0], se[0],
                          coef[1] if corrections else None, se[1] if corrections else None,
                          chi2 / dof)


def second_order_sweep(config: Mapping[str, Any], ns: Sequence[int], *, samples: int,
                       seed: int | None = None, corrections: int = 1,
                       **options) -> dict[str, dict[str, Any]]:
    """Sample K and V of ``config`` at the widths ``ns`` and fit K² and V¹ against ``predict``.

    Returns ``{"K2": {...}, "V1": {...}}``, each with ``fit`` (:class:`SecondOrderFit`),
    ``prediction`` and ``z = (fit − prediction)/se``; ``"sweeps"`` holds the raw sweeps.

    How many networks (measured, tanh, widths [2, n, n, n], C_W 1.5, C_b 0.1, one input, all n
    neurons of the last layer per network, S networks per width; tests/test_second_order_mc.py):
    the se of the sampled E[zz] is ≈ 0.97/√(S n) and of n·Cov ≈ 1.5/√S, so a point of y has
    se ≈ 0.97 n^{3/2}/√S (K²) and ≈ 1.5 n/√S (V¹). With corrections=1 the fitted coefficient's
    se is ≈ 29/√S (K²) and ≈ 17/√S (V¹) for ns = 4, 6, 8, 12, and ≈ 81/√S and ≈ 31/√S for
    ns = 8, 12, 16, 24 (2·10⁶ networks per width: K² 0.018 ± 0.057, V¹ 0.0004 ± 0.022). There
    K² = −0.0116 and V¹ = −0.0138, so resolving them at 3σ takes ≈ 6·10⁷ (K²) and ≈ 1.4·10⁷
    (V¹) networks per width at ns = 4…12, ≈ 4·10⁸ and ≈ 5·10⁷ at ns = 8…24; sweeps of
    10⁵–10⁶ networks per width (seconds to minutes on a CPU) check consistency at that se only.
    """
    from feyntk.api import predict

    cfg = {**dict(config), "tensors": ["K", "V"]}
    sweeps = width_sweep(cfg, ns, samples=samples, seed=seed, **options)
    pred = {k: np.asarray(v["value"]) for k, v in
            predict({**dict(config), "tensors": ["K", "K1", "V", "K2", "V1"]})["tensors"].items()}
    out: dict[str, Any] = {"sweeps": sweeps}
    for name, (base, _) in _SECOND.items():
        fit = second_order_fit(sweeps[base], pred, corrections=corrections)
        out[name] = {"fit": fit, "prediction": pred[name], "z": (fit.value - pred[name]) / fit.se}
    return out
