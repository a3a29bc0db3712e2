"""The network description: a frozen, validated MLP spec (MATH.md §1).

``widths = (n0, n1, ..., nL)``; layer ℓ = 1..L maps n_{ℓ-1} -> n_ℓ with

    z^{(1)}   = b^{(1)} + W^{(1)} x,                 W^{(ℓ)}_{ij} ~ N(0, C_W^{(ℓ)}/n_{ℓ-1})
    z^{(ℓ+1)} = b^{(ℓ+1)} + W^{(ℓ+1)} σ(z^{(ℓ)}),    b^{(ℓ)}_i   ~ N(0, C_b^{(ℓ)})

and learning rates λ_b^{(ℓ)} for biases, λ_W^{(ℓ)}/n_{ℓ-1} for weights. Every hyperparameter is a
tuple with one entry per layer; a scalar broadcasts. Python index ``l-1`` holds layer ``l``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from feyntk.errors import SpecError
from feyntk.spec.activation import Activation, get_activation

HYPERPARAMETERS = ("C_W", "C_b", "lambda_W", "lambda_b")


@dataclass(frozen=True)
class Layer:
    """Hyperparameters of one layer ℓ (maps n_{ℓ-1} = ``fan_in`` -> n_ℓ = ``width``)."""

    index: int
    fan_in: int
    width: int
    C_W: float
    C_b: float
    lambda_W: float
    lambda_b: float


def _broadcast(name: str, value: Any, L: int) -> tuple[float, ...]:
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        vals = (float(value),) * L
    elif isinstance(value, (list, tuple, np.ndarray)):
        vals = tuple(float(v) for v in value)
        if len(vals) != L:
            raise SpecError(
                f"{name} has {len(vals)} entries but the network has L = {L} layers "
                f"(widths lists n0..nL, so L = len(widths) - 1). Give one value per layer "
                "or a single scalar.")
    else:
        raise SpecError(f"{name} must be a number or a list of numbers, got {value!r}")
    for i, v in enumerate(vals):
        if not math.isfinite(v):
            raise SpecError(f"{name} of layer {i + 1} is {v}; hyperparameters must be finite")
    return vals


@dataclass(frozen=True)
class Network:
    """A fully connected network at initialisation.

    Attributes:
        widths: ``(n0, n1, ..., nL)``, all positive integers; n0 is the input dimension.
        activation: the pointwise nonlinearity σ (applied after layers 1..L-1).
        C_W, C_b, lambda_W, lambda_b: per-layer tuples of length L (index l-1 = layer l).
    """

    widths: tuple[int, ...]
    activation: Activation
    C_W: tuple[float, ...] = (1.0,)
    C_b: tuple[float, ...] = (0.0,)
    lambda_W: tuple[float, ...] = (1.0,)
    lambda_b: tuple[float, ...] = (0.0,)

    def __post_init__(self):
        widths = self.widths
        if isinstance(widths, (int, str)) or not hasattr(widths, "__len__"):
            raise SpecError(f"widths must be a list [n0, n1, ..., nL], got {widths!r}")
        if len(widths) < 2:
            raise SpecError(
                f"widths must list at least the input dimension and one layer, "
                f"[n0, n1, ...]; got {list(widths)}")
        ws = []
        for i, w in enumerate(widths):
            integral = (isinstance(w, (int, np.integer)) and not isinstance(w, bool)) or (
                isinstance(w, (float, np.floating)) and math.isfinite(w) and float(w).is_integer())
            if not integral:
                raise SpecError(f"widths[{i}] = {w!r} is not an integer")
            if int(w) <= 0:
                raise SpecError(
                    f"widths[{i}] = {int(w)}: every width must be a positive integer "
                    "(n0 is the input dimension, n1..nL the layer widths)")
            ws.append(int(w))
        object.__setattr__(self, "widths", tuple(ws))
        object.__setattr__(self, "activation", get_activation(self.activation))
        L = len(ws) - 1
        for name in HYPERPARAMETERS:
            raw = getattr(self, name)
            if isinstance(raw, tuple) and len(raw) == 1 and L != 1:
                raw = raw[0]
            object.__setattr__(self, name, _broadcast(name, raw, L))
        for l in range(1, L + 1):
            if self.C_W[l - 1] <= 0:
                raise SpecError(f"C_W of layer {l} is {self.C_W[l - 1]}; it must be > 0")
            for name in ("C_b", "lambda_W", "lambda_b"):
                if getattr(self, name)[l - 1] < 0:
                    raise SpecError(
                        f"{name} of layer {l} is {getattr(self, name)[l - 1]}; variances and "
                        "learning rates must be >= 0")

    @classmethod
    def create(cls, widths: Sequence[int], activation="tanh", *, C_W=1.0, C_b=0.0,
               lambda_W=1.0, lambda_b=0.0) -> "Network":
        """Build a network; scalars broadcast to every layer."""
        if isinstance(widths, (list, tuple, np.ndarray)):
            widths = tuple(widths)
        return cls(widths, activation, C_W, C_b, lambda_W, lambda_b)

    @property
    def L(self) -> int:
        """Depth: number of layers with parameters."""
        return len(self.widths) - 1

    @property
    def n0(self) -> int:
        return self.widths[0]

    def layer(self, l: int) -> Layer:
        """Hyperparameters of layer ``l`` (1-based, as in MATH.md)."""
        self.check_layer(l)
        return Layer(l, self.widths[l - 1], self.widths[l], self.C_W[l - 1], self.C_b[l - 1],
                     self.lambda_W[l - 1], self.lambda_b[l - 1])

    def check_layer(self, l: int) -> int:
        if isinstance(l, bool) or not isinstance(l, (int, np.integer)) or not 1 <= l <= self.L:
            raise SpecError(f"layer must be an integer in 1..{self.L} (L = {self.L}), got {l!r}")
        return int(l)

    def truncate(self, l: int) -> "Network":
        """The network made of layers 1..l (statistics at layer l depend on nothing above)."""
        l = self.check_layer(l)
        return replace(self, widths=self.widths[: l + 1], C_W=self.C_W[:l], C_b=self.C_b[:l],
                       lambda_W=self.lambda_W[:l], lambda_b=self.lambda_b[:l])

    def expansion_width(self, l: int) -> int:
        """n = n_{l-1}: order-1/n tensors at layer l are coefficients of 1/n_{l-1}."""
        return self.widths[self.check_layer(l) - 1]

    def n_parameters(self, upto: int | None = None) -> int:
        upto = self.L if upto is None else upto
        return sum(self.widths[l - 1] * self.widths[l] + self.widths[l] for l in range(1, upto + 1))


def check_inputs(inputs, n0: int, key: str = "inputs") -> np.ndarray:
    """Validate inputs as an (N, n0) float64 array with finite entries (``key`` names the
    config entry in the error messages, e.g. ``"train_inputs"``)."""
    try:
        x = np.asarray(inputs, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpecError(f"{key} must be a list of N lists of n0 numbers each") from None
    if x.ndim == 1 and n0 == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise SpecError(
            f"{key} must be a non-empty list of N lists of length n0 = {n0}; got shape {x.shape}")
    if x.shape[1] != n0:
        raise SpecError(
            f"each of the {key} must have n0 = widths[0] = {n0} entries, got {x.shape[1]}")
    bad = ~np.isfinite(x)
    if bad.any():
        rows = sorted(set(np.nonzero(bad)[0].tolist()))
        raise SpecError(f"{key} {rows} contain NaN or inf; every entry must be finite")
    return x
