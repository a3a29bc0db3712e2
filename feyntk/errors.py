"""Exceptions raised by feyntk.

Every error names what is wrong and how to fix it. They derive from ``ValueError`` so that
generic callers that catch bad input keep working.
"""

from __future__ import annotations


class FeyntkError(ValueError):
    """Base class for all feyntk input and capability errors."""


class SpecError(FeyntkError):
    """An invalid network description, config or input set."""


class ActivationError(FeyntkError):
    """An activation that cannot be parsed, evaluated or integrated as requested."""


class DegenerateKernelError(FeyntkError):
    """A kernel that is singular where the requested quantity needs it not to be."""


class NotAvailableError(FeyntkError):
    """A tensor or feature that this version of feyntk does not provide."""


class MemoryBudgetError(FeyntkError):
    """A request whose memory would exceed the allowed budget (raised before allocating)."""


class QuadratureWarning(RuntimeWarning):
    """Gaussian integrals that stopped at the largest quadrature rule before reaching the
    tolerance; the estimated error is reported (``predict(...)["quadrature"]``)."""


class GroupError(SpecError):
    """An invalid group specification (feyntk.symmetry): bad generators, shapes or output action."""
