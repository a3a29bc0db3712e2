"""The registry of the fifteen order-1/n statistics of an MLP (MATH.md §3).

Each :class:`Statistic` names a tensor, its LaTeX symbol, the order of its sample indices in the
stored array, its expansion order (0: leading, 1: coefficient of 1/n with n = n_{ℓ-1}), and the
distinct-neuron correlator that isolates it (how Monte Carlo estimates it).

Index order is the subscript order of MATH.md §3, e.g. ``B[a1, a3, a2, a4]`` holds
``n·Cov[Ĥ_{ij;a1a2}, Ĥ_{ij;a3a4}]`` and ``F[a1, a3, a2, a4] = n·E[Ĥ_{ij;a1a2} z_{i;a3} z_{j;a4}]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from feyntk.errors import SpecError


@dataclass(frozen=True)
class Statistic:
    """One tensor of the 1/n expansion.

    Attributes:
        name: registry key (``"K1"``, ``"Theta"``, ...), as used in configs and JSON.
        latex: LaTeX symbol.
        rank: number of sample indices.
        order: 0 for leading-order kernels, 1 for coefficients of 1/n.
        fields: which random tensors the defining correlator involves.
        correlator: the distinct-neuron correlator that isolates it (i ≠ j), MATH.md §3.
        derivatives: highest σ-derivative order its recursion needs (smoothness requirement).
    """

    name: str
    latex: str
    rank: int
    order: int
    fields: tuple[str, ...]
    correlator: str
    derivatives: int


_STATISTICS = (
    Statistic("K", "K", 2, 0, ("z",), "E[z_{i;a1} z_{i;a2}]", 0),
    Statistic("K1", "K^{1}", 2, 1, ("z",), "n (E[z_{i;a1} z_{i;a2}] - K)", 2),
    Statistic("V", "V", 4, 1, ("z",),
              "n Cov[z_{i;a1} z_{i;a2}, z_{j;a3} z_{j;a4}]", 2),
    Statistic("Theta", r"\Theta", 2, 0, ("H",), "E[H_{ii;a1a2}]", 1),
    Statistic("Theta1", r"\Theta^{1}", 2, 1, ("H",), "n (E[H_{ii;a1a2}] - Theta)", 3),
    Statistic("A", "A", 4, 1, ("H",), "n Cov[H_{ii;a1a2}, H_{jj;a3a4}]", 2),
    Statistic("B", "B", 4, 1, ("H",), "B[a1,a3,a2,a4] = n Cov[H_{ij;a1a2}, H_{ij;a3a4}]", 2),
    Statistic("D", "D", 4, 1, ("H", "z"), "n Cov[H_{ii;a1a2}, z_{j;a3} z_{j;a4}]", 2),
    Statistic("F", "F", 4, 1, ("H", "z"),
              "F[a1,a3,a2,a4] = n E[H_{ij;a1a2} z_{i;a3} z_{j;a4}]", 2),
    Statistic("P", "P", 4, 1, ("dH", "z"), "n E[dH_{ijj;a0a1a2} z_{i;a3}]", 3),
    Statistic("Q", "Q", 4, 1, ("dH", "z"), "n E[dH_{iij;a0a1a2} z_{j;a3}]", 3),
    Statistic("R", "R", 4, 1, ("ddI",), "n E[ddI_{iijj;a0a1a2a3}]", 4),
    Statistic("S", "S", 4, 1, ("ddII",), "n E[ddII_{iijj;a1a2a3a4}]", 4),
    Statistic("T", "T", 4, 1, ("ddII",), "n E[ddII_{ijij;a1a2a3a4}]", 4),
    Statistic("U", "U", 4, 1, ("ddII",), "n E[ddII_{ijji;a1a2a3a4}]", 4),
)

REGISTRY: dict[str, Statistic] = {s.name: s for s in _STATISTICS}
"""All fifteen statistics, in MATH.md's order."""

TENSOR_NAMES: tuple[str, ...] = tuple(REGISTRY)


def get_statistic(name: str) -> Statistic:
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise SpecError(
            f"unknown tensor {name!r}; known tensors: {', '.join(TENSOR_NAMES)}") from None


def check_tensor_names(names: Iterable[str] | str | None) -> tuple[str, ...]:
    """Validate a list of tensor names, keeping MATH.md's order and dropping duplicates."""
    if names is None:
        return ("K", "Theta")
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise SpecError(f"tensors must name at least one of {', '.join(TENSOR_NAMES)}")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SpecError(
            f"unknown tensor name(s) {unknown}; known tensors: {', '.join(TENSOR_NAMES)} "
            "(names are case-sensitive)")
    return tuple(n for n in TENSOR_NAMES if n in names)
