"""Theory of trained ensembles against real trained networks at several widths (MATH.md §5, §7).

:func:`train_sweep` trains ensembles at expansion widths n = n_{L−1} (hidden widths scaled
together) and collects their variance-reduced means as a :class:`~feyntk.validate.compare.Sweep`;
:func:`check_mean` fits ``E[z](n) = μ + mean1/n + d/n²`` per entry and returns z-scores of the
intercept (against ``mean``) and of the slope (against ``mean1``), and the residual after
subtracting both, which must fall like 1/n².
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from feyntk.validate.compare import Sweep, extrapolate


def scaled_config(config: Mapping[str, Any], n: int) -> dict[str, Any]:
    """The config with every hidden width set to n (input and output widths kept)."""
    w = list(config["widths"])
    return {**config, "widths": [w[0]] + [n] * (len(w) - 2) + [w[-1]]}


def train_sweep(config: Mapping[str, Any], ns: Sequence[int], *, samples: int, seed: int = 0,
                progress: bool = False) -> Sweep:
    """Monte Carlo trained-ensemble means (N_e, n_L) at each width n, with standard errors."""
    from feyntk.api import train_sample

    vals, ses = [], []
    for n in ns:
        out = train_sample(scaled_config(config, n), samples=samples, seed=seed + n,
                           progress=progress)
        vals.append(out["mean"]["value"])
        ses.append(out["mean"]["se"])
    return Sweep("mean", np.asarray(ns, float), np.array(vals), np.array(ses))


def check_mean(sweep: Sweep, mean: np.ndarray, mean1: np.ndarray, *, order: int = 2):
    """z-scores of the fitted intercept and slope, and the residual MC − (mean + mean1/n).

    Returns ``{"z_intercept", "z_slope", "residual", "residual_se", "fit"}``; the intercept and
    slope come from ``value = T + c/n (+ d/n²)`` (``order`` powers of 1/n), the slope with the
    intercept held at ``mean`` as well (``"z_slope_fixed"``: a fit of n(value − mean) = c + d/n,
    the sharper test of mean1 when the widths are few).
    """
    fit = extrapolate(sweep, order=order)
    nb = sweep.ns.reshape(-1, *([1] * mean.ndim))
    scaled = Sweep("n(mean-mu)", sweep.ns, nb * (sweep.values - mean), nb * sweep.ses)
    fixed = extrapolate(scaled, order=1)
    resid = sweep.values - (mean + mean1 / nb)
    return {"z_intercept": (fit.intercept - mean) / fit.intercept_se,
            "z_slope": (fit.slope - mean1) / fit.slope_se,
            "z_slope_fixed": (fixed.intercept - mean1) / fixed.intercept_se,
            "residual": resid, "residual_se": sweep.ses, "fit": fit}
