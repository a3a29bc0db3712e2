"""Assemble generated modules: one per statistic's contraction kernel, one per integrand kernel.

Each module is keyed by what it contains only, so every request that needs ``contract_V`` (or
the 3-sample integrands of tanh with the same requests) reuses one file and numba's machine code
for it; :func:`codegen` merges the modules a request needs. The generation is data-driven end
to end: :func:`feyntk.kernels.lower.lower` turns each
statistic's diagram terms into products of reads, :mod:`feyntk.kernels.tables` says which
integrals the tables need, and the printers of :mod:`feyntk.kernels.printers` print both
(after CSE) for numba or JAX. Each module carries its own metadata (``REQUESTS``, ``TABLES``,
``CONTRACT``) so that the engine never relies on a second derivation agreeing with the first.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace

from feyntk.diagrams.fields import C_W, C_b, RATIO, lam_W, lam_b
from feyntk.diagrams.diagram import correlator
from feyntk.kernels.compile import activation_identity, cache_key, cached_source, load_module, \
    source_path, store_source
from feyntk.kernels.lower import FORMS, diagram_hash, lower
from feyntk.kernels.printers import PRINTERS, assignments, print_block
from feyntk.kernels.tables import half_grid, integrand_source, requests
from feyntk.spec.activation import Activation, get_activation

BACKENDS = ("numba", "jax")
HYPER = (C_W, C_b, lam_W, lam_b, RATIO)
"""Scalar arguments of every contraction kernel, in this order."""

_HEADER = {
    "numba": """import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, inline="always")
def _tanh(x):
    \"\"\"tanh(x) from one exp (absolute error below 2e-16).\"\"\"
    e = math.exp(-2.0*abs(x))
    return math.copysign((1.0 - e)/(1.0 + e), x)


@numba.njit(nogil=True, cache=True, inline="always")
def _sigmoid(x):
    \"\"\"1/(1 + e^-x) without overflow (scipy.special.expit).\"\"\"
    if x >= 0.0:
        return 1.0/(1.0 + math.exp(-x))
    e = math.exp(x)
    return e/(1.0 + e)


@numba.njit(nogil=True, cache=True, inline="always")
def _softplus(x):
    \"\"\"log(1 + e^x) without overflow (numpy.logaddexp(0, x)).\"\"\"
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


@numba.njit(nogil=True, cache=True)
def _heaviside(x):
    \"\"\"numpy.heaviside(x, 0.5) for scalars.\"\"\"
    if x < 0.0:
        return 0.0
    if x > 0.0:
        return 1.0
    if x == 0.0:
        return 0.5
    return x
""",
    "jax": """import jax
import jax.numpy as jnp
import jax.scipy.special as jss

jax.config.update("jax_enable_x64", True)


def _heaviside(x):
    return jnp.heaviside(x, 0.5)
""",
}


@dataclass(frozen=True)
class Generated:
    """Generated, compiled kernels of some statistics and where their source lives.

    Cached modules make one unit: the *integrands*, one module per number d of distinct
    samples (they depend on the activation), and the *contractions*, one module per statistic
    (they depend only on the diagrams, the form and the backend, so they are compiled once for
    all activations and all requests).

    Attributes:
        key: cache key ``<statistics>-<activation>-<form>-<backend>-<hash>`` of the unit.
        source: the generated Python source of all its modules, each headed by its file name.
        path: the cached files (integrands by d, then contractions in ``names`` order).
        integrands: namespace merging the integrand modules' ``REQUESTS``, ``INTEGRANDS[d]``
            and ``HALF`` (None if not compiled, or for kinked activations, whose tables come
            from the oracle's distributional integrals of :mod:`feyntk.numbers.distributions`).
        contractions: namespace with ``FORM``, ``SMOOTH`` and the merged ``TABLES`` and
            ``CONTRACT[name]``.
    """

    key: str
    source: str
    path: tuple
    integrands: SimpleNamespace | None
    contractions: SimpleNamespace | None


def contraction_source(name: str, form: str, backend: str, smooth: bool = True) -> str:
    """Source of ``contract_<name>``: one output entry per representative index tuple."""
    low = lower(name, form, smooth)
    expr = low.expr()
    printer = PRINTERS[backend]()
    assigns = assignments([("res", expr)])
    args = ", ".join(low.arrays + tuple(str(h) for h in HYPER))
    I = "    "
    lab = "\n".join(f"{I * 2}{a} = idx[n, {i}]" if backend == "numba" else f"{I}{a} = idx[:, {i}]"
                    for i, a in enumerate(low.output))
    doc = (f'"""{name}[{", ".join(low.output)}] at layer ℓ+1 ({form} form, '
           f'{len(low.products)} products of reads)."""')
    if backend == "numba":
        return (f"@numba.njit(nogil=True, cache=True, error_model='numpy')\n"
                f"def contract_{name}(idx, out, {args}):\n{I}{doc}\n"
                f"{I}for n in range(idx.shape[0]):\n{lab}\n"
                f"{print_block(assigns, printer, I * 2)}\n{I * 2}out[n] = res\n")
    return (f"@jax.jit\ndef contract_{name}(idx, {args}):\n{I}{doc}\n{lab}\n"
            f"{print_block(assigns, printer, I)}\n"
            f"{I}return jnp.zeros(idx.shape[0]) + res\n")


def _docstring(what: str, subject: str, act, form, backend, key) -> str:
    """Module docstring; ``subject`` is the line saying what the module computes."""
    act_line = f"activation: {act.name} = {act.expr}\n" if act is not None else \
        "activation: any (contractions do not depend on it)\n"
    body = ("integrand_<d>: Gaussian-expectation integrals of all patterns with d distinct "
            "samples\n(columns in REQUESTS[d] order; Hermite requests have one column per "
            "sorted component).\n" if act is not None else
            "contract_<name>: one output entry per representative index tuple; arguments in "
            "CONTRACT order.\n")
    return (f'"""Generated by feyntk.kernels ({what}): do not edit; regenerated when the '
            f"diagrams change.\n\n{subject}\n{act_line}form: {form}\n"
            f'backend: {backend}\nkey: {key}\n\n{body}"""')


@functools.lru_cache(maxsize=64)
def plan_requests(names: tuple, form: str) -> dict:
    """Integrals needed by the tables of statistics ``names``: ``{d: [(LP, q), ...]}``."""
    tables = {k: v for n in names for k, v in lower(n, form).tables.items()}
    return requests(tables.values())


def _smooth_tag(smooth: bool) -> str:
    return "any" if smooth else "kinked"


def integrand_module_source(d: int, reqs, act: Activation, form: str, backend: str,
                            key: str) -> str:
    """The d-sample integrand kernel for requests ``reqs`` (activation-specific)."""
    parts = [_docstring(f"{d}-sample integrands", f"requests: {reqs!r}", act, form, backend,
                        key), _HEADER[backend], f"REQUESTS = {{{d}: {reqs!r}}}\n",
             integrand_source(act, d, reqs, backend, f"integrand_{d}"),
             f"INTEGRANDS = {{{d}: integrand_{d}}}\n"
             f"HALF = {{{d}: {half_grid(act, d, reqs)}}}  # see tables.half_grid\n"]
    return "\n\n".join(parts)


def contraction_module_source(name: str, form: str, backend: str, key: str,
                              smooth: bool = True) -> str:
    """Contraction kernel of statistic ``name`` with the tables it reads (activation-independent,
    except that kinked activations differentiate blobs as distributions)."""
    low = lower(name, form, smooth)
    parts = [_docstring("contractions", f"statistic: {name}", None, form, backend, key),
             _HEADER[backend],
             f"FORM = {form!r}\nSMOOTH = {smooth!r}\n",
             "TABLES = {\n" + "".join(
                 f"    {k!r}: ({t.sigs!r}, {t.legs}, {t.comp!r}, {t.kind!r}),\n"
                 for k, t in sorted(low.tables.items())) + "}\n",
             contraction_source(name, form, backend, smooth),
             f"CONTRACT = {{{name!r}: (contract_{name}, {low.output!r}, {low.arrays!r})}}\n"]
    return "\n\n".join(parts)


def _part(key: str, make, compile: bool):
    source = cached_source(key)
    if source is None:
        source = make()
    if compile:
        return source, load_module(key, source)
    store_source(key, source)
    return source, None


@functools.lru_cache(maxsize=128)
def _keys(names: tuple, act: Activation, form: str, backend: str):
    """Cache keys: of the unit, of one contraction module per statistic and of one integrand
    module per number d of distinct samples (``{d: key}``). Shared modules are keyed by what
    they contain only, so other requests reuse them (and numba's machine code)."""
    tag = _smooth_tag(act.is_smooth)
    ident = activation_identity(act)  # every field, so a new one is part of the key by itself
    ckeys = tuple(cache_key((n,), tag, form, backend, diagram_hash((n,))) for n in names)
    ikeys = {d: cache_key((f"integrand{d}",), act.name, form, backend, repr(rs) + ident)
             for d, rs in plan_requests(names, form).items()}
    return (cache_key(names, act.name, form, backend, diagram_hash(names) + ident), ckeys, ikeys)


def _merge(modules, names) -> SimpleNamespace | None:
    """One namespace with the metadata dicts of several generated modules merged."""
    if any(m is None for m in modules):
        return None
    out = SimpleNamespace(**{k: {} for k in names})
    for m in modules:
        for k in names:
            getattr(out, k).update(getattr(m, k))
        for k in ("FORM", "SMOOTH"):
            if hasattr(m, k):
                setattr(out, k, getattr(m, k))
    return out


def codegen(names, activation="tanh", form: str = "derivative", backend: str = "numba", *,
            compile: bool = True) -> Generated:
    """Generate (or load from the cache) the kernels of statistics ``names``.

    Args:
        names: a statistic name or a list (e.g. a dependency closure).
        activation: name, dict or :class:`~feyntk.spec.activation.Activation`.
        form: ``"derivative"`` or ``"inverse-metric"``.
        backend: ``"numba"`` or ``"jax"``.
        compile: import the modules (numba compiles each kernel on its first call and keeps
            the machine code in its own cache next to the source).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    names = (names,) if isinstance(names, str) else tuple(names)
    for n in names:
        correlator(n)  # clear error for names the engine does not derive
    act = get_activation(activation)
    key, ckeys, ikeys = _keys(names, act, form, backend)
    smooth = act.is_smooth
    files, sources, cmods, imods = [], [], [], []
    for n, ck in zip(names, ckeys):
        src, mod = _part(ck, lambda n=n, ck=ck: contraction_module_source(n, form, backend, ck,
                                                                          smooth), compile)
        files.append(source_path(ck))
        sources.append(src)
        cmods.append(mod)
    if smooth:  # kinked: tables come from the oracle's distributional integrals
        reqs = plan_requests(names, form)
        for d, ik in ikeys.items():
            src, mod = _part(ik, lambda d=d, ik=ik: integrand_module_source(
                d, reqs[d], act, form, backend, ik), compile)
            files.insert(len(imods), source_path(ik))
            sources.insert(len(imods), src)
            imods.append(mod)
    source = "\n\n".join(f"# ---- {f.name}\n{src}" for f, src in zip(files, sources))
    return Generated(key, source, tuple(files),
                     _merge(imods, ("REQUESTS", "INTEGRANDS", "HALF")) if smooth else None,
                     _merge(cmods, ("TABLES", "CONTRACT")))
