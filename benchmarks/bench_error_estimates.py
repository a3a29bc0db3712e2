"""Honesty of the quadrature error report: estimated vs measured error (issue 17, item 3).

For each activation, N and depth, ``feyntk.predict`` runs with ``quadrature="default"`` and
``"fine"``, and once more with a *reference* schedule: the caps of the 3- and 4-sample
Gauss–Hermite rules raised to 3× the default (levels ... 48, 96, 144 in 4-d; 128, 256, 384 in
3-d; the polar and conical rules already converge to rtol 1e-12). The measured error of a run is
the largest ``max |T − T_ref| / max |T_ref|`` over its tensors; the estimate is
``result["quadrature"]["max_rel_error_estimate"]`` (and whether the QuadratureWarning fired).

    python benchmarks/bench_error_estimates.py                  # the table of the README
    python benchmarks/bench_error_estimates.py --quick          # N = 4, depth 3 only
    python benchmarks/bench_error_estimates.py --out PATH.md    # default RESULTS-error-estimates.md

relu, N = 8 is run at depths 3 and 5 instead of 10 (its many-input integrals are the slow path:
N = 8, depth 5 took 137 s per call in the predict benchmark); gelu and tanh at depth 10.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import feyntk  # noqa: E402
import feyntk.kernels.tables  # noqa: E402
import feyntk.numbers.gaussian as gaussian  # noqa: E402
import common  # noqa: E402
from common import machine_line  # noqa: E402
from feyntk.errors import QuadratureWarning  # noqa: E402

ACTIVATIONS = {"tanh": {"C_W": 1.0, "C_b": 0.0}, "gelu": {"C_W": 1.0, "C_b": 0.0},
               "relu": {"C_W": 2.0, "C_b": 0.0}}
TENSORS = {"tanh": None, "gelu": None, "relu": None}  # None: every tensor the activation defines
REF_FACTOR = 3
"""Caps of the reference run: REF_FACTOR × the default 3- and 4-sample caps."""

_ORIG_LEVELS = gaussian.tensor_levels


def _ref_levels(r: int, fine: bool = False) -> tuple[int, int]:
    m0, m_max = _ORIG_LEVELS(r, False)
    return m0, m_max * (REF_FACTOR if r >= 3 else 1)


@contextlib.contextmanager
def reference_schedule():
    """Raise the 3-/4-sample caps of every backend (expect and the kernel tables) to REF_FACTOR×."""
    mods = (gaussian.adaptive, feyntk.kernels.tables)  # expect looks tensor_levels up there
    for mod in mods:
        mod.tensor_levels = _ref_levels
    try:
        yield
    finally:
        for mod in mods:
            mod.tensor_levels = _ORIG_LEVELS


def defined_tensors(act: str) -> list[str]:
    """Tensors whose recursion is defined for the activation at coinciding samples."""
    return common.defined_tensors(act, config)


def config(act: str, N: int, depth: int, tensors) -> dict:
    rng = np.random.default_rng(1234)
    n0 = 3
    x = rng.normal(size=(N, n0))
    x *= np.sqrt(n0) / np.linalg.norm(x, axis=1, keepdims=True)
    return {"widths": [n0] + [64] * depth, "activation": act, **ACTIVATIONS[act],
            "lambda_W": 1.0, "lambda_b": 0.1, "inputs": x.tolist(), "tensors": list(tensors)}


def run(cfg: dict, quadrature: str) -> tuple[dict, bool, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QuadratureWarning)
        out = feyntk.predict(cfg, quadrature=quadrature)
    fired = any(issubclass(w.category, QuadratureWarning) and "stopped at the largest" in
                str(w.message) for w in caught)
    return out, fired, time.perf_counter() - t0


def measured(out: dict, ref: dict) -> tuple[float, str]:
    worst, name = 0.0, ""
    for t, v in ref["tensors"].items():
        r = np.asarray(v["value"], float)
        e = np.abs(np.asarray(out["tensors"][t]["value"], float) - r).max() / \
            max(np.abs(r).max(), 1e-300)
        if e >= worst:
            worst, name = e, t
    return worst, name


def cases(quick: bool):
    if quick:
        return [("tanh", 4, 3), ("gelu", 4, 3), ("relu", 4, 3)]
    out = []
    for act in ("tanh", "gelu", "relu"):
        for N in (4, 8):
            for depth in (3, 10):
                if act == "relu" and N == 8 and depth == 10:
                    depth = 5
                out.append((act, N, depth))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated activations")
    ap.add_argument("--out", default=str(Path(__file__).with_name("RESULTS-error-estimates.md")))
    args = ap.parse_args(argv)
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    lines = [f"# Quadrature error estimates vs measured errors", "",
             f"{machine_line()}; commit {commit} (+ working tree); reference = caps × "
             f"{REF_FACTOR}; warning threshold QUAD_WARN = {gaussian.QUAD_WARN:g}.", "",
             "| activation | N | depth | quadrature | capped integrals | estimate | warned | "
             "measured (tensor) | estimate / measured | time s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    only = set(args.only.split(",")) - {""}
    tensors_of = {}
    for act, N, depth in cases(args.quick):
        if only and act not in only:
            continue
        if act not in tensors_of:
            tensors_of[act] = defined_tensors(act)
        cfg = config(act, N, depth, tensors_of[act])
        feyntk.predict(dict(cfg, widths=cfg["widths"][:3]))  # kernels generated and compiled
        with reference_schedule():
            ref, _, tref = run(cfg, "default")
        for quad in ("default", "fine"):
            out, fired, t = run(cfg, quad)
            q = out["quadrature"]
            err, name = measured(out, ref)
            est = q["max_rel_error_estimate"]
            ratio = f"{est / err:.3g}" if err > 1e-13 else "(measured at rounding)"
            row = (f"| {act} | {N} | {depth} | {quad} | {q['capped_integrals']} | {est:.2e} | "
                   f"{'yes' if fired else 'no'} | {err:.2e} ({name}) | {ratio} | {t:.3g} |")
            lines.append(row)
            print(row, f"[ref {tref:.3g} s]", flush=True)
    lines += ["", "measured: largest over tensors of max|T − T_ref| / max|T_ref|; rounding "
              "level ~1e-13."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
