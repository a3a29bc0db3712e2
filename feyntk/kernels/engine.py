"""Layer-by-layer evaluation with generated kernels (numba on the CPU, JAX anywhere).

The :class:`KernelStep` behind the layer driver :mod:`feyntk.numbers.driver` (whose
:func:`~feyntk.numbers.driver.evaluate` is this module's ``evaluate``: same contract as the oracle
:func:`feyntk.numbers.evaluate.evaluate`, ``backend="auto"`` takes JAX on a GPU, else numba); per
layer step:

1. **tables**: the Gaussian integrals of every blob pattern over every subset of distinct
   samples (:mod:`feyntk.kernels.tables`), scattered into label-space tables;
2. **contraction**: each statistic's generated kernel evaluates its products of reads at one
   representative of every orbit of its index symmetries (found from the terms,
   :func:`feyntk.kernels.lower.symmetries`); the full array is filled from the orbits.

Only the dependency closure of the request is computed, and tables whose every use has a zero
coefficient at this layer (e.g. λ_W = 0) are not integrated.

Common mistakes:
    * Refusals can differ from the oracle's on degenerate inputs: the oracle skips a term as
      soon as one factor is exactly zero (e.g. Θ = 0 for a zero input with C_b = λ_b = 0) and
      may then never meet a blob it would refuse (a delta of relu at a zero-variance sample);
      the kernels integrate every table first and refuse.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from feyntk.kernels.lower import Table, lower, symmetries
from feyntk.kernels.memo import LevelMemo
from feyntk.kernels.module import HYPER, codegen
from feyntk.kernels.tables import fill, fill_from_cache, integrals, requests, subsets_of, \
    table_bytes
from feyntk.numbers import driver
from feyntk.numbers.driver import BACKENDS as BACKENDS
from feyntk.numbers.driver import Hyper
from feyntk.numbers.driver import available_backends as available_backends
from feyntk.numbers.driver import choose_backend as choose_backend
from feyntk.numbers.driver import evaluate as evaluate
from feyntk.numbers.driver import has_gpu as has_gpu
from feyntk.numbers.evaluate import BlobCache, first_layer, state_bytes
from feyntk.numbers.repeated import relabelled
from feyntk.spec.activation import Activation
from feyntk.spec.network import Network, check_inputs


def _setup_jax() -> None:
    """float64, and a persistent XLA cache next to the generated sources (if none is set)."""
    import jax

    from feyntk.kernels.compile import cache_dir

    jax.config.update("jax_enable_x64", True)
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))


@functools.lru_cache(maxsize=128)
def orbits(N: int, group: tuple[tuple[int, ...], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Representatives ``idx`` (R, p) of the index orbits and ``fill`` (N^p,) into them."""
    p = len(group[0])
    shape = (N,) * p
    grid = np.indices(shape).reshape(p, -1)
    canon = np.min([np.ravel_multi_index(grid[list(g)], shape) for g in group], axis=0)
    reps, fill_ = np.unique(canon, return_inverse=True)
    idx = np.stack(np.unravel_index(reps, shape), axis=1).astype(np.int64)
    return np.ascontiguousarray(idx), fill_.reshape(-1)


def memory_needed(closure, form: str, N: int, smooth: bool = True) -> int:
    """Bytes for two layers of states plus the tables and integrals of one step."""
    tables = {k: v for n in closure for k, v in lower(n, form, smooth).tables.items()}
    return state_bytes(closure, N) + table_bytes(tables.values(), N)


@functools.lru_cache(maxsize=64)
def _coefficients(closure: tuple, form: str, smooth: bool):
    """All products of the closure and one compiled function of their coefficients."""
    import sympy as sp

    prods = [p for n in closure for p in lower(n, form, smooth).products]
    f = sp.lambdify(HYPER, [p.coeff for p in prods], modules="math")
    return prods, lambda *h: [float(v) for v in f(*h)]


def step(gen, closure, state: dict, act, values: dict, backend: str, N: int,
         timings: dict | None = None, report=None, fine: bool = False,
         originals: tuple[int, ...] | None = None, memo: LevelMemo | None = None) -> dict:
    """One layer step ℓ → ℓ+1 of every statistic in ``closure`` with generated kernels.

    ``originals``: the caller's index of every sample, for error messages (repeated inputs
    removed, :mod:`feyntk.numbers.repeated`); ``memo``: integrals kept from earlier steps at
    the same K (:mod:`feyntk.kernels.memo`)."""
    module, imod = gen.contractions, gen.integrands
    t0 = time.perf_counter()
    hyper = [float(values[h]) for h in HYPER]
    needed: dict[str, Table] = {}
    prods, coeffs = _coefficients(tuple(closure), module.FORM, module.SMOOTH)
    for prod, c in zip(prods, coeffs(*hyper)):
        if c != 0.0:
            for r in prod.reads:
                if r.array in module.TABLES:
                    needed[r.array] = Table(*module.TABLES[r.array])
    K = np.ascontiguousarray(state["K"])
    tables = {name: np.zeros((N,) * Table(*spec).p) for name, spec in module.TABLES.items()}
    if module.SMOOTH:
        need_reqs = requests(needed.values())
        ints, subs = {}, {}
        for d, reqs in imod.REQUESTS.items():
            subs[d] = subsets_of(N, d)
            if d in need_reqs:
                with relabelled(None if originals is None else np.asarray(originals)):
                    ints[d] = integrals(act, K, d, reqs, imod.INTEGRANDS[d], backend,
                                        needed=need_reqs[d], subsets=subs[d],
                                        half=imod.HALF[d], report=report, fine=fine,
                                        memo=memo)
        for name, t in needed.items():
            tables[name] = fill(t, N, ints, subs)
    else:
        cache = BlobCache(act, K, module.FORM, report=report, fine=fine, originals=originals)
        for name, t in sorted(needed.items()):
            tables[name] = fill_from_cache(t, N, cache)
    t1 = time.perf_counter()
    new = {}
    for n in closure:
        kern, output, arrays = module.CONTRACT[n]
        idx, fill_ = orbits(N, symmetries(closure)[n])
        args = [state[a] if a in state else tables[a] for a in arrays]
        if backend == "numba":
            out = np.empty(len(idx))
            kern(idx, out, *[np.ascontiguousarray(a) for a in args], *hyper)
        else:
            import jax.numpy as jnp

            out = np.asarray(kern(jnp.asarray(idx), *[jnp.asarray(a) for a in args], *hyper))
        new[n] = out[fill_].reshape((N,) * len(output))
    if timings is not None:
        timings["tables"] = timings.get("tables", 0.0) + t1 - t0
        timings["contract"] = timings.get("contract", 0.0) + time.perf_counter() - t1
    return new


@dataclass
class KernelStep:
    """Generated kernels behind :class:`feyntk.numbers.driver.LayerStep` (``backend`` numba or
    jax); the kernels are generated (or loaded from the cache) at the first step, so that
    layer 1 needs none. ``verbose``: print the wall time of every step (to ``log``). ``memo``:
    the integrals of every step, shared by the copies ``dataclasses.replace`` makes for the
    error estimate's re-runs (:mod:`feyntk.kernels.memo`), which then integrate nothing."""

    closure: tuple[str, ...]
    form: str
    act: Activation
    backend: str
    report: object = None
    fine: bool = False
    verbose: bool = False
    log: object = None
    originals: tuple[int, ...] | None = None
    gen: object = field(default=None, repr=False)
    memo: LevelMemo = field(default_factory=LevelMemo, repr=False)

    def memory(self, N: int) -> tuple[int, str]:
        return (memory_needed(self.closure, self.form, N, self.act.is_smooth),
                f"layer states of {', '.join(self.closure)} and the Gaussian-expectation tables; "
                f"{driver.RANK4}")

    def start(self, network: Network, x: np.ndarray) -> dict:
        return first_layer(network, x, self.closure)

    def _generate(self):
        if self.backend == "jax":
            _setup_jax()
        t = time.perf_counter()
        self.gen = codegen(self.closure, self.act, self.form, self.backend)
        if self.verbose:
            print(f"codegen {self.gen.key}: {time.perf_counter() - t:.3f} s "
                  f"({', '.join(map(str, self.gen.path))})", file=self.log or sys.stderr)

    def step(self, state: dict, hp: Hyper) -> dict:
        if self.gen is None:
            self._generate()
        t = time.perf_counter()
        timings: dict = {}
        new = step(self.gen, self.closure, state, self.act, hp.symbols(), self.backend,
                   state["K"].shape[0], timings, self.report, self.fine, self.originals,
                   self.memo)
        if self.verbose:
            print(f"layer {hp.index - 1} -> {hp.index}: {time.perf_counter() - t:.3f} s (tables "
                  f"{timings['tables']:.3f} s, contraction {timings['contract']:.3f} s)",
                  file=self.log or sys.stderr)
        return new


def _evaluate(network: Network, x: np.ndarray, names, layer: int, closure, form: str,
              backend: str, max_memory_bytes, verbose, log, report, fine,
              originals: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """:func:`evaluate` on the inputs as given (``originals``: their indices in the caller's
    inputs, for error messages)."""
    return driver.evaluate_as_given(network, check_inputs(x, network.n0), names, layer, closure,
                                    form, backend, max_memory_bytes, verbose=verbose, log=log,
                                    report=report, fine=fine, originals=originals)
