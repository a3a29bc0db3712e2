"""The JSON/dict request contract shared by ``feyntk predict``/``sample`` and the Python API.

Keys: ``widths``, ``activation``, ``C_W``, ``C_b``, ``lambda_W``, ``lambda_b`` (scalar or per-layer
list), ``inputs`` (N lists of length n0), ``layer`` (1..L, default L), ``tensors`` (names from
:data:`feyntk.spec.statistic.TENSOR_NAMES`, default ``["K", "Theta"]``, and for ``predict`` the
second-order :data:`~feyntk.spec.statistic.SECOND_ORDER_NAMES`), and for sampling
``samples`` (number of networks, >= 2) and ``seed``.

Symmetry keys (MATH.md §7; read by :mod:`feyntk.symmetry.config` before this contract, so they
are not in :data:`CONFIG_KEYS`):

* ``group``: a finite group acting on the inputs by orthogonal matrices ρ(g) —
  ``{"name": "rot90", "shape": [h, w]}`` (the four 90° rotations of an h × w image flattened
  row-major, h = w, h·w = n0), ``"dihedral"`` (8 elements), ``"flip"`` (left–right mirror),
  ``"translate"`` (the h·w cyclic translations of a periodic lattice), ``{"name": "shift"}``
  (cyclic shifts of the n0 coordinates, no shape), or ``{"generators": [M1, ...]}`` (n0 × n0
  orthogonal matrices; the generated group is enumerated, at most 4096 elements). Details and
  the generators' order: :mod:`feyntk.symmetry.groups`.
* ``output_action`` (inside ``group``): one n_L × n_L orthogonal matrix per generator, for
  equivariance ``f(ρ(g)x) = ρ_out(g) f(x)``; default invariance. ``train`` / ``train-sample``
  only (predict and sample report δ-structured tensors, which need an invariant f_G).
* ``symmetrize``: ``true`` for the symmetrized network ``f_G(x) = |G|⁻¹ Σ_g ρ_out(g)⁻¹ f(ρ(g)x)``
  (the seeds' GCNN) in place of the MLP — predict, sample, train and train-sample; default
  ``false``.
* ``augment``: ``"full"`` trains the MLP on the whole orbit {(ρ(g)x_α, ρ_out(g)y_α)} (train and
  train-sample only); default ``"none"``. A group needs exactly one of augment / symmetrize.

Example (predict or sample of f_G for C4 on 2 × 2 inputs)::

    {"widths": [4, 32, 32], "activation": "tanh", "C_W": 1.5, "C_b": 0.1,
     "lambda_W": 1.0, "lambda_b": 0.1, "inputs": [[1.0, 0.3, -0.2, 0.5]],
     "tensors": ["K", "V"], "group": {"name": "rot90", "shape": [2, 2]}, "symmetrize": true}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from feyntk.errors import SpecError
from feyntk.spec.network import HYPERPARAMETERS, Network, check_inputs
from feyntk.spec.statistic import check_tensor_names

CONFIG_KEYS = ("widths", "activation", *HYPERPARAMETERS, "inputs", "layer", "tensors",
               "samples", "seed")

EXAMPLE_CONFIG: dict[str, Any] = {
    "widths": [2, 32, 32, 32],
    "activation": "tanh",
    "C_W": 1.5,
    "C_b": 0.1,
    "lambda_W": 1.0,
    "lambda_b": 0.1,
    "inputs": [[1.0, 0.3], [-0.4, 0.9]],
    "layer": 3,
    "tensors": ["K", "Theta", "V", "A", "B", "D", "F"],
    "samples": 4000,
    "seed": 0,
}


@dataclass(frozen=True)
class Request:
    """A validated request: which tensors, of which network, at which layer, on which inputs."""

    network: Network
    inputs: np.ndarray
    layer: int
    tensors: tuple[str, ...]
    samples: int = 1000
    seed: int = 0

    @property
    def n(self) -> int:
        """The expansion width n = n_{layer-1}."""
        return self.network.expansion_width(self.layer)

    @property
    def N(self) -> int:
        return self.inputs.shape[0]


def check_samples(samples: Any) -> int:
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)):
        raise SpecError(f"samples must be an integer >= 2, got {samples!r}")
    if samples < 2:
        raise SpecError(
            f"samples = {samples}: at least 2 sampled networks are needed to estimate a "
            "standard error")
    return int(samples)


def parse_request(config: Mapping[str, Any] | Request, **overrides) -> Request:
    """Validate a config dict (see module docstring) into a :class:`Request`."""
    if isinstance(config, Request):
        if not overrides:
            return config
        config = {"widths": list(config.network.widths), "activation": config.network.activation,
                  **{h: list(getattr(config.network, h)) for h in HYPERPARAMETERS},
                  "inputs": config.inputs, "layer": config.layer, "tensors": list(config.tensors),
                  "samples": config.samples, "seed": config.seed}
    if not isinstance(config, Mapping):
        raise SpecError(f"config must be a dict/JSON object, got {type(config).__name__}")
    config = {**config, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise SpecError(f"unknown config key(s) {unknown}; allowed keys: {', '.join(CONFIG_KEYS)}")
    for key in ("widths", "inputs"):
        if key not in config:
            raise SpecError(f"config is missing the required key {key!r}; "
                            f"example: {json.dumps({k: EXAMPLE_CONFIG[k] for k in ('widths', 'inputs')})}")
    net = Network.create(config["widths"], config.get("activation", "tanh"),
                         **{h: config[h] for h in HYPERPARAMETERS if h in config})
    inputs = check_inputs(config["inputs"], net.n0)
    layer = net.check_layer(config.get("layer", net.L))
    tensors = check_tensor_names(config.get("tensors"))
    samples = check_samples(config.get("samples", 1000))
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    return Request(net, inputs, layer, tensors, samples, int(seed))


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file with a clear error on bad JSON."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} must contain a JSON object with keys {', '.join(CONFIG_KEYS)}")
    return data
