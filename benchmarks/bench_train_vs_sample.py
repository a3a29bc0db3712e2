"""Trained ensembles, theory vs real trained networks: the cost of each at equal error.

Usage: ``python benchmarks/bench_train_vs_sample.py [--quick] [--pilot S] [--n 64]``

One configuration (``feyntk example --train``'s kind: tanh, depth 3, n_L = 1, per-layer
hyperparameters, 3 training and 2 evaluation inputs, T = 10 steps of gradient descent with
η = 0.5), at width n = n_{L−1}, measured in one run:

* ``train``: wall time of a first call (diagram derivation, kernel generation, JAX tracing of the
  step map) and of a warm second call: the reference. It returns μ (infinite width) and mean1
  (the coefficient of 1/n), so E[z](n) ≈ μ + mean1/n.
* ``train-sample``: a warm-up call (JAX compilation), then a timed pilot of S real networks
  trained from their random initialisations (the variance-reduced estimator of E[z_T]).

Two errors are compared per evaluation entry, both in units of the finite-width shift
``|mean1|/n`` that the theory exists to predict:

* the **theory's own error** at this width, ``|MC − (μ + mean1/n)|`` (its O(1/n²) truncation),
  measured against the pilot (so it is known only to ± the pilot's se, which is printed);
* the **Monte Carlo standard error**, ``se(S)``, extrapolated with se ∝ 1/√S of independent
  networks.

"Equal error" is the number of trained networks whose se equals the theory's measured error
(``S_eq = S·(se/err)²``), and the number for 10% and 1% of the shift. Their cost over the warm
``train`` time is the ratio reported. A single width's Monte Carlo mean is the exact finite-width
mean (no truncation), but *separating* μ and mean1 from it takes a sweep over widths
(``feyntk.training.compare``), so the Monte Carlo figures are lower bounds on that task.

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fmt_time, machine_line  # noqa: E402

CONFIG = {"activation": "tanh", "widths": [2, 64, 64, 1], "C_W": [1.2, 1.5, 1.8], "C_b": 0.1,
          "lambda_W": [1.0, 0.7, 1.3], "lambda_b": [0.1, 0.2, 0.05],
          "inputs": [[0.8, -0.2], [-0.3, 0.7]],
          "train_inputs": [[1.0, 0.2], [-0.3, 1.0], [-0.8, -0.9]],
          "targets": [[0.5], [-0.3], [0.2]], "steps": 10, "eta": 0.5}




def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short pilot run (2000 networks)")
    parser.add_argument("--pilot", type=int, default=None,
                        help="trained networks in the pilot (default 16000, --quick 2000)")
    parser.add_argument("--n", type=int, default=64, help="hidden width n (default 64)")
    args = parser.parse_args(argv)
    pilot = args.pilot or (2000 if args.quick else 16000)
    cfg = {**CONFIG, "widths": [2, args.n, args.n, 1]}

    import feyntk

    print(machine_line())
    print(f"config: {cfg['activation']}, widths {cfg['widths']}, {len(cfg['train_inputs'])} "
          f"training and {len(cfg['inputs'])} evaluation inputs, T = {cfg['steps']} steps, "
          f"eta = {cfg['eta']}\n")

    t0 = time.perf_counter()
    feyntk.train(cfg)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    theory = feyntk.train(cfg)
    t_train = time.perf_counter() - t0

    t0 = time.perf_counter()
    feyntk.train_sample(cfg, samples=64, seed=1, progress=False)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    mc = feyntk.train_sample(cfg, samples=pilot, seed=2, progress=False)
    t_pilot = time.perf_counter() - t0
    per_net = t_pilot / pilot

    print("| step | wall time |")
    print("|---|---|")
    print(f"| train, first call (derives, generates, traces) | {t_cold:.2f} s |")
    print(f"| train, warm (second call): reference | {t_train:.3f} s |")
    print(f"| train-sample, warm-up (64 networks, includes JAX compilation) | {t_warm:.2f} s |")
    print(f"| train-sample, pilot ({pilot} networks, {cfg['steps']} steps each) | "
          f"{t_pilot:.2f} s ({pilot / t_pilot:,.0f} networks/s) |\n")

    n = theory["n"]
    mu = theory["mean"]["value"].ravel()
    shift = theory["mean1"]["value"].ravel() / n
    val = mc["mean"]["value"].ravel()
    se = mc["mean"]["se"].ravel()
    err = np.abs(val - (mu + shift))
    print(f"Width n = {n}. Errors in units of the finite-width shift |mean1|/n; networks needed "
          f"extrapolated from the {pilot}-network pilot with se ~ 1/sqrt(S).\n")
    print("| entry | μ | mean1/n | MC E[z] − μ ± se | theory error |MC − (μ + mean1/n)| | "
          "networks for equal error | MC time / train time | networks for 10% | ratio | "
          "networks for 1% | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for i in range(len(mu)):
        s_eq = pilot * (se[i] / max(err[i], se[i])) ** 2
        s10 = pilot * (se[i] / (0.1 * abs(shift[i]))) ** 2
        s1 = pilot * (se[i] / (0.01 * abs(shift[i]))) ** 2
        bound = "≤ " if err[i] < se[i] else ""
        print(f"| {i} | {mu[i]:.5f} | {shift[i]:.2e} | {val[i] - mu[i]:.2e} ± {se[i]:.1e} | "
              f"{bound}{max(err[i], se[i]):.1e} ({max(err[i], se[i]) / abs(shift[i]):.0%} of the "
              f"shift) | {bound.replace('≤', '≥')}{s_eq:,.0f} | "
              f"{s_eq * per_net / t_train:.2g} | {s10:,.0f} | {s10 * per_net / t_train:.2g} | "
              f"{s1:,.0f} | {s1 * per_net / t_train:,.0f} |")
    print("\nWhere the theory's error is below the pilot's se it is only bounded by it (≤), and "
          "the networks for equal error are then at least the pilot (≥). Monte Carlo times are "
          f"{fmt_time(per_net)} per network and grow like 1/ε².")


if __name__ == "__main__":
    main()
