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
from feyntk.spec.statistic import SECOND_ORDER_NAMES, TENSOR_NAMES

CONFIG_HELP = f"""\
CONFIG is a JSON file describing the network, the inputs and what to compute.
Keys:
  widths      [n0, n1, ..., nL]: input dimension, then the width of every layer
  activation  a name (relu, leaky_relu, tanh, erf, gelu, linear, softplus, swish, sin),
              {{"name": "leaky_relu", "slope": 0.1}}, or an expression in z like "z*tanh(z)";
              kinks: σ'' = δ by default, {{"name": "relu", "derivatives": "pointwise"}} for σ'' = 0
  C_W, C_b    weight and bias variances (scalar, or one value per layer 1..L)
  lambda_W, lambda_b  learning rates of weights and biases (scalar or per layer)
  inputs      list of N inputs, each a list of n0 numbers
  layer       which layer l to report (1..L, default L); 1/n tensors use n = n_(l-1)
  tensors     names from {', '.join(TENSOR_NAMES)} (default ["K", "Theta"]);
              predict also takes the second-order {', '.join(SECOND_ORDER_NAMES)} (numpy oracle)
  samples, seed   number of sampled networks and RNG seed (sample only)

Example (run `feyntk example` to print the shipped default config):
  {{"widths": [2, 32, 32, 32], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
   "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[1.0, 0.3], [-0.4, 0.9]],
   "layer": 3, "tensors": ["K", "Theta"], "samples": 2000, "seed": 0}}

Output JSON: {{"n": n_(l-1), "layer": l, "tensors": {{NAME: {{"value": [...], "se": [...]}}}}}}
("se", the Monte Carlo standard error, from sample only; predict adds "quadrature": how many
Gaussian integrals stopped at the largest rule and an estimate of their relative error)
with arrays in the index order of MATH.md; order-1/n tensors are coefficients of 1/n.
Second order (MATH.md §7, same n): K2 is the coefficient of 1/n² in
E[z_i z_i] = K + K1/n + K2/n², V1 that of 1/n in n·Cov[z_i z_i, z_j z_j] = V + V1/n (i != j),
V6 that of 1/n² in the joint cumulant of z_(i;a1) z_(i;a2) z_(j;a3) z_(j;a4) z_(k;a5) z_(k;a6)
(distinct i, j, k; V6 = n² κ + O(1/n); rank 6, indices [a1..a6]).
Allowed keys: {', '.join(CONFIG_KEYS)}, and the symmetry keys below.

Symmetry (optional; MATH.md §7): the symmetrized network f_G(x) = |G|^-1 Σ_g f(ρ(g)x) (the
group-averaged MLP, i.e. a group-convolutional network with group pooling) instead of the MLP:
  group       {{"name": "rot90", "shape": [h, w]}}: the 4 rotations of an h x w image flattened
              row-major (h = w, h·w = n0); also "dihedral" (8 rotations and reflections), "flip"
              (left-right mirror), "translate" (cyclic shifts of an h x w lattice, h·w elements)
              with "shape", {{"name": "shift"}} (cyclic shifts of the n0 coordinates), or
              {{"generators": [M1, M2, ...]}} (n0 x n0 orthogonal matrices; the group they
              generate is enumerated)
  symmetrize  true: report f_G's tensors (default false; needs "group"); the output adds
              "symmetry" (group name, order, mode)
  "output_action" (equivariance, inside "group") and "augment" belong to train /
  train-sample (see `feyntk train --help`): predict and sample take invariant f_G only.
Example: add  "group": {{"name": "rot90", "shape": [2, 2]}}, "symmetrize": true  to a config
with "widths": [4, ...] (n0 = 4 = 2 x 2).
"""


TRAIN_HELP = """\
CONFIG of train / train-sample: the predict keys (see `feyntk predict --help`; "inputs" are the
evaluation points, N_e lists of n0 numbers; "layer", if given, must be L) plus
  train_inputs  N_A lists of n0 numbers (the training set A)
  targets       N_A lists of n_L numbers
and exactly one of
  "steps": T (integer >= 0 or "inf") with "eta": η > 0   full-batch gradient descent
  "time": t (number >= 0 or "inf")                       gradient flow
Loss L = ½ Σ_(α in A) Σ_j (z_(j;α) - y_(j;α))² at the output; updates θ_μ -= η λ_μ ∂L/∂θ_μ
(λ_b for biases, λ_W/n_(l-1) for weights of layer l). η must stay below 2/λ_max(Θ_AA).
Symmetry (optional; MATH.md §7): a finite group G acting on inputs by ρ(g) (and on outputs by
ρ_out(g)), with exactly one of two ways of using it:
  group          {"name": "rot90", "shape": [h, w]} (4 rotations of an h x w image flattened
                 row-major, h·w = n0), "dihedral" (8), "flip" (2), "translate" (h·w cyclic
                 shifts of the lattice), {"name": "shift"} (cyclic shifts of the n0 inputs), or
                 {"generators": [M1, ...]} (n0 x n0 orthogonal matrices); see
                 `feyntk predict --help`
  output_action  inside "group": one n_L x n_L orthogonal matrix per generator (named groups:
                 rot90 [r], dihedral [r, s], flip [s], translate [row shift, column shift],
                 shift [t]; r = 90° counter-clockwise, s = left-right mirror): equivariance
                 f(ρ(g)x) = ρ_out(g) f(x) instead of invariance (the default)
  augment        "full": train the MLP on the whole orbit {(ρ(g)x_α, ρ_out(g)y_α)}, every copy
                 one term of the summed loss (default "none")
  symmetrize     true: train the symmetrized network f_G(x) = |G|^-1 Σ_g ρ_out(g)^-1 f(ρ(g)x)
                 on the original set (train: theory; train-sample: real f_G by gradient descent
                 or flow, from the same initial parameters as the MLP for the same seed)
At infinite width the augmented MLP at (T, η) or t has the mean of f_G at (T, |G|η) or |G|t;
the 1/n corrections differ (feyntk.symmetry.training.augmented_minus_symmetrized).
Example: add  "group": {"name": "rot90", "shape": [2, 2]}, "augment": "full"  (or
"symmetrize": true) to a config with "widths": [4, ..., 1]. train adds "symmetry" (group,
order, mode) to its output; train-sample's output keeps its keys (for f_G with an output
action its "cov" pools the output neurons).

Example (`feyntk example --train > t.json` prints it):
  {"widths": [2, 64, 64, 1], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
   "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[0.8, -0.2], [-0.3, 0.7]],
   "train_inputs": [[1.0, 0.3], [-0.4, 0.9], [0.5, -1.0]], "targets": [[0.5], [-0.3], [0.2]],
   "steps": 20, "eta": 0.2}
  feyntk train t.json                          # theory
  feyntk train-sample t.json --samples 2000    # 2000 real trained networks

train output: {"n": n_(L-1), "layer": L, "mean": {"value": N_e x n_L} (infinite width),
"mean1": {"value": N_e x n_L} (E[z] = mean + mean1/n + O(1/n²)), "cov": {"value": N_e x N_e}
(infinite-width covariance of one output neuron), "mean1_parts": the Θ¹, ΔNTK (A, B),
dNTK (P, Q) and ddNTK (R, S, T, U) contributions}.
train-sample output: "mean" and "cov" with "value" and "se", plus "samples", "seed", "n".
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

    _write(predict(_load(args.config), form=args.form, backend=args.backend,
                   verbose=args.verbose, quadrature=args.quadrature), args.output)
    return 0


def _cmd_codegen(args) -> int:
    from feyntk.kernels import codegen

    gen = codegen(args.tensor, args.activation, args.form, args.backend, compile=False)
    print(gen.source)
    print(f"# cached at {gen.path}", file=sys.stderr)
    return 0


def _cmd_derive(args) -> int:
    from feyntk.recursions.recursion import recursion

    rec = recursion(args.tensor, args.form)
    print(rec.latex() if args.latex else rec)
    return 0


def _cmd_diagrams(args) -> int:
    from feyntk.diagrams.diagram import diagrams

    from feyntk.spec.statistic import lookup

    ds = diagrams(args.tensor)
    print(f"{args.tensor}: {len(ds)} diagrams at order {order_text(lookup(args.tensor).order)}")
    for i, d in enumerate(ds, 1):
        print(f"  {i:2d}. {d.kind:9s} symmetry factor {d.symmetry} "
              f"(brute-force weight {d.weight}, {d.members} labelled contractions)")
    if args.output:
        from feyntk.diagrams.draw import draw_all

        draw_all(ds, args.output)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def order_text(order: int) -> str:
    """The declared order of a statistic as printed: ``1``, ``1/n``, ``1/n^2``, ..."""
    return {0: "1", 1: "1/n"}.get(order, f"1/n^{order}")


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
    path = _train_config_path() if args.train else _default_config_path()
    print(path.read_text().strip())
    return 0


def _train_config_path() -> Path:
    return Path(str(resources.files("feyntk") / "examples" / "train.json"))


def _cmd_train(args) -> int:
    from feyntk.api import train

    _write(train(_load_train(args.config), backend=args.backend), args.output)
    return 0


def _cmd_train_sample(args) -> int:
    from feyntk.api import train_sample

    _write(train_sample(_load_train(args.config), samples=args.samples, seed=args.seed,
                        progress=not args.quiet), args.output)
    return 0


def _load_train(path: str | None) -> dict:
    return load_config(path or _train_config_path())


def comparison_table(pred: dict, sweeps: dict, fits: dict) -> str:
    """Markdown table: theory vs Monte Carlo, one row per entry that can differ (index symmetries).

    Columns: the prediction (K, Θ at infinite width; 1/n tensors as coefficients of 1/n), the
    Monte Carlo estimate at the largest width (K, Θ: the full E[zz], E[Ĥ_ii]; 1/n tensors:
    n·cumulant), the 1/n-extrapolated Monte Carlo value (fit T + c/n over the widths) and its
    z-score against the prediction.
    """
    from feyntk.spec.statistic import representatives

    rows = ["| tensor | index | predict | sample at n ± se | extrapolated n→∞ ± se | z |",
            "|---|---|---|---|---|---|"]
    for name, sw in sweeps.items():
        pv = np.asarray(pred["tensors"][name]["value"], dtype=float)
        fit = fits[name]
        for idx in representatives(name, pv.shape[0]):
            mv, se = sw.values[(-1,) + idx], sw.ses[(-1,) + idx]
            T, Tse = fit.intercept[idx], fit.intercept_se[idx]
            z = (T - pv[idx]) / Tse if Tse > 0 else float("nan")
            rows.append(f"| {name} | {','.join(map(str, idx))} | {pv[idx]:.5g} | "
                        f"{mv:.5g} ± {se:.2g} | {T:.5g} ± {Tse:.2g} | {z:+.2f} |")
    return "\n".join(rows)


def _cmd_compare(args) -> int:
    from feyntk.api import predict
    from feyntk.spec.config import parse_request
    from feyntk.validate.compare import extrapolate, width_sweep

    cfg = _load(args.config)
    req = parse_request(cfg)
    n = req.n
    ns = sorted({max(2, n // 4), max(2, n // 2), n}) if req.layer > 1 else [n]
    t0 = time.perf_counter()
    pred = predict(cfg)
    t1 = time.perf_counter()
    sweeps = width_sweep(cfg, ns, samples=args.samples, seed=args.seed,
                         progress=not args.quiet)
    t2 = time.perf_counter()
    fits = {k: extrapolate(v) for k, v in sweeps.items()} if len(ns) > 1 else {}
    print(f"network widths={cfg['widths']} activation={cfg.get('activation', 'tanh')} "
          f"layer={pred['layer']}; Monte Carlo at n = n_(layer-1) in {ns}, "
          f"{args.samples or req.samples} networks each")
    if fits:
        print(comparison_table(pred, sweeps, fits))
        print("The extrapolation fits value(n) = T + c/n per entry; z = (T - predict)/se(T). "
              "A single width would still carry the O(1/n) finite-width shift.")
    print(f"predict {t1 - t0:.2f} s, sample {t2 - t1:.2f} s (all widths)")
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
    sp.add_argument("config", metavar="CONFIG.json", nargs="?",
                    help="network, inputs and tensors (JSON; default: the shipped example)")
    sp.add_argument("-o", "--output", metavar="OUT.json", help="write JSON here (default stdout)")
    sp.add_argument("--form", choices=("auto", "derivative", "inverse-metric"), default="auto",
                    help="how blobs are integrated: derivative form (needs smooth σ), "
                         "inverse-metric form (needs invertible K), or auto (default)")
    sp.add_argument("--backend", choices=("auto", "numpy", "numba", "jax"), default="auto",
                    help="generated numba (CPU) or JAX (GPU if present) kernels, the plain numpy "
                         "reference loops, or auto (default: JAX on a GPU, else numba); "
                         "K2, V1, V6 always use the numpy loops (numba, jax refuse them)")
    sp.add_argument("--quadrature", choices=("default", "fine"), default="default",
                    help="fine: double the largest rule of 3- and 4-input integrals "
                         "(Gauss-Hermite for smooth activations; the conical, polar and "
                         "piecewise rules the relu family falls back to) - slower; use when a "
                         "QuadratureWarning says the tensors' estimated error is too large, "
                         "see the output's \"quadrature\" entry")
    sp.add_argument("-v", "--verbose", action="store_true",
                    help="print the wall time of every layer step to stderr")

    tensor_help = f"one of {', '.join(TENSOR_NAMES)}"
    derived_help = f"one of {', '.join((*TENSOR_NAMES, *SECOND_ORDER_NAMES))}"
    sp = add("codegen", "Print the generated kernels of a tensor's recursion (and cache them).",
             _cmd_codegen)
    sp.add_argument("tensor", help=tensor_help)
    sp.add_argument("--backend", choices=("numba", "jax"), default="numba",
                    help="numba (CPU loops) or jax (jit, vectorised over sample tuples)")
    sp.add_argument("--form", choices=("derivative", "inverse-metric"), default="derivative",
                    help="derivative form (product rule) or inverse-metric form (Hermite)")
    sp.add_argument("--activation", default="tanh",
                    help="activation name or expression in z (default tanh)")
    sp = add("derive", "Print the recursion of a tensor derived from its Feynman diagrams.",
             _cmd_derive)
    sp.add_argument("tensor", help=derived_help)
    sp.add_argument("--form", choices=("derivative", "inverse-metric"), default="derivative",
                    help="derivative form <∂(...)> or inverse-metric form <(...) H(z)>")
    sp.add_argument("--latex", action="store_true", help="print LaTeX instead of text")

    sp = add("diagrams", "List (and draw) the diagrams of a tensor's recursion.", _cmd_diagrams)
    sp.add_argument("tensor", help=derived_help)
    sp.add_argument("-o", "--output", metavar="FILE.png", help="draw them to PNG/SVG")

    sp = add("sample", "Estimate the requested tensors from sampled finite networks.",
             _cmd_sample)
    sp.add_argument("config", metavar="CONFIG.json", nargs="?",
                    help="network, inputs and tensors (JSON; default: the shipped example)")
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

    def add_train(name, help_, func):
        sp = sub.add_parser(name, help=help_, description=help_, epilog=TRAIN_HELP,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(func=func)
        sp.add_argument("config", metavar="CONFIG.json", nargs="?",
                        help="predict keys + train_inputs, targets and steps/eta or time "
                             "(default: the shipped example, `feyntk example --train`)")
        sp.add_argument("-o", "--output", metavar="OUT.json",
                        help="write JSON here (default stdout)")
        return sp

    sp = add_train("train", "Predict the mean and covariance of an ensemble of networks "
                   "trained by gradient descent (or flow): infinite width and the 1/n "
                   "correction of the mean.", _cmd_train)
    sp.add_argument("--backend", choices=("auto", "numpy", "numba", "jax"), default="auto",
                    help="backend of the tensor evaluation (default auto)")
    sp = add_train("train-sample", "Train real finite-width networks from random "
                   "initialisations and report the ensemble mean and covariance with standard "
                   "errors (JAX; a GPU if JAX sees one).", _cmd_train_sample)
    sp.add_argument("--samples", type=int, required=True, help="number of networks S (>= 2)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    sp = add("example", "Print the shipped default config (--train: a training config).",
             _cmd_example)
    sp.add_argument("--train", action="store_true",
                    help="print the shipped config of `feyntk train` / `train-sample` instead")
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
    except BrokenPipeError:  # e.g. `feyntk predict | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
