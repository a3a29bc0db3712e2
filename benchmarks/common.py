"""Shared pieces of the benchmark scripts: the machine line and time formatting."""

from __future__ import annotations

import datetime
import os
import platform


def machine_line() -> str:
    """Date, CPU, visible cores and the JAX device, as the first line of every report."""
    import jax

    dev = jax.devices()[0]
    return (f"date {datetime.date.today()}, {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPU cores visible, JAX device {dev.platform} "
            f"{getattr(dev, 'device_kind', '')}, jax {jax.__version__}")


def fmt_time(t: float) -> str:
    """Seconds as s, min or h with three significant digits."""
    if t < 120:
        return f"{t:.3g} s"
    if t < 7200:
        return f"{t / 60:.3g} min"
    return f"{t / 3600:.3g} h"


def defined_tensors(act: str, config) -> list[str]:
    """Tensors whose recursion is defined for the activation at coinciding samples:
    ``config(act, N, depth, tensors)`` builds the benchmark's config (N = 1, depth 2 here)."""
    import feyntk
    from feyntk.api import derivable
    from feyntk.errors import FeyntkError

    out = []
    for t in derivable():
        try:
            feyntk.predict(config(act, 1, 2, [t]), backend="numpy")
            out.append(t)
        except FeyntkError:
            pass
    return out
