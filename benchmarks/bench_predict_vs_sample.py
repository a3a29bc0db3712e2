"""Theory vs sampling cost: predict time against the Monte Carlo time to reach a relative error.

Usage: ``python benchmarks/bench_predict_vs_sample.py [--quick] [--pilot S] [--eps 0.1 0.01]``

One configuration (tanh, widths 2-32-32-32, N = 2 inputs, layer 3, tensors V, A, B, D, F; the
hyperparameters of the shipped example), measured in one run:

* ``predict``: wall time of the first call (diagram derivation, quadrature rules) and of a second,
  warm call; the warm time is the reference.
* ``sample``: one small warm-up call (JAX compilation), then a timed pilot run of ``S`` networks
  estimating all five tensors together (as ``feyntk sample`` does).

For each tensor the reference entry is the one of largest |prediction|; its relative standard
error after the pilot, ``r = se/|predict|``, is **extrapolated** with the ``se ~ 1/sqrt(S)`` law of
independent networks to the number of networks that gives a relative error ``eps``:
``S_eps = S · (r/eps)²``, costing ``S_eps · (pilot time / S)`` seconds. The table reports that time
divided by the warm predict time (one table per ``eps``; 10% and 1% by default). A second ratio
uses the worst entry among those with |prediction| >= 10% of the largest. Both are lower bounds
on what Monte Carlo needs to *measure* a 1/n tensor: a single width's estimate still carries an
O(1/n) bias, and removing it takes a sweep over at least two widths (MATH.md §5).

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

CONFIG = {"widths": [2, 32, 32, 32], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
          "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[1.0, 0.3], [-0.4, 0.9]], "layer": 3,
          "tensors": ["V", "A", "B", "D", "F"], "seed": 0}




def _fmt_ratio(x: float) -> str:
    return f"{x:.2g}" if x < 10 else f"{x:,.0f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short pilot run (500 networks)")
    parser.add_argument("--pilot", type=int, default=None,
                        help="networks in the pilot run (default 4000, --quick 500)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.01],
                        help="target relative errors, one table each (default 0.1 0.01)")
    args = parser.parse_args(argv)
    pilot = args.pilot or (500 if args.quick else 4000)

    import feyntk

    print(machine_line())
    print(f"config: {CONFIG['activation']}, widths {CONFIG['widths']}, "
          f"N = {len(CONFIG['inputs'])}, layer {CONFIG['layer']}, "
          f"tensors {', '.join(CONFIG['tensors'])}\n")

    t0 = time.perf_counter()
    feyntk.predict(CONFIG)
    t_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = feyntk.predict(CONFIG)
    t_pred = time.perf_counter() - t0
    t_more = []
    for _ in range(2):
        t0 = time.perf_counter()
        feyntk.predict(CONFIG)
        t_more.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    feyntk.sample(CONFIG, samples=64, seed=1)          # compile + warm up
    t_warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    mc = feyntk.sample(CONFIG, samples=pilot, seed=2)
    t_pilot = time.perf_counter() - t0
    per_net = t_pilot / pilot

    print("| step | wall time |")
    print("|---|---|")
    print(f"| predict, first call (derives the diagrams) | {t_cold:.3f} s |")
    print(f"| predict, warm (second call): reference | {t_pred:.3f} s |")
    print(f"| predict, third and fourth call (noise check) | "
          f"{' / '.join(f'{t:.3f}' for t in t_more)} s |")
    print(f"| sample, warm-up (64 networks, includes JAX compilation) | {t_warmup:.2f} s |")
    print(f"| sample, pilot ({pilot} networks, M = {mc['neurons']} neurons, all five tensors) | "
          f"{t_pilot:.2f} s ({pilot / t_pilot:,.0f} networks/s) |")
    print()

    for eps in args.eps:
        print(f"Target: relative standard error eps = {eps:g} of the 1/n tensor (n = {pred['n']}); "
              f"networks needed extrapolated from the pilot with se ~ 1/sqrt(S).\n")
        print("| tensor | largest entry | predict | sample ± se (pilot) | rel. se (pilot) | "
              f"networks for {eps:g} | MC time for {eps:g} | MC time / predict time | "
              "worst entry >= 10% of max: networks | its MC time / predict time |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in CONFIG["tensors"]:
            p = np.asarray(pred["tensors"][name]["value"])
            v = np.asarray(mc["tensors"][name]["value"])
            se = np.asarray(mc["tensors"][name]["se"])
            idx = np.unravel_index(np.argmax(np.abs(p)), p.shape)
            rel = se[idx] / abs(p[idx])
            s_eps = pilot * (rel / eps) ** 2
            big = np.abs(p) >= 0.1 * np.abs(p[idx])
            rel_worst = float(np.max(se[big] / np.abs(p[big])))
            s_worst = pilot * (rel_worst / eps) ** 2
            print(f"| {name} | {','.join(map(str, idx))} | {p[idx]:.4g} | "
                  f"{v[idx]:.4g} ± {se[idx]:.2g} | "
                  f"{rel:.1%} | {s_eps:,.0f} | {fmt_time(s_eps * per_net)} | "
                  f"{_fmt_ratio(s_eps * per_net / t_pred)} | {s_worst:,.0f} | "
                  f"{_fmt_ratio(s_worst * per_net / t_pred)} |")
        print()
    print("Monte Carlo numbers are lower bounds: one width's estimate still has an O(1/n) bias "
          "that only a sweep over two or more widths removes (MATH.md §5).")


if __name__ == "__main__":
    main()
