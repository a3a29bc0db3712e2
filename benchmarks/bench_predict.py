"""Benchmark ``feyntk.predict``: generated kernels (numba, JAX) against the numpy path.

All derivable tensors (those defined for the activation) for tanh and relu, as a function of
the number of inputs N and the depth L. Every backend is timed *warm* (the second call of
``feyntk.predict`` in this process; the first call, with the same N and depth <= 2 (JAX: the same
config, as XLA compiles per shape), generates
and compiles the kernels or loads them from the cache, and is reported separately) and
compared with the numpy path measured in the same run. Cells whose time, extrapolated from the cells already
measured (cost ∝ C(N, 4)·(L − 1)), would exceed ``--budget`` seconds are skipped and say so.

Prints markdown tables (time, ratio to numpy, memory, cost exponent in N) and writes a PNG
with ``--plot``. Not a test: timings depend on the machine and its load.

    python benchmarks/bench_predict.py --quick
    python benchmarks/bench_predict.py --plot bench.png --budget 300
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import tracemalloc

import numpy as np

import feyntk
import feyntk.kernels.tables

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from feyntk.api import derivable
from feyntk.kernels.engine import memory_needed
from feyntk.numbers.evaluate import choose_form, dependencies

ACTIVATIONS = {"tanh": {"C_W": 1.0, "C_b": 0.0}, "relu": {"C_W": 2.0, "C_b": 0.0},
               "gelu": {"C_W": 1.0, "C_b": 0.0}}
"""Critical initialisation of tanh and relu (PDLT ch. 5); gelu at C_W = 1, C_b = 0 (as in
``bench_error_estimates.py``; gelu has no critical point with K* = 0)."""


def config(act: str, N: int, depth: int, tensors) -> dict:
    rng = np.random.default_rng(1234)
    n0 = 3
    x = rng.normal(size=(N, n0))
    x *= np.sqrt(n0) / np.linalg.norm(x, axis=1, keepdims=True)  # K^(1)_aa = C_W
    return {"widths": [n0] + [64] * depth, "activation": act, **ACTIVATIONS[act],
            "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": list(tensors)}


def defined_tensors(act: str) -> list[str]:
    """Tensors whose recursion is defined for the activation at coinciding samples."""
    return common.defined_tensors(act, config)


def run(cfg: dict, backend: str) -> dict:
    """First call (same N, depth <= 2: code generation, compilation, caches; for JAX the same
    config, since XLA compiles per array shape and deeper networks meet more of them) and the
    timed second call (untraced; its wall and process CPU time, all threads, and the load average
    before it: on a shared machine the CPU time is the steadier figure); peak traced memory of a
    third call where the second took < 5 s."""
    t0 = time.perf_counter()
    warm = cfg if backend == "jax" else dict(cfg, widths=cfg["widths"][:3])
    feyntk.predict(warm, backend=backend)
    t1, c1, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    out = feyntk.predict(cfg, backend=backend)
    t2 = time.perf_counter()
    rec = {"cold": t1 - t0, "warm": t2 - t1, "cpu": time.process_time() - c1, "load": load,
           "out": out}
    if t2 - t1 < 5.0:  # memory from a third call: tracing slows Python allocations ~2x
        tracemalloc.start()
        feyntk.predict(cfg, backend=backend)
        rec["peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return rec


def estimate(done: dict, key, N: int, depth: int) -> float | None:
    """Extrapolated warm time from a measured cell of the same (act, backend): the deepest one
    with the same N if any, else the largest smaller N."""
    best = None
    for (a, b, n, L), rec in done.items():
        if (a, b) == key and "warm" in rec and L > 1 and n <= N:
            if best is None or (n, L) > best[0]:
                best = ((n, L), rec["warm"])
    if best is None or depth == 1:
        return None
    (n, L), t = best
    if key[1] == "numpy":  # N^4 entries, each a Python loop over picks and dummies; the
        # 3- and 4-sample integrals appear from N = 3 on (measured: ×10 from N = 1 to 2)
        grow = (N / n) ** (3.5 if n == 1 else 8)
    else:  # asymptotically the C(N, 4) 4-sample integrals; up to N ~ 8 per-level overheads
        # dominate (measured: x2 from N = 4 to 8), so extrapolate with N^3
        grow = (N / n) ** 3
    return t * grow * (depth - 1) / (L - 1)


def fit_exponent(points) -> float | None:
    """Slope of log(time) against log(N) over N >= 2."""
    pts = [(n, t) for n, t in points if n >= 2 and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="N in 1, 2, 4 and depth in 1, 5")
    p.add_argument("--plot", metavar="FILE.png", help="write a plot of time against N and L")
    p.add_argument("--budget", type=float, default=120.0,
                   help="skip cells estimated to take longer than this (seconds; numpy: 60)")
    p.add_argument("--backends", default="numba,jax,numpy")
    p.add_argument("--activations", default="tanh,relu")
    p.add_argument("--Ns", default=None, help="comma-separated N (default 1,2,4,8,16,32)")
    p.add_argument("--depths", default=None, help="comma-separated depths (default 1,5,10,50)")
    p.add_argument("--tensors", default=None,
                   help="comma-separated tensors (default: all the activation defines)")
    args = p.parse_args(argv)
    Ns = [int(v) for v in (args.Ns or ("1,2,4" if args.quick else "1,2,4,8,16,32")).split(",")]
    depths = [int(v) for v in (args.depths or ("1,5" if args.quick else "1,5,10,50")).split(",")]
    backends = sorted(args.backends.split(","), key=lambda b: b != "numpy")  # numpy first
    acts = args.activations.split(",")
    print(f"# feyntk.predict benchmark\n\nmachine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; numba threads: "
          f"{feyntk.kernels.tables.THREADS}; python {platform.python_version()}\n")
    done: dict = {}
    for act in acts:
        tensors = defined_tensors(act)
        if args.tensors:
            tensors = [t for t in args.tensors.split(",") if t in tensors]
        missing = [t for t in derivable() if t not in tensors]
        print(f"{act}: tensors {', '.join(tensors)}"
              + (f" (not defined for {act}: {', '.join(missing)})"
                 if missing and not args.tensors else ""), flush=True)
        for depth in depths:
            for N in Ns:
                cfg = config(act, N, depth, tensors)
                for b in backends:
                    key = (act, b, N, depth)
                    limit = 60.0 if b == "numpy" else args.budget
                    est = estimate(done, (act, b), N, depth)
                    if est is not None and est > limit:
                        done[key] = {"skip": est}
                        continue
                    rec = run(cfg, b)
                    done[key] = {k: v for k, v in rec.items() if k != "out"}
                    if b == "numpy":
                        done[key]["out"] = rec["out"]
                    elif (act, "numpy", N, depth) in done and "out" in done[(act, "numpy", N, depth)]:
                        r = done[(act, "numpy", N, depth)]["out"]["tensors"]
                        err = max(float(np.max(np.abs(rec["out"]["tensors"][t]["value"]
                                                      - r[t]["value"]))) for t in tensors)
                        done[key]["err"] = err
                    print(f"  {act} L={depth} N={N} {b}: warm {rec['warm']:.3f} s, CPU "
                          f"{rec['cpu']:.3f} s, load average {rec['load']:.1f} (first call "
                          f"{rec['cold']:.2f} s)", flush=True)
        report(done, act, tensors, Ns, depths, backends)
    if args.plot:
        plot(done, acts, Ns, depths, backends, args.plot)
        print(f"\nwrote {args.plot}")
    target = done.get(("tanh", "numba", 8, 10))
    if target is not None:
        msg = (f"{target['warm']:.2f} s" if "warm" in target
               else f"skipped (estimated {target['skip']:.0f} s)")
        print(f"\ntarget N = 8, depth 10, all tensors, tanh, warm < 1 s on this machine: {msg}")
    return 0


def _cell(rec: dict | None, what: str = "warm") -> str:
    if rec is None:
        return "–"
    if "skip" in rec:
        return f"skipped (est. {rec['skip']:.0f} s)"
    return f"{rec[what]:.3g}"


def report(done, act, tensors, Ns, depths, backends) -> None:
    closure = dependencies(tensors)
    print(f"\n## {act}: warm time of predict (s), {len(tensors)} tensors\n")
    for depth in depths:
        print(f"### depth {depth}\n")
        print("| N | " + " | ".join(backends) + " | " +
              " | ".join(f"numpy/{b}" for b in backends if b != "numpy") +
              " | max abs diff to numpy | numba CPU s (load average) | first call numba (s) | "
              "memory model (MiB) | traced peak numba (MiB) |")
        print("|" + "---|" * (2 * len(backends) + 4))
        for N in Ns:
            recs = {b: done.get((act, b, N, depth)) for b in backends}
            ratios = []
            for b in backends:
                if b == "numpy":
                    continue
                a, r = recs.get("numpy"), recs.get(b)
                ratios.append(f"{a['warm'] / r['warm']:.3g}" if a and r and "warm" in a
                              and "warm" in r else "–")
            errs = [f"{recs[b]['err']:.1e}" for b in backends
                    if recs.get(b) and "err" in recs[b]]
            nb = recs.get("numba") or {}
            a = feyntk.get_activation(act)
            form = choose_form(a, [n for n in closure if n != "K"])
            mem = memory_needed(closure, form, N, a.is_smooth) / 2**20
            cold = f"{nb['cold']:.3g}" if "cold" in nb else "–"
            cpu = f"{nb['cpu']:.3g} ({nb['load']:.1f})" if "cpu" in nb else "–"
            peak = f"{nb['peak'] / 2**20:.3g}" if "peak" in nb else "–"
            print(f"| {N} | " + " | ".join(_cell(recs[b]) for b in backends) + " | "
                  + " | ".join(ratios) + f" | {', '.join(errs) or '–'} | {cpu} | {cold} | "
                  f"{mem:.3g} | "
                  f"{peak} |")
        print()
    print(f"### cost exponent in N (slope of log time vs log N, N >= 2)\n")
    print("| depth | " + " | ".join(backends) + " |\n|---|" + "---|" * len(backends))
    for depth in depths:
        cells = []
        for b in backends:
            e = fit_exponent([(N, done[(act, b, N, depth)]["warm"]) for N in Ns
                              if "warm" in done.get((act, b, N, depth), {})])
            cells.append(f"{e:.2f}" if e is not None else "–")
        print(f"| {depth} | " + " | ".join(cells) + " |")
    print("\n(tensor sizes grow as N^4; the 4-sample Gaussian integrals as C(N, 4) ~ N^4/24)\n")


def plot(done, acts, Ns, depths, backends, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for act in acts:
        for b in backends:
            for depth in depths[-2:]:
                pts = [(N, done[(act, b, N, depth)]["warm"]) for N in Ns
                       if "warm" in done.get((act, b, N, depth), {})]
                if pts:
                    axes[0].loglog(*zip(*pts), "o-", label=f"{act} {b} L={depth}")
            deep = [N for N in Ns if sum("warm" in done.get((act, b, N, L), {})
                                         for L in depths) >= min(3, len(depths))]
            nmax = max(deep, default=None)
            if nmax is not None:
                pts = [(L, done[(act, b, nmax, L)]["warm"]) for L in depths
                       if "warm" in done.get((act, b, nmax, L), {})]
                if pts:
                    axes[1].loglog(*zip(*pts), "s-", label=f"{act} {b} N={nmax}")
    Nr = np.array([2, max(Ns)], float)
    axes[0].loglog(Nr, 1e-3 * (Nr / 2) ** 4, "k:", label="∝ N^4")
    axes[0].set(xlabel="N (inputs)", ylabel="warm predict time (s)", title="cost in N")
    axes[1].set(xlabel="depth L", ylabel="warm predict time (s)", title="cost in depth")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
