"""Training schedules: T steps of full-batch gradient descent with step η, or gradient flow to time t.

Conventions (MATH.md §7): loss ``L = ½ Σ_{α∈A} Σ_j (z_{j;α} − y_{j;α})²`` at the output layer L;
gradient descent ``θ_μ ← θ_μ − η λ_μ ∂L/∂θ_μ``; gradient flow ``dθ_μ/dt = −λ_μ ∂L/∂θ_μ``
(λ_b for biases, λ_W/n_{ℓ−1} for weights of layer ℓ, MATH.md §1). In function space at infinite
width the training residual evolves by the *decay* ``g(Θ_AA)``: ``(I − ηΘ_AA)^T`` or ``e^{−Θ_AA t}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from feyntk.errors import SpecError


@dataclass(frozen=True)
class Schedule:
    """How the ensemble is trained.

    Attributes:
        kind: ``"steps"`` (gradient descent) or ``"flow"`` (gradient flow).
        steps: T for gradient descent (``None``: T = ∞, trained to convergence).
        eta: the step η of gradient descent (``None`` for flow).
        time: t for gradient flow (``math.inf`` allowed).
    """

    kind: str
    steps: int | None = None
    eta: float | None = None
    time: float | None = None

    @property
    def converged(self) -> bool:
        return (self.kind == "steps" and self.steps is None) or (
            self.kind == "flow" and math.isinf(self.time))

    def decay(self, lam: np.ndarray) -> np.ndarray:
        """g(λ) per eigenvalue λ of Θ_AA: (1 − ηλ)^T or e^{−λt} (0 when converged)."""
        lam = np.asarray(lam, dtype=float)
        if self.converged:
            return np.zeros_like(lam)
        if self.kind == "steps":
            return (1.0 - self.eta * lam) ** self.steps
        return np.exp(-lam * self.time)

    def describe(self) -> str:
        if self.kind == "steps":
            return f"T = {'∞' if self.steps is None else self.steps} steps of GD, η = {self.eta:g}"
        return f"gradient flow to t = {'∞' if math.isinf(self.time) else f'{self.time:g}'}"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "steps":
            return {"steps": "inf" if self.steps is None else self.steps, "eta": self.eta}
        return {"time": "inf" if math.isinf(self.time) else self.time}


SCHEDULE_KEYS = ("steps", "eta", "time")

_HOW = ('give exactly one of {"steps": T, "eta": η} (T an integer >= 0 or "inf", η > 0) for '
        'gradient descent or {"time": t} (t >= 0 or "inf") for gradient flow')


def parse_schedule(config: Mapping[str, Any]) -> Schedule:
    """Read ``steps``/``eta`` or ``time`` from a config (see :data:`_HOW` for the rule)."""
    has_steps, has_time = "steps" in config, "time" in config
    if has_steps == has_time:
        raise SpecError(("both 'steps' and 'time' given" if has_steps else
                         "neither 'steps' nor 'time' given") + "; " + _HOW)
    if has_time:
        if "eta" in config:
            raise SpecError("'eta' belongs to gradient descent ('steps'); gradient flow "
                            "('time') has no step size; " + _HOW)
        t = config["time"]
        if t == "inf":
            return Schedule("flow", time=math.inf)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0 \
                or math.isnan(t):
            raise SpecError(f"time must be a number >= 0 or \"inf\", got {t!r}")
        return Schedule("flow", time=float(t))
    T = config["steps"]
    if "eta" not in config:
        raise SpecError("gradient descent ('steps') needs the step size 'eta'; " + _HOW)
    eta = config["eta"]
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not eta > 0 \
            or not math.isfinite(eta):
        raise SpecError(f"eta must be a finite number > 0, got {eta!r}")
    if T == "inf":
        return Schedule("steps", steps=None, eta=float(eta))
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 0:
        raise SpecError(f"steps must be an integer >= 0 or \"inf\", got {T!r}")
    return Schedule("steps", steps=int(T), eta=float(eta))
