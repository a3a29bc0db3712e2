"""Command line: ``feyntk predict | sample | compare | derive | diagrams | example``.

The JSON contract is documented in :mod:`feyntk.api` and :mod:`feyntk.spec.config`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from importlib import resources
from pathlib import Path

import numpy as np

from feyntk.errors import FeyntkError
from feyntk.spec.config import CONFIG_KEYS, load_config
from feyntk.spec.statistic import TENSOR_NAMES

CONFIG_HELP = f"""\
CONFIG is a JSON file describing the network, the inputs and what to compute.
Keys:
  widths      [n0, n1, ..., nL]: input dimension, then the width of every layer
  activation  a name (relu, leaky_relu, tanh, erf, gelu, linear, softplus, swish, sin),
              {{"name": "leaky_relu", "slope": 0.1}}, or an expression in z like "z*tanh(z)"
  C_W, C_b    weight and bias variances (scalar, or one value per layer 1..L)
  lambda_W, lambda_b  learning rates of weights and biases (scalar or per layer)
  inputs      list of N inputs, each a list of n0 numbers
  layer       which layer l to report (1..L, default L); 1/n tensors use n = n_(l-1)
  tensors     names from {', '.join(TENSOR_NAMES)} (default ["K", "Theta"])
  samples, seed   number of sampled networks and RNG seed (sample only)

Example (run `feyntk example` to print the shipped default config):
  {{"widths": [2, 32, 32, 32], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
   "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[1.0, 0.3], [-0.4, 0.9]],
   "layer": 3, "tensors": ["K", "Theta"], "samples": 2000, "seed": 0}}

Output JSON: {{"n": n_(l-1), "layer": l, "tensors": {{NAME: {{"value": [...], "se": [...]}}}}}}
("se", the Monte Carlo standard error, from sample only)
with arrays in the index order of MATH.md; order-1/n tensors are coefficients of 1/n.
Allowed keys: {', '.join(CONFIG_KEYS)}.
"""


def _default_config_path() -> Path:
    return Path(str(resources.files("feyntk") / "examples" / "default.json"))


def _load(path: str | None) -> dict:
    return load_config(path or _default_config_path())


def _write(result: dict, out: str | None) -> None:
    from feyntk.api import dumps

    text = dumps(result)
    if out:
        Path(out).write_text(text + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def _cmd_predict(args) -> int:
    from feyntk.api import predict

    _write(predict(_load(args.config), form=args.form), args.output)
    return 0


def _cmd_derive(args) -> int:
    from feyntk.recursions.recursion import recursion

    rec = recursion(args.tensor, args.form)
    print(rec.latex() if args.latex else rec)
    return 0


def _cmd_diagrams(args) -> int:
    from feyntk.diagrams.diagram import diagrams

    ds = diagrams(args.tensor)
    print(f"{args.tensor}: {len(ds)} diagrams at order "
          f"{'1' if args.tensor in ('K', 'Theta') else '1/n'}")
    for i, d in enumerate(ds, 1):
        print(f"  {i:2d}. {d.kind:9s} symmetry factor {d.symmetry} "
              f"(brute-force weight {d.weight}, {d.members} labelled contractions)")
    if args.output:
        from feyntk.diagrams.draw import draw_all

        draw_all(ds, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_sample(args) -> int:
    from feyntk.api import sample

    cfg = _load(args.config)
    res = sample(cfg, samples=args.samples, seed=args.seed, neurons=args.neurons,
                 progress=not args.quiet)
    _write(res, args.output)
    return 0


def _cmd_train_step(args) -> int:
    from feyntk.api import predict_ntk_step

    cfg = _load(args.config)
    if args.eta:
        cfg["eta"] = args.eta
    _write(predict_ntk_step(cfg), args.output)
    return 0


def _cmd_example(args) -> int:
    print(_default_config_path().read_text().strip())
    return 0


def comparison_table(pred: dict, mc: dict) -> str:
    """Markdown table: theory vs Monte Carlo ± se for every shared tensor entry."""
    rows = ["| tensor | index | predict | sample ± se | (sample − predict)/se |",
            "|---|---|---|---|---|"]
    for name, p in pred["tensors"].items():
        if name not in mc["tensors"]:
            continue
        pv, mv, se = (np.asarray(a) for a in (p["value"], mc["tensors"][name]["value"],
                                              mc["tensors"][name]["se"]))
        for idx in itertools.product(*(range(s) for s in pv.shape)):
            if list(idx) != sorted(idx):  # symmetric tensors: show each entry once
                continue
            zs = (mv[idx] - pv[idx]) / se[idx] if se[idx] > 0 else float("nan")
            rows.append(f"| {name} | {','.join(map(str, idx))} | {pv[idx]:.6g} | "
                        f"{mv[idx]:.6g} ± {se[idx]:.2g} | {zs:+.2f} |")
    return "\n".join(rows)


def _cmd_compare(args) -> int:
    from feyntk.api import predict, sample

    cfg = _load(args.config)
    t0 = time.perf_counter()
    pred = predict(cfg)
    t1 = time.perf_counter()
    mc = sample(cfg, samples=args.samples, seed=args.seed, progress=not args.quiet)
    t2 = time.perf_counter()
    print(f"network widths={cfg['widths']} activation={cfg.get('activation', 'tanh')} "
          f"layer={pred['layer']} n={pred['n']} samples={mc['samples']}")
    print(comparison_table(pred, mc))
    for name, note in mc.get("notes", {}).items():
        if name in pred["tensors"]:
            print(f"note: {name}: {note}")
    print(f"predict {t1 - t0:.3f} s, sample {t2 - t1:.2f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="feyntk",
        description="Finite-width statistics of random MLPs: theory predictions (predict) and "
                    "Monte Carlo of real sampled networks (sample), with the same JSON contract.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CONFIG_HELP)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name, help_, func):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=CONFIG_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        return sp

    sp = add("predict", "Predict the requested tensors from the recursions.", _cmd_predict)
    sp.add_argument("config", metavar="CONFIG.json", help="network, inputs and tensors (JSON)")
    sp.add_argument("-o", "--output", metavar="OUT.json", help="write JSON here (default stdout)")
    sp.add_argument("--form", choices=("auto", "derivative", "inverse-metric"), default="auto",
                    help="how blobs are integrated: derivative form (needs smooth σ), "
                         "inverse-metric form (needs invertible K), or auto (default)")

    tensor_help = f"one of {', '.join(TENSOR_NAMES)}"
    sp = add("derive", "Print the recursion of a tensor derived from its Feynman diagrams.",
             _cmd_derive)
    sp.add_argument("tensor", help=tensor_help)
    sp.add_argument("--form", choices=("derivative", "inverse-metric"), default="derivative",
                    help="derivative form <∂(...)> or inverse-metric form <(...) H(z)>")
    sp.add_argument("--latex", action="store_true", help="print LaTeX instead of text")

    sp = add("diagrams", "List (and draw) the diagrams of a tensor's recursion.", _cmd_diagrams)
    sp.add_argument("tensor", help=tensor_help)
    sp.add_argument("-o", "--output", metavar="FILE.png", help="draw them to PNG/SVG")

    sp = add("sample", "Estimate the requested tensors from sampled finite networks.",
             _cmd_sample)
    sp.add_argument("config", metavar="CONFIG.json", help="network, inputs and tensors (JSON)")
    sp.add_argument("--samples", type=int, help="number of networks (overrides CONFIG)")
    sp.add_argument("--seed", type=int, help="random seed (overrides CONFIG)")
    sp.add_argument("--neurons", type=int, help="output neurons used per network")
    sp.add_argument("-o", "--output", metavar="OUT.json", help="write JSON here (default stdout)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sp = add("compare", "Run predict and sample and print them side by side.", _cmd_compare)
    sp.add_argument("config", metavar="CONFIG.json", nargs="?",
                    help="config (default: the shipped example, see `feyntk example`)")
    sp.add_argument("--samples", type=int, help="number of networks (overrides CONFIG)")
    sp.add_argument("--seed", type=int, help="random seed (overrides CONFIG)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sp = add("train-step", "Predict the mean NTK change after one gradient-descent step on "
             "the MSE loss (CONFIG adds train_inputs, targets, eta).", _cmd_train_step)
    sp.add_argument("config", metavar="CONFIG.json",
                    help="predict keys (inputs = where the NTK is watched) + train_inputs, targets")
    sp.add_argument("--eta", type=float, nargs="*", help="learning rates to report the change at")
    sp.add_argument("-o", "--output", metavar="OUT.json", help="write JSON here (default stdout)")

    add("example", "Print the shipped default config.", _cmd_example)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except FeyntkError as exc:
        print(f"feyntk {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
