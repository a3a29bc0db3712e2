"""Throughput of the Monte Carlo sampler (networks per second) on the default JAX device.

Usage: ``python benchmarks/bench_sampler.py [--quick]``

Each row runs what :func:`feyntk.validate.estimate` runs: sample networks, compute the fields by
autodiff and reduce them on the device to the per-network averages of every tensor the fields
serve. Compilation and a first chunk are excluded (warm-up); then whole chunks are timed for
about ``--seconds`` seconds. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from feyntk.spec.network import Network
from feyntk.validate.estimators import ESTIMATORS, averages_for, fields_needed
from feyntk.validate.sample import plan_sampling, sample_fields

jax.config.update("jax_enable_x64", True)

FIELD_SETS = {"z": ("z",), "z+H": ("z", "H"), "z+H+dH": ("z", "H", "dH"),
              "all": ("z", "H", "dH", "ddI", "ddII")}


def reducer_for(fields):
    """Per-network averages of every tensor computable from ``fields``."""
    return averages_for(e for e in ESTIMATORS.values() if set(fields_needed([e])) <= set(fields))


def throughput(width: int, depth: int, N: int, fields, seconds: float):
    """(networks per second after warm-up, warm-up seconds, the plan used)."""
    net = Network.create([4] + [width] * depth, "tanh", C_W=1.5, C_b=0.1, lambda_b=0.1)
    x = np.random.default_rng(0).normal(size=(N, 4))
    plan = plan_sampling(net, x, depth, fields, min_neurons=2)
    reduce = reducer_for(fields)
    t0 = time.perf_counter()
    for _ in sample_fields(plan, plan.chunk, seed=0, reduce=reduce):   # compile + warm up
        pass
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in sample_fields(plan, plan.chunk, seed=1, reduce=reduce):   # one timed chunk
        pass
    per_chunk = time.perf_counter() - t0
    chunks = max(1, int(seconds / max(per_chunk, 1e-6)))
    if chunks > 1:
        t0 = time.perf_counter()
        for _ in sample_fields(plan, chunks * plan.chunk, seed=2, reduce=reduce):
            pass
        per_chunk = (time.perf_counter() - t0) / chunks
    return plan.chunk / per_chunk, first, plan


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few sizes, short timings")
    parser.add_argument("--seconds", type=float, default=None, help="timing per row")
    args = parser.parse_args(argv)
    seconds = args.seconds or (0.3 if args.quick else 2.0)
    widths = (32, 64) if args.quick else (32, 64, 128)
    Ns = (2,) if args.quick else (2, 4)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} {getattr(dev, 'device_kind', '')} ({len(jax.devices())} "
          f"visible), float64, jax {jax.__version__}\n")
    print("| widths | N | fields | M | chunk | networks/s | warm-up s |")
    print("|---|---|---|---|---|---|---|")
    for width in widths:
        for N in Ns:
            for label, fields in FIELD_SETS.items():
                rate, warm, plan = throughput(width, 3, N, fields, seconds)
                print(f"| 4-{width}-{width}-{width} | {N} | {label} | {plan.neurons} | "
                      f"{plan.chunk} | {rate:,.0f} | {warm:.1f} |", flush=True)


if __name__ == "__main__":
    main()
